// The security officer: the breach register (each breach's record, clocks, deliveries and
// acknowledgements per tenant, updates, the authority's reference, the analysis) and security alerts.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Clock, DataTable, Field, html, listOf, Outcome, useAction, useLoad, when, type Me, type Row } from '../ui.js';

const RISKS: [string, string][] = [
  ['unlikely', 'Unlikely to result in a risk'],
  ['risk', 'A risk to the data subjects'],
  ['high-risk', 'A high risk (the data subjects are told too)'],
];
const NATURES = ['confidentiality', 'integrity', 'availability'];
/** A breach moves draft → open → closed, or from draft to not notified (with the reasoning kept). */
const STATUS_FLOW = ['draft', 'open', 'closed'];

function RiskSelect({ value, onChange, label }: { value: string; onChange: (v: string) => void; label: string }) {
  return html`<label
    >${label}
    <select name="risk" onChange=${(e: Event) => onChange((e.target as HTMLSelectElement).value)}>
      ${RISKS.map(([v, text]) => html`<option value=${v} selected=${v === value}>${text}</option>`)}
    </select>
  </label>`;
}

/** What the register says now: the report with each phased update laid over it. */
function current(detail: Row): Row {
  return ((detail.updates as Row[] | undefined) ?? []).reduce<Row>((acc, u) => ({ ...acc, ...u }), detail);
}

function StatusFlow({ status }: { status: string }) {
  const steps = status === 'not-notified' ? ['draft', 'not-notified'] : STATUS_FLOW;
  return html`<ol class="status-flow" aria-label="Status">
    ${steps.map((s) => html`<li aria-current=${s === status ? 'step' : undefined}>${s}</li>`)}
  </ol>`;
}

