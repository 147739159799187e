// Data-subject requests (Art. 15, 17, 18 GDPR) for the tenant's admins: find what is held about a
// patient, record a request, confirm or cancel an erasure (or run a failed one again), lift a
// restriction, and hand the patient their access archive. The patient identifier stays in this
// page's memory and request bodies: never in the address bar, where the browser's history would
// keep it.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import {
  CurrentPasswordField,
  DataTable,
  downloadAndVerify,
  Field,
  html,
  Outcome,
  type Row,
  useAction,
  useLoad,
  when,
} from '../ui.js';

interface Inventory {
  orders: { restricted: boolean }[];
  images: unknown[];
  auditEntries: { total: number };
  requests: unknown[];
}

export function SubjectRequests() {
  const list = useLoad<{ items: Row[] }>('/subject-requests');
  const action = useAction();
  const [patientId, setPatientId] = useState('');
  const [type, setType] = useState('access');
  const [format, setFormat] = useState('fhir');
  const [found, setFound] = useState<Inventory | undefined>();
  const [chosen, setChosen] = useState<Row | undefined>();
  // An erasure confirmed, or run again after it failed: asked with the person's password.
  const [decision, setDecision] = useState<{ id: string; what: 'confirmation' | 'retry' } | undefined>();
  // An access export runs for a while, an erasure after its window: look again until they settle
  // (a scheduled erasure once its window ends within the minute, as a failed one run again does).
  const unsettled = list.data?.items.some(
    (r) =>
      r.status === 'running' ||
      r.status === 'erasing' ||
      (r.status === 'scheduled' && Date.parse(String(r.executeAt)) < Date.now() + 60_000),
  );
  useEffect(() => {
    if (!unsettled) return;
    const timer = setTimeout(list.reload, 1000);
    return () => clearTimeout(timer);
  }, [list.data]);
  const search = () =>
    action.run(async () => setFound(await api<Inventory>('POST', '/subject-requests/search', { patientId })));
  const record = action.submit(async () => {
    await api('POST', '/subject-requests', type === 'access' ? { type, patientId, format } : { type, patientId });
    list.reload();
  });
  const step = (id: string, what: 'cancellation' | 'lift') =>
    action.run(async () => {
      await api('POST', `/subject-requests/${id}/${what}`);
      list.reload();
    });
  const button = (label: string, onClick: () => void, secondary = false) =>
    html`<button type="button" class=${secondary ? 'secondary' : undefined} onClick=${onClick}>${label}</button>`;
  const actionsOf = (r: Row) => {
    const id = String(r.id);
    if (r.type === 'erasure' && r.status === 'awaiting-confirmation')
      return html`${button('Confirm erasure', () => setDecision({ id, what: 'confirmation' }))}
      ${button('Cancel erasure', () => void step(id, 'cancellation'), true)}`;
    if (r.type === 'erasure' && r.status === 'scheduled')
      return button('Cancel erasure', () => void step(id, 'cancellation'), true);
    // Storage failed past every retry: what was erased stays erased, and the confirmed decision stands.
    if (r.type === 'erasure' && r.status === 'failed')
      return button('Run erasure again', () => setDecision({ id, what: 'retry' }));
    if (r.type === 'restriction' && r.status === 'active')
      return button('Lift restriction', () => void step(id, 'lift'), true);
    if (r.type === 'access' && r.archive) return button('Download archive', () => setChosen(r));
    return null;
  };
  return html`<section>
    <h2>Data subject requests</h2>
    <p>
      Your patients' requests about their data: access (an export of just their records), restriction (read-only and out
      of every listing until lifted), erasure (confirmed by a second person, run after a window you can cancel in). Each
      is due one month after receipt.
    </p>
    <form onSubmit=${record} aria-label="Data subject">
      <${Field} label="Patient identifier" name="patientId" value=${patientId} onInput=${setPatientId} required />
      <label
        >Request
        <select name="type" value=${type} onChange=${(e: Event) => setType((e.target as HTMLSelectElement).value)}>
          <option value="access">Access (Art. 15)</option>
          <option value="restriction">Restriction (Art. 18)</option>
          <option value="erasure">Erasure (Art. 17)</option>
        </select>
      </label>
      ${
        type === 'access' &&
        html`<label
          >Format
          <select
            name="format"
            value=${format}
            onChange=${(e: Event) => setFormat((e.target as HTMLSelectElement).value)}
          >
            <option value="fhir">FHIR R4 (Bulk Data NDJSON)</option>
            <option value="ndjson">NDJSON</option>
          </select>
        </label>`
      }
      <button type="button" class="outline" onClick=${() => void search()}>Find data held</button>
      <button type="submit">Record request</button>
    </form>
    <${Outcome} error=${action.error ?? list.error} />
    ${
      found &&
      html`<p role="status" data-testid="subject-found">
        ${[
          `${found.orders.length} orders (${found.orders.filter((o) => o.restricted).length} restricted)`,
          `${found.images.length} images`,
          `${found.auditEntries.total} audit entries`,
          `${found.requests.length} earlier requests`,
        ].join(', ')}
      </p>`
    }
    <${DataTable}
      label="Data subject requests"
      empty="No requests yet."
      rows=${list.data?.items}
      columns=${[
        { title: 'Received', cell: (r: Row) => when(r.receivedAt) },
        { title: 'Type', cell: (r: Row) => String(r.type) },
        { title: 'Status', testId: 'subject-status', cell: (r: Row) => String(r.status) },
        { title: 'Due', cell: (r: Row) => when(r.dueAt) },
        {
          title: 'Evidence',
          cell: (r: Row) =>
            Object.entries((r.evidence as Record<string, number> | undefined) ?? {})
              .map(([k, v]) => `${k}: ${v}`)
              .join(', '),
        },
        { title: '', cell: actionsOf },
      ]}
    />
    ${
      decision &&
      html`<${ErasureDecision}
        key=${decision.id + decision.what}
        ...${decision}
        onDone=${() => {
          setDecision(undefined);
          list.reload();
        }}
      />`
    }
    ${chosen && html`<${AccessArchive} request=${chosen} />`}
  </section>`;
}

