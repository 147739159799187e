// The tenant admin's pages: users and roles, integrations, exports, the audit trail, breach
// notifications, retention, staff access.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import {
  Clock,
  CurrentPasswordField,
  DataTable,
  downloadAndVerify,
  Field,
  html,
  Outcome,
  useAction,
  useLoad,
  when,
  type Me,
  type Row,
} from '../ui.js';

export function Users() {
  const users = useLoad<{ items: Row[] }>('/users');
  const roles = useLoad<{ items: Row[] }>('/roles');
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('self');
  const action = useAction();
  const [created, setCreated] = useState<Row | undefined>();
  const submit = action.submit(async () => {
    setCreated(await api('POST', '/users', { username, email, roles: [role] }));
    users.reload();
  });
  const change = useAction();
  const setRoles = (id: string, next: string) =>
    change.run(async () => {
      await api('PATCH', `/users/${id}`, { roles: [next] });
      users.reload();
    });
  const setStatus = (id: string, status: 'active' | 'deactivated') =>
    change.run(async () => {
      await api('PATCH', `/users/${id}`, { status });
      users.reload();
    });
  const roleOptions = (selected?: string) =>
    (roles.data?.items ?? []).map(
      (r) => html`<option value=${String(r.name)} selected=${r.name === selected}>${String(r.name)}</option>`,
    );
  return html`<section>
    <h2>Users</h2>
    <${Outcome} error=${users.error ?? change.error} />
    <${DataTable}
      label="Users"
      empty="No users."
      rows=${users.data?.items}
      columns=${[
        { title: 'Username', cell: (u: Row) => String(u.username) },
        { title: 'Roles', cell: (u: Row) => (u.roles as string[]).join(', '), testId: 'user-roles' },
        { title: 'Status', cell: (u: Row) => String(u.status) },
        {
          title: 'Change',
          cell: (u: Row) =>
            html`<label
                >Role of ${String(u.username)}
                <select
                  name=${`role-${String(u.username)}`}
                  onChange=${(e: Event) => void setRoles(String(u.id), (e.target as HTMLSelectElement).value)}
                >
                  ${roleOptions((u.roles as string[])[0])}
                </select></label
              >
              ${
                u.status === 'active'
                  ? html`<button
                      type="button"
                      class="secondary"
                      onClick=${() => void setStatus(String(u.id), 'deactivated')}
                    >
                      Deactivate ${String(u.username)}
                    </button>`
                  : html`<button type="button" class="outline" onClick=${() => void setStatus(String(u.id), 'active')}>
                      Reactivate ${String(u.username)}
                    </button>`
              }`,
        },
      ]}
    />
    <form onSubmit=${submit} aria-label="New user">
      <h3>New user</h3>
      <${Field} label="Username" name="username" value=${username} onInput=${setUsername} required />
      <${Field} label="E-mail" name="email" type="email" value=${email} onInput=${setEmail} required />
      <label
        >Role (a new account may only edit its own profile unless given more)
        <select name="role" onChange=${(e: Event) => setRole((e.target as HTMLSelectElement).value)}>
          ${roleOptions(role)}
        </select>
      </label>
      <button type="submit">Create user</button>
      <${Outcome}
        error=${action.error}
        done=${
          created &&
          html`<p>
            Created <strong>${String(created.username)}</strong>. One-time password (shown once):
            <code data-testid="one-time-password">${String(created.initialPassword)}</code>
          </p>`
        }
      />
    </form>
  </section>`;
}

