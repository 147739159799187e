// The vendor's operators: tenants and their termination, four-eyes approvals, deletion
// certificates, backups and restore drills, orchestrations.
import { useState } from 'preact/hooks';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { api } from '../api.js';
import {
  DataTable,
  Field,
  html,
  Outcome,
  Timeline,
  useAction,
  useLoad,
  usePaged,
  when,
  type Me,
  type Row,
} from '../ui.js';

export function Tenants() {
  const list = usePaged('/tenants');
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState('');
  const [email, setEmail] = useState('');
  const action = useAction();
  const [created, setCreated] = useState<Row | undefined>();
  const [target, setTarget] = useState('');
  const [endsAt, setEndsAt] = useState(new Date().toISOString().slice(0, 10));
  const [deletion, setDeletion] = useState<Row | undefined>();
  const [holdRequest, setHoldRequest] = useState<Row | undefined>();
  const termination = useAction();
  const create = action.submit(async () => {
    setCreated(await api('POST', '/tenants', { id, name, admin: { username: admin, email } }));
    list.reload();
  });
  const show = async (tenant = target) => {
    setTarget(tenant);
    setHoldRequest(undefined);
    setDeletion(
      await api<Row>('GET', `/tenants/${tenant}/deletion`).catch(() => ({ tenant, status: 'not-terminated' })),
    );
  };
  const after = async () => {
    await show();
    list.reload();
  };
  const terminate = termination.submit(async () => {
    await api('POST', `/tenants/${target}/termination`, { contractEndsAt: new Date(endsAt).toISOString() });
    await after();
  });
  const withdraw = () =>
    termination.run(async () => {
      await api('DELETE', `/tenants/${target}/termination`);
      await after();
    });
  const hold = () =>
    termination.run(async () => {
      await api('POST', `/tenants/${target}/legal-hold`);
      await after();
    });
  // Lifting a hold lets a deletion go ahead: a second operator approves it (Approvals page).
  const lift = () =>
    termination.run(async () => {
      setHoldRequest(
        await api<Row>('DELETE', `/tenants/${target}/legal-hold?reason=${encodeURIComponent('hold ended')}`),
      );
    });
  return html`<section>
    <h2>Tenants</h2>
    <${Outcome} error=${list.error} />
    <${DataTable}
      label="Tenants"
      empty="No tenants yet."
      rows=${list.items}
      columns=${[
        {
          title: 'Tenant',
          cell: (t: Row) => html`<code>${String(t.id)}</code> ${t.name === null ? '(deleted)' : String(t.name)}`,
        },
        { title: 'Since', cell: (t: Row) => when(t.createdAt) },
        {
          title: 'Lifecycle',
          testId: 'tenant-lifecycle',
          cell: (t: Row) => {
            const l = t.lifecycle as Row;
            return `${String(l.status)}${l.deleteAt ? `, deletion ${when(l.deleteAt)}` : ''}${l.legalHold ? ', legal hold' : ''}`;
          },
        },
        {
          title: '',
          cell: (t: Row) =>
            html`<button type="button" class="outline" onClick=${() => void termination.run(() => show(String(t.id)))}>
              Show lifecycle of ${String(t.id)}
            </button>`,
        },
      ]}
    />
    ${list.hasMore && html`<button type="button" class="outline" onClick=${list.more}>More tenants</button>`}
    <form onSubmit=${create} aria-label="New tenant">
      <h3>New tenant</h3>
      <${Field} label="Tenant id" name="id" value=${id} onInput=${setId} required />
      <${Field} label="Name" name="name" value=${name} onInput=${setName} required />
      <${Field} label="First admin's username" name="adminUsername" value=${admin} onInput=${setAdmin} required />
      <${Field}
        label="First admin's e-mail"
        name="adminEmail"
        type="email"
        value=${email}
        onInput=${setEmail}
        required
      />
      <button type="submit">Create tenant</button>
      <${Outcome}
        error=${action.error}
        done=${
          created &&
          html`<p>
            Created ${String(created.id)}. The admin's one-time password (shown once):
            <code data-testid="one-time-password">${String((created.admin as Row).initialPassword)}</code>
          </p>`
        }
      />
    </form>
    <form onSubmit=${terminate} aria-label="Termination">
      <h3>Contract end</h3>
      <${Field} label="Tenant to terminate" name="target" value=${target} onInput=${setTarget} required />
      <${Field}
        label="Contract ends on"
        name="contractEndsAt"
        type="date"
        value=${endsAt}
        onInput=${setEndsAt}
        required
      />
      <button type="submit">Record termination</button>
      <${Outcome} error=${termination.error} />
    </form>
    ${
      deletion &&
      html`<article aria-label="Deletion timeline">
        <header>
          Lifecycle of <strong>${String(deletion.tenant ?? target)}</strong>:${' '}<span data-testid="deletion-status"
            >${String(deletion.status)}</span
          >${deletion.legalHold ? html` · <mark data-testid="legal-hold">legal hold</mark>` : null}
        </header>
        <${Timeline}
          points=${[
            { label: 'Termination recorded', at: deletion.recordedAt as string },
            { label: 'Contract ends', at: deletion.contractEndsAt as string },
            { label: 'Notice and export window end', at: deletion.noticeEndsAt as string },
            { label: deletion.legalHold ? 'Deletion (held)' : 'Deletion', at: deletion.deleteAt as string },
          ]}
        />
        ${
          deletion.status === 'scheduled'
            ? html`<button type="button" class="secondary" onClick=${() => void withdraw()}>
                Withdraw termination
              </button>`
            : null
        }
        ${
          deletion.status === 'deleting' || deletion.status === 'completed'
            ? null
            : deletion.legalHold
              ? html`<button type="button" class="outline" onClick=${() => void lift()}>Ask to lift legal hold</button>`
              : html`<button type="button" class="outline" onClick=${() => void hold()}>Place legal hold</button>`
        }
        ${
          holdRequest &&
          html`<p role="status" data-testid="hold-approval">
            Lifting waits for a second operator: approval <code>${String(holdRequest.id)}</code>.
          </p>`
        }
      </article>`
    }
  </section>`;
}