function BreachRecord({ id, onChanged }: { id: string; onChanged: () => void }) {
  const breach = useLoad<Row>(`/breaches/${id}`);
  const action = useAction();
  const [update, setUpdate] = useState('');
  const [updateRisk, setUpdateRisk] = useState('risk');
  const [moreToFollow, setMoreToFollow] = useState(true);
  const [authority, setAuthority] = useState('');
  const [reference, setReference] = useState('');
  const [notifiedOn, setNotifiedOn] = useState(new Date().toISOString().slice(0, 10));
  const [rootCause, setRootCause] = useState('');
  const [analysisMeasures, setAnalysisMeasures] = useState('');
  const [close, setClose] = useState(false);
  const [reasoning, setReasoning] = useState('');
  const done = async (work: Promise<unknown>) => {
    await work;
    breach.reload();
    onChanged();
  };
  const confirmDraft = () => action.run(() => done(api('POST', `/breaches/${id}/confirmation`)));
  const decide = action.submit(() => done(api('POST', `/breaches/${id}/decision`, { notify: false, reasoning })));
  const sendUpdate = action.submit(() =>
    done(api('POST', `/breaches/${id}/updates`, { description: update, risk: updateRisk, moreToFollow })),
  );
  const resend = () => action.run(() => done(api('POST', `/breaches/${id}/deliveries`, {})));
  const recordAuthority = action.submit(() =>
    done(
      api('PUT', `/breaches/${id}/authority-notification`, {
        authority,
        reference,
        notifiedAt: new Date(notifiedOn).toISOString(),
      }),
    ),
  );
  const analyse = action.submit(() =>
    done(api('POST', `/breaches/${id}/analysis`, { rootCause, measures: analysisMeasures, closed: close })),
  );
  const detail = breach.data;
  if (!detail) return html`<${Outcome} error=${breach.error} />`;
  const now = current(detail);
  const status = String(detail.status);
  const deadlines = detail.deadlines as Row;
  const authorityRecord = detail.authorityNotification as Row | undefined;
  const analysis = detail.analysis as Row | undefined;
  return html`<article aria-label="Breach">
    <header>
      Breach <code>${String(detail.id)}</code>: <strong data-testid="breach-status">${status}</strong>
      <${StatusFlow} status=${status} />
    </header>
    <${Clock}
      label="Our 24 hours to notify every tenant"
      start=${String(detail.awareAt)}
      deadline=${String(deadlines.processor)}
    />
    <${Clock}
      label="The controllers' 72 hours"
      start=${String(detail.awareAt)}
      deadline=${String(deadlines.controller)}
    />
    <dl class="record">
      <dt>Discovered</dt>
      <dd>${when(detail.detectedAt)} (aware ${when(detail.awareAt)})</dd>
      <dt>Nature</dt>
      <dd>${((now.nature as string[] | undefined) ?? []).join(', ')}</dd>
      <dt>Data categories</dt>
      <dd>${((now.dataCategories as string[] | undefined) ?? []).join(', ')}</dd>
      <dt>Risk</dt>
      <dd data-testid="breach-risk">${String(now.risk ?? 'not assessed yet')}</dd>
      <dt>What happened</dt>
      <dd>${String(now.description ?? '')}</dd>
      <dt>Likely consequences</dt>
      <dd>${String(now.likelyConsequences ?? '')}</dd>
      <dt>Measures</dt>
      <dd>${String(now.measures ?? '')}</dd>
      <dt>Keys exposed</dt>
      <dd>${detail.keysExposed ? 'yes: affected tenants’ keys are rotated' : 'no'}</dd>
      <dt>Supervisory authority</dt>
      <dd data-testid="authority-reference">
        ${
          authorityRecord
            ? `${String(authorityRecord.authority)}, reference ${String(authorityRecord.reference)}, notified ${when(authorityRecord.notifiedAt)}`
            : 'no notification recorded'
        }
      </dd>
      ${
        detail.fromAlert
          ? html`<dt>From alert</dt>
              <dd><code>${String(detail.fromAlert)}</code></dd>`
          : null
      }
      ${
        detail.decision
          ? html`<dt>Not notified because</dt>
              <dd>${String((detail.decision as Row).reasoning)}</dd>`
          : null
      }
    </dl>
    <h3>Affected tenants</h3>
    <${DataTable}
      label="Affected tenants"
      empty="No tenants affected (yet: the scope is computed when notification starts)."
      rows=${detail.tenants as Row[]}
      columns=${[
        { title: 'Tenant', cell: (t: Row) => String(t.tenant) },
        { title: 'Data subjects', cell: (t: Row) => String(t.dataSubjects) },
        { title: 'Records', cell: (t: Row) => String(t.records) },
        { title: 'Notifications', cell: (t: Row) => String(t.notifications) },
        {
          title: 'Acknowledged',
          cell: (t: Row) =>
            t.acknowledgedAt
              ? html`<span data-testid="tenant-acknowledged">acknowledged ${when(t.acknowledgedAt)}</span>`
              : 'not acknowledged yet',
        },
      ]}
    />
    <h3>Webhook deliveries</h3>
    <${DataTable}
      label="Webhook deliveries"
      empty="No webhook deliveries (tenants without a webhook read their notices in LabVault)."
      rows=${detail.deliveries as Row[]}
      columns=${[
        { title: 'Tenant', cell: (d: Row) => String(d.tenant) },
        { title: 'What', cell: (d: Row) => `${String(d.kind)} ${String(d.sequence)}` },
        { title: 'At', cell: (d: Row) => when(d.at) },
        {
          title: 'Outcome',
          cell: (d: Row) => (d.ok ? 'delivered' : `failed ${String(d.httpStatus ?? '')} ${String(d.error ?? '')}`),
        },
      ]}
    />
    <h3>Timeline</h3>
    <ol class="breach-timeline">
      ${(detail.timeline as Row[]).map(
        (t) =>
          html`<li>
            ${when(t.at)}: ${String(t.event)}${t.tenant ? ` (${String(t.tenant)})` : ''} — ${String(t.detail)}
          </li>`,
      )}
    </ol>
    <${Outcome} error=${action.error} />
    <button type="button" class="outline" onClick=${breach.reload}>Refresh breach</button>
    ${
      status === 'draft'
        ? html`<button type="button" onClick=${() => void confirmDraft()}>Confirm and notify</button>
            <form onSubmit=${decide} aria-label="Decide not to notify">
              <${Field}
                label="Why no notification is needed"
                name="reasoning"
                value=${reasoning}
                onInput=${setReasoning}
                required
              />
              <button type="submit" class="secondary">Close without notification</button>
            </form>`
        : null
    }
    ${
      status === 'open'
        ? html`<button type="button" class="outline" onClick=${() => void resend()}>Resend webhook deliveries</button>
            <form onSubmit=${sendUpdate} aria-label="Phased update">
              <h3>Phased update to the same tenants</h3>
              <${Field} label="What is new" name="update" value=${update} onInput=${setUpdate} required />
              <${RiskSelect} label="Risk as assessed now" value=${updateRisk} onChange=${setUpdateRisk} />
              <label
                ><input
                  type="checkbox"
                  name="moreToFollow"
                  checked=${moreToFollow}
                  onChange=${() => setMoreToFollow(!moreToFollow)}
                />
                More information will follow</label
              >
              <button type="submit">Send update</button>
            </form>`
        : null
    }
    ${
      status === 'open' || status === 'closed'
        ? html`<form onSubmit=${recordAuthority} aria-label="Authority notification">
            <h3>Supervisory authority</h3>
            <${Field} label="Authority" name="authority" value=${authority} onInput=${setAuthority} required />
            <${Field} label="Their reference" name="reference" value=${reference} onInput=${setReference} required />
            <${Field}
              label="Notified on"
              name="notifiedAt"
              type="date"
              value=${notifiedOn}
              onInput=${setNotifiedOn}
              required
            />
            <button type="submit">Record authority notification</button>
          </form>`
        : null
    }
    ${
      analysis
        ? html`<h3>Analysis</h3>
            <p data-testid="breach-analysis">${String(analysis.rootCause)} — ${String(analysis.measures)}</p>`
        : null
    }
    ${
      status === 'open'
        ? html`<form onSubmit=${analyse} aria-label="Analysis">
            <h3>Internal analysis</h3>
            <${Field} label="Root cause" name="rootCause" value=${rootCause} onInput=${setRootCause} required />
            <${Field}
              label="Measures against recurrence"
              name="analysisMeasures"
              value=${analysisMeasures}
              onInput=${setAnalysisMeasures}
              required
            />
            <label
              ><input type="checkbox" name="close" checked=${close} onChange=${() => setClose(!close)} /> Close the
              breach with this analysis</label
            >
            <button type="submit">Record analysis</button>
          </form>`
        : null
    }
  </article>`;
}