export function Roles() {
  const roles = useLoad<{ items: Row[] }>('/roles');
  const [name, setName] = useState('');
  const [permissions, setPermissions] = useState<string[]>(['profile:read', 'profile:update']);
  const action = useAction();
  const [saved, setSaved] = useState<string | undefined>();
  const toggle = (p: string) =>
    setPermissions((current) => (current.includes(p) ? current.filter((x) => x !== p) : [...current, p]));
  const edit = (role: Row) => {
    setName(String(role.name));
    setPermissions(role.permissions as string[]);
    setSaved(undefined);
  };
  const save = action.submit(async () => {
    await api('PUT', `/roles/${encodeURIComponent(name)}`, { permissions });
    setSaved(name);
    roles.reload();
  });
  // The vocabulary is what the built-in tenant-admin role holds: all of it, as the API defines it.
  const vocabulary = ((roles.data?.items ?? []).find((r) => r.name === 'tenant-admin')?.permissions ?? []) as string[];
  const remove = (role: string) =>
    action.run(async () => {
      await api('DELETE', `/roles/${encodeURIComponent(role)}`);
      roles.reload();
    });
  return html`<section>
    <h2>Roles</h2>
    <p>
      Built-in roles cannot change. <strong>self</strong> is what a new account gets: it may read and edit its own
      profile and nothing else until an admin gives it more.
    </p>
    <${Outcome} error=${roles.error} />
    <${DataTable}
      label="Roles"
      empty="No roles."
      rows=${roles.data?.items}
      columns=${[
        { title: 'Role', cell: (r: Row) => String(r.name) },
        { title: 'Permissions', cell: (r: Row) => (r.permissions as string[]).join(', '), testId: 'role-permissions' },
        {
          title: 'Change',
          cell: (r: Row) =>
            r.builtIn
              ? 'built in'
              : html`<button type="button" class="outline" onClick=${() => edit(r)}>Edit role ${String(r.name)}</button>
                  <button type="button" class="secondary" onClick=${() => void remove(String(r.name))}>
                    Delete role ${String(r.name)}
                  </button>`,
        },
      ]}
    />
    <form onSubmit=${save} aria-label="Custom role">
      <h3>Define or change a custom role</h3>
      <${Field} label="Role name" name="roleName" value=${name} onInput=${setName} required />
      <fieldset>
        <legend>Permissions of the role</legend>
        ${vocabulary.map(
          (p) =>
            html`<label
              ><input
                type="checkbox"
                name="rolePermissions"
                checked=${permissions.includes(p)}
                onChange=${() => toggle(p)}
              />
              ${p}</label
            >`,
        )}
      </fieldset>
      <button type="submit">Save role</button>
      <${Outcome} error=${action.error} done=${saved && html`<p>Role <strong>${saved}</strong> saved.</p>`} />
    </form>
  </section>`;
}

const KEY_PERMISSIONS = ['orders:create', 'orders:read', 'orders:update', 'images:upload', 'images:read', 'audit:read'];

export function Integrations() {
  const list = useLoad<{ items: Row[] }>('/integrations');
  const [name, setName] = useState('');
  const [permissions, setPermissions] = useState<string[]>(['orders:create', 'orders:read']);
  const [password, setPassword] = useState('');
  const action = useAction();
  const [key, setKey] = useState<string | undefined>();
  const [copied, setCopied] = useState(false);
  const toggle = (p: string) =>
    setPermissions((current) => (current.includes(p) ? current.filter((x) => x !== p) : [...current, p]));
  const submit = action.submit(async () => {
    const created = await api<{ apiKey: string }>('POST', '/integrations', {
      name,
      permissions,
      currentPassword: password,
    });
    setKey(created.apiKey);
    setPassword('');
    list.reload();
  });
  const copy = async () => {
    if (key) await navigator.clipboard.writeText(key);
    setCopied(true);
  };
  return html`<section>
    <h2>Integrations</h2>
    <${DataTable}
      label="Integrations"
      empty="No integrations yet."
      rows=${list.data?.items}
      columns=${[
        { title: 'Name', cell: (i: Row) => String(i.name) },
        { title: 'Permissions', cell: (i: Row) => (i.permissions as string[]).join(', ') },
        { title: 'Created', cell: (i: Row) => when(i.createdAt) },
      ]}
    />
    <form onSubmit=${submit} aria-label="New integration">
      <h3>New integration</h3>
      <${Field} label="Name" name="name" value=${name} onInput=${setName} required />
      <fieldset>
        <legend>Permissions of the key</legend>
        ${KEY_PERMISSIONS.map(
          (p) =>
            html`<label
              ><input
                type="checkbox"
                name="permissions"
                checked=${permissions.includes(p)}
                onChange=${() => toggle(p)}
              />
              ${p}</label
            >`,
        )}
      </fieldset>
      <${CurrentPasswordField} value=${password} onInput=${setPassword} />
      <button type="submit">Create integration</button>
      <${Outcome}
        error=${action.error}
        done=${
          key &&
          html`<p>API key (shown once, stored only as a hash): <code data-testid="api-key">${key}</code></p>
            <button type="button" onClick=${copy}>Copy key</button> ${copied ? 'Copied.' : ''}`
        }
      />
    </form>
  </section>`;
}