export function Approvals({ me }: { me: Me }) {
  const list = useLoad<{ items: Row[] }>('/approvals');
  const action = useAction();
  const decide = (id: string, approve: boolean) =>
    action.run(async () => {
      await api('POST', `/approvals/${id}/decision`, { approve });
      list.reload();
    });
  return html`<section>
    <h2>Four-eyes approvals</h2>
    <p>Irreversible steps wait for a second operator; nobody approves their own request.</p>
    <${Outcome} error=${action.error ?? list.error} />
    <${DataTable}
      label="Approvals"
      empty="Nothing waits for approval."
      rows=${list.data?.items}
      columns=${[
        { title: 'Requested', cell: (a: Row) => when(a.requestedAt) },
        { title: 'What', cell: (a: Row) => String(a.summary) },
        { title: 'Reason', cell: (a: Row) => String(a.reason) },
        { title: 'Status', cell: (a: Row) => String(a.status), testId: 'approval-status' },
        {
          title: 'Decision',
          cell: (a: Row) =>
            a.status === 'pending' && a.requestedBy !== me.id
              ? html`<button type="button" onClick=${() => void decide(String(a.id), true)}>Approve</button>
                  <button type="button" class="secondary" onClick=${() => void decide(String(a.id), false)}>
                    Deny
                  </button>`
              : a.status === 'pending'
                ? 'waiting for a second operator'
                : null,
        },
      ]}
    />
  </section>`;
}

export function Certificates() {
  const [tenant, setTenant] = useState('');
  const [state, setState] = useState<Row | undefined>();
  const [verified, setVerified] = useState<string | undefined>();
  const action = useAction();
  const load = action.submit(async () => {
    setVerified(undefined);
    setState(await api<Row>('GET', `/tenants/${tenant}/deletion`));
  });
  const certificate = state?.certificate as { certificate: Row; jws: string } | undefined;
  const verify = () =>
    action.run(async () => {
      // Checked here against the published keys, as anyone holding the certificate can.
      const keys = createLocalJWKSet(await api<JSONWebKeySet>('GET', '/deletion-certificates/keys'));
      const { payload } = await compactVerify(certificate?.jws ?? '', keys);
      const signed = JSON.parse(new TextDecoder().decode(payload)) as Row;
      setVerified(signed.tenant === tenant ? 'Signature verified' : 'Signed for another tenant');
    });
  const download = certificate
    ? URL.createObjectURL(new Blob([JSON.stringify(certificate, null, 2)], { type: 'application/json' }))
    : undefined;
  return html`<section>
    <h2>Deletion certificates</h2>
    <form onSubmit=${load} aria-label="Deletion of a tenant">
      <${Field} label="Tenant" name="certificateTenant" value=${tenant} onInput=${setTenant} required />
      <button type="submit">Show deletion</button>
    </form>
    <${Outcome} error=${action.error} />
    ${
      state &&
      html`<article aria-label="Deletion state">
        <p>Status: <strong data-testid="certificate-status">${String(state.status)}</strong></p>
        ${
          certificate
            ? html`<pre>
${JSON.stringify((certificate.certificate as Row).verification ?? certificate.certificate, null, 2)}</pre>
                <p><a href=${download} download=${`deletion-certificate-${tenant}.json`}>Download certificate</a></p>
                <button type="button" onClick=${() => void verify()}>Verify signature</button>
                ${verified ? html`<mark data-testid="certificate-verified">${verified}</mark>` : null}`
            : html`<p>No certificate yet.</p>`
        }
      </article>`
    }
  </section>`;
}