export function Breaches() {
  const register = useLoad<{ items: Row[] }>('/breaches');
  const [tenants, setTenants] = useState('');
  const [description, setDescription] = useState('');
  const [categories, setCategories] = useState('orders');
  const [natures, setNatures] = useState<string[]>(['confidentiality']);
  const [risk, setRisk] = useState('risk');
  const [consequences, setConsequences] = useState('');
  const [measures, setMeasures] = useState('');
  const action = useAction();
  const [open, setOpen] = useState<string | undefined>();
  const toggleNature = (n: string) =>
    setNatures((current) => (current.includes(n) ? current.filter((x) => x !== n) : [...current, n]));
  const report = action.submit(async () => {
    const { id } = await api<{ id: string }>('POST', '/breaches', {
      detectedAt: new Date().toISOString(),
      tenants: listOf(tenants),
      description,
      nature: natures,
      dataCategories: listOf(categories),
      likelyConsequences: consequences,
      measures,
      risk,
    });
    register.reload();
    setOpen(id);
  });
  return html`<section>
    <h2>Breach register</h2>
    <${Outcome} error=${register.error} />
    <${DataTable}
      label="Breach register"
      empty="No breaches recorded."
      rows=${register.data?.items}
      columns=${[
        { title: 'Aware', cell: (b: Row) => when(b.awareAt) },
        { title: 'Status', cell: (b: Row) => String(b.status) },
        { title: 'Description', cell: (b: Row) => String(b.description ?? '') },
        {
          title: '',
          cell: (b: Row) =>
            html`<button type="button" class="outline" onClick=${() => setOpen(String(b.id))}>
              Show breach ${when(b.awareAt)}
            </button>`,
        },
      ]}
    />
    ${open && html`<${BreachRecord} key=${open} id=${open} onChanged=${register.reload} />`}
    <form onSubmit=${report} aria-label="Report a breach">
      <h3>Report a breach</h3>
      <${Field}
        label="Affected tenants (comma-separated)"
        name="tenants"
        value=${tenants}
        onInput=${setTenants}
        required
      />
      <${Field} label="What happened" name="description" value=${description} onInput=${setDescription} required />
      <fieldset>
        <legend>Nature</legend>
        ${NATURES.map(
          (n) =>
            html`<label
              ><input type="checkbox" name="nature" checked=${natures.includes(n)} onChange=${() => toggleNature(n)} />
              ${n}</label
            >`,
        )}
      </fieldset>
      <${Field}
        label="Data categories (comma-separated)"
        name="categories"
        value=${categories}
        onInput=${setCategories}
        required
      />
      <${RiskSelect} label="Risk to the data subjects" value=${risk} onChange=${setRisk} />
      <${Field}
        label="Likely consequences"
        name="consequences"
        value=${consequences}
        onInput=${setConsequences}
        required
      />
      <${Field} label="Measures taken" name="measures" value=${measures} onInput=${setMeasures} required />
      <button type="submit">Report breach</button>
      <${Outcome} error=${action.error} />
    </form>
  </section>`;
}

/** The security officer sees every realm's alerts; a tenant's admins those about their own principals. */
export function Alerts({ me }: { me: Me }) {
  const list = useLoad<{ items: Row[] }>(me.realm === 'operator' ? '/security/alerts' : '/alerts');
  const action = useAction();
  const [draft, setDraft] = useState<string | undefined>();
  const startDraft = (alertId: string) =>
    action.run(async () =>
      setDraft((await api<{ id: string }>('POST', `/security/alerts/${alertId}/breach-draft`)).id),
    );
  const mayDraft = me.permissions.includes('breaches:manage');
  return html`<section>
    <h2>Security alerts</h2>
    <${Outcome}
      error=${list.error ?? action.error}
      done=${
        draft &&
        html`<p>
          Breach draft <code data-testid="breach-draft">${draft}</code> recorded: confirm or close it in the
          <a href="#/breaches">breach register</a>. Nobody is notified until you do.
        </p>`
      }
    />
    <${DataTable}
      label="Security alerts"
      empty="No alerts."
      rows=${list.data?.items}
      columns=${[
        { title: 'Detected', cell: (a: Row) => when(a.detectedAt) },
        { title: 'Kind', cell: (a: Row) => String(a.kind) },
        { title: 'Count', cell: (a: Row) => String(a.count) },
        { title: 'Summary', cell: (a: Row) => String(a.summary) },
        {
          title: '',
          cell: (a: Row) =>
            mayDraft
              ? html`<button type="button" class="outline" onClick=${() => void startDraft(String(a.id))}>
                  Start breach draft from ${String(a.kind)} alert
                </button>`
              : null,
        },
      ]}
    />
  </section>`;
}