export function Exports() {
  const [format, setFormat] = useState('ndjson');
  const [password, setPassword] = useState('');
  const [exportId, setExportId] = useState<string | undefined>();
  const [status, setStatus] = useState<Row | undefined>();
  const [downloadPassword, setDownloadPassword] = useState('');
  const [link, setLink] = useState<{ url: string; expiresAt: string } | undefined>();
  const [checked, setChecked] = useState<{ matches: boolean; url: string } | undefined>();
  const action = useAction();
  useEffect(() => {
    if (!exportId) return;
    let stop = false;
    const poll = () =>
      action.run(async () => {
        const current = await api<Row>('GET', `/exports/${exportId}`);
        setStatus(current);
        // pending, then running, until completed or failed
        if (!stop && current.status !== 'completed' && current.status !== 'failed') setTimeout(() => void poll(), 1000);
      });
    void poll();
    return () => {
      stop = true;
    };
  }, [exportId]);
  const start = action.submit(async () => {
    setStatus(undefined);
    setLink(undefined);
    setChecked(undefined);
    setExportId((await api<{ id: string }>('POST', '/exports', { format, currentPassword: password })).id);
    setPassword('');
  });
  const progress = status?.progress as { partsDone?: number; partsTotal?: number; phase?: string } | undefined;
  // A person's archive comes only with their password (a stolen session token alone takes none):
  // the status carries the checksum, the password brings the bytes or a link.
  const download = status?.download as { sha256: string; bytes: number } | undefined;
  const manifest = status?.manifest as { files: number; counts: Record<string, number> } | undefined;
  const verify = () =>
    action.run(async () => {
      const body = { currentPassword: downloadPassword };
      setDownloadPassword('');
      setChecked(await downloadAndVerify(`/exports/${exportId}/archive`, body, download?.sha256));
    });
  // A link straight to storage, for archives too big to hold in the page (valid 24 hours at most).
  const takeLink = () =>
    action.run(async () => {
      setLink(
        await api<{ url: string; expiresAt: string }>('POST', `/exports/${exportId}/links`, {
          currentPassword: downloadPassword,
        }),
      );
      setDownloadPassword('');
    });
  return html`<section>
    <h2>Data export</h2>
    <form onSubmit=${start} aria-label="Start export">
      <label
        >Format
        <select
          name="format"
          value=${format}
          onChange=${(e: Event) => setFormat((e.target as HTMLSelectElement).value)}
        >
          <option value="ndjson">NDJSON</option>
          <option value="fhir">FHIR R4 (Bulk Data NDJSON)</option>
        </select>
      </label>
      <${CurrentPasswordField} value=${password} onInput=${setPassword} />
      <button type="submit">Start export</button>
    </form>
    <${Outcome} error=${action.error} />
    ${
      status &&
      html`<div role="status">
        <p>
          Export <code>${exportId}</code>:
          <strong data-testid="export-status">${String(status.status)}</strong> (${progress?.phase ?? ''})
        </p>
        <label
          >Progress
          <progress value=${progress?.partsDone ?? 0} max=${progress?.partsTotal ?? 1}></progress>
        </label>
        ${
          download &&
          html`<p>
              Archive: ${download.bytes} bytes, SHA-256 <code data-testid="export-sha256">${download.sha256}</code>
            </p>
            <form aria-label="Download archive" onSubmit=${(e: Event) => e.preventDefault()}>
              <${CurrentPasswordField} value=${downloadPassword} onInput=${setDownloadPassword} />
              <button type="button" onClick=${() => void verify()}>Download and verify checksum</button>
              <button type="button" class="outline" onClick=${() => void takeLink()}>Get a download link</button>
            </form>
            ${
              link &&
              html`<p>
                <a href=${link.url} download="export.zip">Download archive</a> (link valid until
                ${when(link.expiresAt)})
              </p>`
            }
            ${
              checked &&
              html`<p>
                <mark data-testid="export-verified">${checked.matches ? 'Checksum matches' : 'Checksum differs'}</mark>
                ${checked.matches ? html` <a href=${checked.url} download="export.zip">Save verified archive</a>` : null}
              </p>`
            }`
        }
        ${
          manifest &&
          html`<h3>Manifest</h3>
            <p>${manifest.files} files, each with its SHA-256 in <code>manifest.json</code>.</p>
            <${DataTable}
              label="Records in the archive"
              empty="No records."
              rows=${Object.entries(manifest.counts).map(([type, count]) => ({ type, count }))}
              columns=${[
                { title: 'Type', cell: (r: Row) => String(r.type) },
                { title: 'Records', cell: (r: Row) => String(r.count), testId: 'manifest-count' },
              ]}
            />`
        }
      </div>`
    }
  </section>`;
}