export function Backups() {
  const list = useLoad<{ items: Row[] }>('/backups');
  const action = useAction();
  const [started, setStarted] = useState<string | undefined>();
  const [drill, setDrill] = useState<Row | undefined>();
  const start = () =>
    action.run(async () => {
      setStarted((await api<{ backupId: string }>('POST', '/backups')).backupId);
      list.reload();
    });
  const runDrill = (backupId: string) =>
    action.run(async () => {
      setDrill(undefined);
      setDrill(await api<Row>('POST', `/backups/${backupId}/restore-drills`));
      list.reload();
    });
  return html`<section>
    <h2>Backups</h2>
    <p>
      Nightly and on demand; every table encrypted and checksummed into WORM storage. A restore drill reads every table
      back as a restore would (both checksums, decryption with the backup key, every entity counted); a full restore
      into an empty account is <code>npm run -s admin -- backup restore</code>.
    </p>
    <button type="button" onClick=${() => void start()}>Start backup now</button>
    <${Outcome}
      error=${action.error ?? list.error}
      done=${started && html`<p>Backup <code data-testid="backup-started">${started}</code> started.</p>`}
    />
    <button type="button" class="outline" onClick=${list.reload}>Refresh backups</button>
    <${DataTable}
      label="Backups"
      empty="No finished backups yet."
      rows=${list.data?.items}
      columns=${[
        { title: 'Backup', cell: (b: Row) => String(b.backupId) },
        { title: 'Created', cell: (b: Row) => when(b.createdAt) },
        { title: 'Tables', cell: (b: Row) => String(b.tables) },
        { title: 'Rows', cell: (b: Row) => String(b.entities) },
        {
          title: 'Last restore drill',
          testId: 'last-drill',
          cell: (b: Row) => {
            const last = b.lastDrill as Row | null;
            return last ? `${last.passed ? 'passed' : 'FAILED'} ${when(last.at)} (${String(last.kind)})` : 'never';
          },
        },
        {
          title: '',
          cell: (b: Row) =>
            html`<button type="button" class="outline" onClick=${() => void runDrill(String(b.backupId))}>
              Run restore drill on ${String(b.backupId)}
            </button>`,
        },
      ]}
    />
    ${
      drill &&
      html`<article aria-label="Restore drill">
        <header>
          Drill of <code>${String(drill.backupId)}</code>:
          <mark data-testid="drill-result">${drill.passed ? 'passed' : 'failed'}</mark> in ${String(drill.durationMs)}
          ms
        </header>
        <${DataTable}
          label="Tables read back"
          empty="The backup has no tables."
          rows=${drill.tables as Row[]}
          columns=${[
            { title: 'Table', cell: (t: Row) => String(t.table) },
            { title: 'Entities', cell: (t: Row) => String(t.entities) },
            {
              title: 'Verified',
              cell: (t: Row) => (t.verified ? 'yes' : `no: ${String(t.reason ?? 'count differs')}`),
            },
          ]}
        />
      </article>`
    }
  </section>`;
}

export function Orchestrations() {
  const list = useLoad<{ items: Row[] }>('/orchestrations');
  return html`<section>
    <h2>Orchestrations</h2>
    <${Outcome} error=${list.error} />
    <button type="button" class="outline" onClick=${list.reload}>Refresh orchestrations</button>
    <${DataTable}
      label="Orchestrations"
      empty="No orchestrations."
      rows=${list.data?.items}
      columns=${[
        { title: 'Name', cell: (o: Row) => String(o.name) },
        { title: 'Instance', cell: (o: Row) => html`<code>${String(o.instanceId)}</code>` },
        { title: 'Status', cell: (o: Row) => String(o.runtimeStatus) },
        { title: 'Last update', cell: (o: Row) => when(o.lastUpdatedTime) },
      ]}
    />
  </section>`;
}