/** Confirming an erasure, or running a failed one again: irreversible, so the person's password too. */
function ErasureDecision(props: { id: string; what: 'confirmation' | 'retry'; onDone: () => void }) {
  const [password, setPassword] = useState('');
  const action = useAction();
  const submit = action.submit(async () => {
    const body = { currentPassword: password };
    setPassword('');
    await api('POST', `/subject-requests/${props.id}/${props.what}`, body);
    props.onDone();
  });
  const label = props.what === 'confirmation' ? 'Confirm erasure' : 'Run erasure again';
  return html`<form onSubmit=${submit} aria-label=${label}>
    <h3>${label}</h3>
    <p>
      ${
        props.what === 'confirmation'
          ? "The patient's orders and images are deleted once the cancellation window ends, and cannot be restored."
          : 'The erasure continues where it failed; what it deleted stays deleted.'
      }
    </p>
    <${CurrentPasswordField} value=${password} onInput=${setPassword} />
    <button type="submit">${`${label} with my password`}</button>
    <${Outcome} error=${action.error} />
  </form>`;
}

/** The access archive for the patient: fetched with the password, hashed in the page, then saved. */
function AccessArchive({ request }: { request: Row }) {
  const archive = request.archive as { sha256: string; bytes: number; availableUntil: string };
  const [password, setPassword] = useState('');
  const [checked, setChecked] = useState<{ matches: boolean; url: string } | undefined>();
  const action = useAction();
  const verify = action.submit(async () => {
    const body = { currentPassword: password };
    setPassword('');
    setChecked(await downloadAndVerify(`/subject-requests/${String(request.id)}/archive`, body, archive.sha256));
  });
  return html`<form onSubmit=${verify} aria-label="Access archive">
    <h3>Access archive</h3>
    <p>
      ${`${archive.bytes} bytes, kept until ${when(archive.availableUntil)}, SHA-256 `}
      <code data-testid="subject-sha256">${archive.sha256}</code>
    </p>
    <${CurrentPasswordField} value=${password} onInput=${setPassword} />
    <button type="submit">Download and verify checksum</button>
    <${Outcome}
      error=${action.error}
      done=${
        checked &&
        html`<p>
          <mark data-testid="subject-verified">${checked.matches ? 'Checksum matches' : 'Checksum differs'}</mark>
          ${checked.matches ? html` <a href=${checked.url} download="access.zip">Save verified archive</a>` : null}
        </p>`
      }
    />
  </form>`;
}