export function Audit() {
  const verify = useLoad<{ valid: boolean; entries?: number; anchors?: { lastAnchoredAt?: string } }>('/audit/verify');
  const entries = useLoad<{ items: Row[] }>('/audit?limit=200');
  const [filter, setFilter] = useState('');
  const shown = (entries.data?.items ?? []).filter((e) => String(e.event).includes(filter));
  return html`<section>
    <h2>Audit trail</h2>
    <p>
      ${
        verify.data
          ? html`<mark data-testid="chain-badge">${verify.data.valid ? 'Chain verified' : 'Chain broken'}</mark>`
          : 'Verifying the chain…'
      }
      ${
        verify.data &&
        html` ${
          verify.data.anchors?.lastAnchoredAt
            ? `Checked against its write-once anchors, the last from ${when(verify.data.anchors.lastAnchoredAt)}.`
            : 'No write-once anchor yet (they are written every hour).'
        }`
      }
    </p>
    <${Field} label="Filter by event" name="filter" value=${filter} onInput=${setFilter} />
    <${DataTable}
      label="Audit entries"
      empty="No entries match."
      rows=${shown}
      columns=${[
        { title: 'Time', cell: (e: Row) => when(e.at) },
        { title: 'Event', cell: (e: Row) => String(e.event) },
        { title: 'Outcome', cell: (e: Row) => String(e.outcome) },
        { title: 'Actor', cell: (e: Row) => String((e.actor as Row).type) },
      ]}
    />
  </section>`;
}

export function Notifications() {
  const list = useLoad<{ items: Row[] }>('/breach-notifications');
  const action = useAction();
  const acknowledge = (id: string) =>
    action.run(async () => {
      await api('POST', `/breach-notifications/${id}/acknowledgement`);
      list.reload();
    });
  return html`<section>
    <h2>Breach notifications</h2>
    <${Outcome} error=${action.error ?? list.error} />
    ${(list.data?.items ?? []).length === 0 ? html`<p>No breach notifications.</p>` : null}
    ${(list.data?.items ?? []).map(
      (n) =>
        html`<article>
          <header>
            <strong>Notification ${String(n.sequence ?? '')}</strong> of breach <code>${String(n.breachId)}</code>
          </header>
          <p>${String((n.content as Row | undefined)?.description ?? '')}</p>
          ${
            typeof (n.content as Row | undefined)?.controllerDeadline === 'string'
              ? html`<${Clock}
                  label="Your 72 hours to notify the authority"
                  start=${String((n.content as Row).awareAt ?? n.sentAt)}
                  deadline=${String((n.content as Row).controllerDeadline)}
                />`
              : null
          }
          <footer>
            ${
              n.acknowledgedAt
                ? html`<span data-testid="acknowledged">Acknowledged ${when(n.acknowledgedAt)}</span>`
                : html`<button type="button" onClick=${() => void acknowledge(String(n.id))}>Acknowledge</button>`
            }
          </footer>
        </article>`,
    )}
  </section>`;
}

export function Retention() {
  const current = useLoad<{ policy: Row; bounds: Row }>('/retention');
  const notices = useLoad<{ items: Row[] }>('/notices');
  const action = useAction();
  const deletion = useAction();
  const [form, setForm] = useState<Record<string, string> | undefined>();
  const [saved, setSaved] = useState(false);
  const [password, setPassword] = useState('');
  const [deletionStarted, setDeletionStarted] = useState(false);
  const policy = current.data?.policy;
  const bounds = current.data?.bounds;
  const values =
    form ?? (policy ? Object.fromEntries(Object.entries(policy).map(([k, v]) => [k, String(v)])) : undefined);
  const save = action.submit(async () => {
    setSaved(false);
    await api('PUT', '/retention', {
      imagesDays: Number(values?.imagesDays),
      ordersDays: Number(values?.ordersDays),
      afterContractEndDays: Number(values?.afterContractEndDays),
    });
    setSaved(true);
    current.reload();
  });
  const me = useLoad<Me>('/me');
  const deleteNow = deletion.submit(async () => {
    await api('POST', `/tenants/${me.data?.realm}/deletion/confirmation`, { currentPassword: password });
    setDeletionStarted(true);
  });
  const field = (key: string, label: string) =>
    html`<${Field}
      label=${label}
      name=${key}
      type="number"
      value=${values?.[key] ?? ''}
      onInput=${(v: string) => setForm({ ...(values ?? {}), [key]: v })}
      required
    />`;
  return html`<section>
    <h2>Retention</h2>
    <${Outcome} error=${current.error} />
    ${
      values &&
      html`<form onSubmit=${save} aria-label="Retention policy">
        ${field('ordersDays', `Keep orders (days; ${bounds?.minOrdersDays}–${bounds?.maxOrdersDays})`)}
        ${field('imagesDays', `Keep images (days; ${bounds?.minImagesDays}–${bounds?.maxImagesDays}, never longer than orders)`)}
        ${field('afterContractEndDays', `Keep after contract end (days; at least ${bounds?.minAfterContractEndDays})`)}
        <button type="submit">Save retention policy</button>
        <${Outcome} error=${action.error} done=${saved && html`<p>Saved.</p>`} />
      </form>`
    }
    <h3>Notices</h3>
    ${(notices.data?.items ?? []).length === 0 ? html`<p>No notices.</p>` : null}
    ${(notices.data?.items ?? []).map((n) => html`<article data-testid="notice">${JSON.stringify(n)}</article>`)}
    ${
      (notices.data?.items ?? []).length > 0 &&
      html`<form onSubmit=${deleteNow} aria-label="Delete now">
        <h3>Delete everything now</h3>
        <p>
          Your decision as the controller: the deletion starts at once instead of on its date, and cannot be undone.
          Export first.
        </p>
        <${Field}
          label="Your current password, to confirm"
          name="deletionPassword"
          type="password"
          value=${password}
          onInput=${setPassword}
          required
          autocomplete="current-password"
        />
        <button type="submit">Delete all data now</button>
        <${Outcome}
          error=${deletion.error}
          done=${deletionStarted && html`<p data-testid="deletion-started">Deletion started.</p>`}
        />
      </form>`
    }
  </section>`;
}

export function StaffAccess() {
  const list = useLoad<{ items: Row[] }>('/access-requests');
  const action = useAction();
  const decide = (id: string, approve: boolean) =>
    action.run(async () => {
      await api('POST', `/access-requests/${id}/approval`, { approve });
      list.reload();
    });
  const revoke = (id: string) =>
    action.run(async () => {
      await api('POST', `/access-requests/${id}/revocation`);
      list.reload();
    });
  return html`<section>
    <h2>Staff access</h2>
    <p>
      LabVault's operators reach your data only with a time-boxed grant you approve; every call under it is in your
      audit trail.
    </p>
    <${Outcome} error=${action.error ?? list.error} />
    <${DataTable}
      label="Staff access requests"
      empty="No staff access requests."
      rows=${list.data?.items}
      columns=${[
        { title: 'Requested', cell: (r: Row) => when(r.requestedAt) },
        { title: 'Reason', cell: (r: Row) => String(r.reason) },
        { title: 'Minutes', cell: (r: Row) => String(r.minutes) },
        { title: 'Permissions', cell: (r: Row) => (r.permissions as string[]).join(', ') },
        {
          title: 'Status',
          testId: 'access-status',
          cell: (r: Row) =>
            html`${r.revokedAt ? 'revoked' : String(r.status)}${r.expiresAt && !r.revokedAt ? html` until ${when(r.expiresAt)}` : ''}`,
        },
        {
          title: 'Decision',
          cell: (r: Row) =>
            r.status === 'pending'
              ? html`<button type="button" onClick=${() => void decide(String(r.id), true)}>Approve</button>
                  <button type="button" class="secondary" onClick=${() => void decide(String(r.id), false)}>
                    Deny
                  </button>`
              : r.status === 'approved' && !r.revokedAt
                ? html`<button type="button" class="secondary" onClick=${() => void revoke(String(r.id))}>
                    End access now
                  </button>`
                : null,
        },
      ]}
    />
  </section>`;
}
