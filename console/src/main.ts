// LabVault's console: Preact + htm (no JSX build step, about 5 kB), Pico's classless CSS, a hash
// router. Every page is a form or a table over the same /api a curl user calls; nothing here holds
// rules of its own. Forms have visible labels and actions are buttons with their name on them.
import { h, render, type ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import QRCode from 'qrcode';
import { api, hasToken, messageOf, setToken } from './api.js';

const html = htm.bind(h);

interface Me {
  id: string;
  username: string;
  realm: string;
  roles: string[];
  permissions: string[];
}

type Row = Record<string, unknown>;

// ── small building blocks ──────────────────────────────────────────────────────────────────────

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

/** Loads `path` once (and again on `reload()`); errors shown where the data would be. */
function useLoad<T>(path: string | undefined): { data: T | undefined; error: string | undefined; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return;
    api<T>('GET', path).then(
      (d) => {
        setData(d);
        setError(undefined);
      },
      (e: unknown) => setError(messageOf(e)),
    );
  }, [path, tick]);
  return { data, error, reload: useCallback(() => setTick((t) => t + 1), []) };
}

/** What a form or button starts: its error is shown until the next attempt. */
function useAction(): {
  error: string | undefined;
  run: (work: () => Promise<unknown>) => Promise<void>;
  submit: (work: () => Promise<unknown>) => (e: Event) => void;
} {
  const [error, setError] = useState<string | undefined>();
  const run = async (work: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await work();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return {
    error,
    run,
    submit: (work) => (e: Event) => {
      e.preventDefault();
      void run(work);
    },
  };
}

function Field(props: {
  label: string;
  name: string;
  type?: string;
  value: string;
  onInput: (value: string) => void;
  required?: boolean;
  autocomplete?: string;
}) {
  return html`<label
    >${props.label}
    <input
      name=${props.name}
      type=${props.type ?? 'text'}
      value=${props.value}
      required=${props.required ?? false}
      autocomplete=${props.autocomplete ?? 'off'}
      onInput=${(e: Event) => props.onInput((e.target as HTMLInputElement).value)}
  /></label>`;
}

function Outcome({ error, done }: { error?: string | undefined; done?: ComponentChildren }) {
  if (error) return html`<p role="alert" class="error">${error}</p>`;
  if (done) return html`<div role="status">${done}</div>`;
  return null;
}

const when = (iso: unknown) => (typeof iso === 'string' ? new Date(iso).toLocaleString() : '–');

/** Hours and minutes until `deadline` (negative: overdue). */
function remaining(deadline: string): string {
  const ms = new Date(deadline).getTime() - Date.now();
  const abs = Math.abs(ms);
  const text = `${Math.floor(abs / 3_600_000)} h ${Math.floor((abs % 3_600_000) / 60_000)} min`;
  return ms >= 0 ? `${text} left` : `overdue by ${text}`;
}

/** A clock drawn as a bar: how much of the time from `start` to `deadline` has passed. */
function Clock({ label, start, deadline }: { label: string; start: string; deadline: string }) {
  const total = new Date(deadline).getTime() - new Date(start).getTime();
  const passed = Math.min(1, Math.max(0, (Date.now() - new Date(start).getTime()) / total));
  const text = `${label}: ${remaining(deadline)} (due ${when(deadline)})`;
  return html`<figure class="clock">
    <svg viewBox="0 0 300 14" role="img" aria-label=${text} width="300" height="14">
      <rect x="0" y="0" width="300" height="14" rx="3" class="clock-total" />
      <rect
        x="0"
        y="0"
        width=${Math.round(300 * passed)}
        height="14"
        rx="3"
        class=${passed >= 1 ? 'clock-over' : 'clock-used'}
      />
    </svg>
    <figcaption>${text}</figcaption>
  </figure>`;
}

/** Dates on one line, in proportion: a termination's notice, export window and deletion date. */
function Timeline({ points }: { points: { label: string; at: string }[] }) {
  const dated = points.filter((p) => p.at).map((p) => ({ ...p, t: new Date(p.at).getTime() }));
  if (dated.length === 0) return null;
  const min = Math.min(...dated.map((p) => p.t), Date.now());
  const max = Math.max(...dated.map((p) => p.t), Date.now());
  const x = (t: number) => 20 + Math.round(((t - min) / Math.max(1, max - min)) * 560);
  const summary = dated.map((p) => `${p.label} ${when(p.at)}`).join('; ');
  return html`<svg
    viewBox="0 0 600 ${40 + dated.length * 16}"
    role="img"
    aria-label=${`Timeline: ${summary}`}
    class="timeline"
  >
    <line x1="20" y1="20" x2="580" y2="20" class="timeline-axis" />
    <line x1=${x(Date.now())} y1="8" x2=${x(Date.now())} y2="32" class="timeline-now" />
    ${dated.map(
      (p, i) =>
        html`<g>
          <circle cx=${x(p.t)} cy="20" r="6" class="timeline-point" />
          <text x=${Math.min(x(p.t), 250)} y=${48 + i * 16}>${p.label}: ${when(p.at)}</text>
        </g>`,
    )}
  </svg>`;
}

// ── signing in ─────────────────────────────────────────────────────────────────────────────────

function Login({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [tenant, setTenant] = useState('');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [newPassword, setNewPassword] = useState('');
  const [mustChange, setMustChange] = useState(false);
  const action = useAction();

  const signIn = async (secret: string) => {
    const tokens = await api<{ accessToken: string; mustChangePassword: boolean }>('POST', '/auth/login', {
      tenant,
      username,
      password: secret,
      ...(totp ? { totp } : {}),
    });
    setToken(tokens.accessToken);
    return tokens.mustChangePassword;
  };
  const submit = action.submit(async () => {
    if (mustChange) {
      await api('POST', '/auth/password', { currentPassword: password, newPassword });
      await signIn(newPassword);
      onSignedIn(await api<Me>('GET', '/me'));
    } else if (await signIn(password)) setMustChange(true);
    else onSignedIn(await api<Me>('GET', '/me'));
  });
  return html`<main class="container">
    <h1>LabVault console</h1>
    <form onSubmit=${submit} aria-label=${mustChange ? 'Change password' : 'Log in'}>
      ${
        mustChange
          ? html`<p>This is a one-time password: choose your own before you go on (15 characters or more).</p>
              <${Field}
                label="New password"
                name="newPassword"
                type="password"
                value=${newPassword}
                onInput=${setNewPassword}
                required
                autocomplete="new-password"
              />
              <button type="submit">Change password</button>`
          : html`<${Field}
                label="Tenant (operator for LabVault staff)"
                name="tenant"
                value=${tenant}
                onInput=${setTenant}
                required
              />
              <${Field}
                label="Username"
                name="username"
                value=${username}
                onInput=${setUsername}
                required
                autocomplete="username"
              />
              <${Field}
                label="Password"
                name="password"
                type="password"
                value=${password}
                onInput=${setPassword}
                required
                autocomplete="current-password"
              />
              <${Field}
                label="One-time code (if you use a second factor)"
                name="totp"
                value=${totp}
                onInput=${setTotp}
                autocomplete="one-time-code"
              />
              <button type="submit">Log in</button>`
      }
      <${Outcome} error=${action.error} />
    </form>
  </main>`;
}

// ── tenant admin ───────────────────────────────────────────────────────────────────────────────

function Users() {
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
  return html`<section>
    <h2>Users</h2>
    <${Outcome} error=${users.error} />
    <table>
      <thead>
        <tr>
          <th scope="col">Username</th>
          <th scope="col">Roles</th>
          <th scope="col">Status</th>
        </tr>
      </thead>
      <tbody>
        ${(users.data?.items ?? []).map(
          (u) =>
            html`<tr>
              <td>${String(u.username)}</td>
              <td>${(u.roles as string[]).join(', ')}</td>
              <td>${String(u.status)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    <form onSubmit=${submit} aria-label="New user">
      <h3>New user</h3>
      <${Field} label="Username" name="username" value=${username} onInput=${setUsername} required />
      <${Field} label="E-mail" name="email" type="email" value=${email} onInput=${setEmail} required />
      <label
        >Role (a new account may only edit its own profile unless given more)
        <select name="role" value=${role} onChange=${(e: Event) => setRole((e.target as HTMLSelectElement).value)}>
          ${(roles.data?.items ?? []).map((r) => html`<option value=${String(r.name)}>${String(r.name)}</option>`)}
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

const KEY_PERMISSIONS = ['orders:create', 'orders:read', 'orders:update', 'images:upload', 'images:read', 'audit:read'];

function Integrations() {
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
    <table>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Permissions</th>
        </tr>
      </thead>
      <tbody>
        ${(list.data?.items ?? []).map(
          (i) =>
            html`<tr>
              <td>${String(i.name)}</td>
              <td>${(i.permissions as string[]).join(', ')}</td>
            </tr>`,
        )}
      </tbody>
    </table>
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
      <${Field}
        label="Your current password"
        name="currentPassword"
        type="password"
        value=${password}
        onInput=${setPassword}
        required
        autocomplete="current-password"
      />
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

function Exports() {
  const [format, setFormat] = useState('ndjson');
  const [exportId, setExportId] = useState<string | undefined>();
  const [status, setStatus] = useState<Row | undefined>();
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
    setExportId((await api<{ id: string }>('POST', '/exports', { format })).id);
  });
  const progress = status?.progress as { partsDone?: number; partsTotal?: number; phase?: string } | undefined;
  const download = status?.download as { url: string; sha256: string; bytes: number; expiresAt: string } | undefined;
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
              <a href=${download.url} download="export.zip">Download archive</a> (${download.bytes} bytes, link valid
              until ${when(download.expiresAt)})
            </p>
            <p>SHA-256: <code data-testid="export-sha256">${download.sha256}</code></p>`
        }
      </div>`
    }
  </section>`;
}

function Audit() {
  const verify = useLoad<{ valid: boolean; entries?: number }>('/audit/verify');
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
    </p>
    <${Field} label="Filter by event" name="filter" value=${filter} onInput=${setFilter} />
    <table>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Event</th>
          <th scope="col">Outcome</th>
          <th scope="col">Actor</th>
        </tr>
      </thead>
      <tbody>
        ${shown.map(
          (e) =>
            html`<tr>
              <td>${when(e.at)}</td>
              <td>${String(e.event)}</td>
              <td>${String(e.outcome)}</td>
              <td>${String((e.actor as Row).type)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function Notifications() {
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

// ── operators and security officers ────────────────────────────────────────────────────────────

function Tenants() {
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState('');
  const [email, setEmail] = useState('');
  const action = useAction();
  const [created, setCreated] = useState<Row | undefined>();
  const [target, setTarget] = useState('');
  const [endsAt, setEndsAt] = useState(new Date().toISOString().slice(0, 10));
  const [deletion, setDeletion] = useState<Row | undefined>();
  const termination = useAction();
  const create = action.submit(async () => {
    setCreated(await api('POST', '/tenants', { id, name, admin: { username: admin, email } }));
  });
  const show = async () => setDeletion(await api<Row>('GET', `/tenants/${target}/deletion`));
  const terminate = termination.submit(async () => {
    await api('POST', `/tenants/${target}/termination`, { contractEndsAt: new Date(endsAt).toISOString() });
    await show();
  });
  const withdraw = () =>
    termination.run(async () => {
      await api('DELETE', `/tenants/${target}/termination`);
      await show();
    });
  return html`<section>
    <h2>Tenants</h2>
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
          Deletion of <strong>${String(deletion.tenant)}</strong>:${' '}<span data-testid="deletion-status"
            >${String(deletion.status)}</span
          >
        </header>
        <${Timeline}
          points=${[
            { label: 'Termination recorded', at: deletion.recordedAt as string },
            { label: 'Contract ends', at: deletion.contractEndsAt as string },
            { label: 'Notice and export window end', at: deletion.noticeEndsAt as string },
            { label: 'Deletion', at: deletion.deleteAt as string },
          ]}
        />
        ${
          deletion.status === 'scheduled'
            ? html`<button type="button" class="secondary" onClick=${() => void withdraw()}>
                Withdraw termination
              </button>`
            : null
        }
      </article>`
    }
  </section>`;
}

function Breaches() {
  const register = useLoad<{ items: Row[] }>('/breaches');
  const [tenants, setTenants] = useState('');
  const [description, setDescription] = useState('');
  const [categories, setCategories] = useState('orders');
  const [consequences, setConsequences] = useState('');
  const [measures, setMeasures] = useState('');
  const action = useAction();
  const [detail, setDetail] = useState<Row | undefined>();
  const report = action.submit(async () => {
    const { id } = await api<{ id: string }>('POST', '/breaches', {
      detectedAt: new Date().toISOString(),
      tenants: tenants
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
      description,
      dataCategories: categories
        .split(',')
        .map((c) => c.trim())
        .filter(Boolean),
      likelyConsequences: consequences,
      measures,
    });
    register.reload();
    setDetail(await api<Row>('GET', `/breaches/${id}`));
  });
  const open = async (id: string) => setDetail(await api<Row>('GET', `/breaches/${id}`));
  return html`<section>
    <h2>Breach register</h2>
    <table>
      <thead>
        <tr>
          <th scope="col">Detected</th>
          <th scope="col">Status</th>
          <th scope="col">Description</th>
          <th scope="col"></th>
        </tr>
      </thead>
      <tbody>
        ${(register.data?.items ?? []).map(
          (b) =>
            html`<tr>
              <td>${when(b.awareAt)}</td>
              <td>${String(b.status)}</td>
              <td>${String(b.description ?? '')}</td>
              <td>
                <button type="button" class="outline" onClick=${() => void open(String(b.id))}>
                  Show breach ${when(b.awareAt)}
                </button>
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${
      detail &&
      html`<article aria-label="Breach">
        <header>Breach <code>${String(detail.id)}</code>: ${String(detail.status)}</header>
        <${Clock}
          label="Our 24 hours to notify every tenant"
          start=${String(detail.awareAt)}
          deadline=${String((detail.deadlines as Row).processor)}
        />
        <${Clock}
          label="The controllers' 72 hours"
          start=${String(detail.awareAt)}
          deadline=${String((detail.deadlines as Row).controller)}
        />
        <ul>
          ${((detail.tenants as Row[] | undefined) ?? []).map(
            (t) =>
              html`<li>
                ${String(t.tenant)}: ${String(t.notifications)} notification(s),
                ${
                  t.acknowledgedAt
                    ? html`<span data-testid="tenant-acknowledged">acknowledged ${when(t.acknowledgedAt)}</span>`
                    : 'not acknowledged yet'
                }
              </li>`,
          )}
        </ul>
        <button type="button" class="outline" onClick=${() => void open(String(detail.id))}>Refresh breach</button>
      </article>`
    }
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
      <${Field}
        label="Data categories (comma-separated)"
        name="categories"
        value=${categories}
        onInput=${setCategories}
        required
      />
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

// ── everyone: the own profile and its second factor ────────────────────────────────────────────

function Profile({ me }: { me: Me }) {
  const action = useAction();
  const [password, setPassword] = useState('');
  const [enrolment, setEnrolment] = useState<{ secret: string; qr: string } | undefined>();
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState<string[] | undefined>();
  const start = action.submit(async () => {
    const { otpauthUri, secret } = await api<{ otpauthUri: string; secret: string }>('POST', '/me/mfa/totp', {
      currentPassword: password,
    });
    // Drawn here, in the page: the secret never goes to another service to become a picture.
    const svg = await QRCode.toString(otpauthUri, { type: 'svg', margin: 1 });
    setEnrolment({ secret, qr: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}` });
  });
  const confirm = action.submit(async () => {
    const { recoveryCodes } = await api<{ recoveryCodes: string[] }>('POST', '/me/mfa/totp/confirmation', {
      code,
      currentPassword: password,
    });
    setRecovery(recoveryCodes);
  });
  return html`<section>
    <h2>Your profile</h2>
    <p>${me.username} · ${me.realm} · roles: ${me.roles.join(', ') || 'none'}</p>
    <form onSubmit=${enrolment ? confirm : start} aria-label="Second factor">
      <h3>Second factor (TOTP)</h3>
      <${Field}
        label="Your current password"
        name="currentPassword"
        type="password"
        value=${password}
        onInput=${setPassword}
        required
        autocomplete="current-password"
      />
      ${
        enrolment
          ? html`<img src=${enrolment.qr} alt="QR code to scan with your authenticator app" width="200" height="200" />
              <p>Or enter the secret by hand: <code data-testid="totp-secret">${enrolment.secret}</code></p>
              <${Field}
                label="Code from your authenticator app"
                name="code"
                value=${code}
                onInput=${setCode}
                required
                autocomplete="one-time-code"
              />
              <button type="submit">Confirm second factor</button>`
          : html`<button type="submit">Set up a second factor</button>`
      }
      <${Outcome}
        error=${action.error}
        done=${
          recovery &&
          html`<p>Second factor active. Recovery codes (shown once, each works once):</p>
            <ul data-testid="recovery-codes">
              ${recovery.map((c) => html`<li><code>${c}</code></li>`)}
            </ul>`
        }
      />
    </form>
  </section>`;
}

// ── tenant admin: retention, staff access ──────────────────────────────────────────────────────

function Retention() {
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

function StaffAccess() {
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
    <table>
      <thead>
        <tr>
          <th scope="col">Requested</th>
          <th scope="col">Reason</th>
          <th scope="col">Minutes</th>
          <th scope="col">Permissions</th>
          <th scope="col">Status</th>
          <th scope="col">Decision</th>
        </tr>
      </thead>
      <tbody>
        ${(list.data?.items ?? []).map(
          (r) =>
            html`<tr>
              <td>${when(r.requestedAt)}</td>
              <td>${String(r.reason)}</td>
              <td>${String(r.minutes)}</td>
              <td>${(r.permissions as string[]).join(', ')}</td>
              <td data-testid="access-status">
                ${r.revokedAt ? 'revoked' : String(r.status)}${r.expiresAt && !r.revokedAt ? html` until ${when(r.expiresAt)}` : ''}
              </td>
              <td>
                ${
                  r.status === 'pending'
                    ? html`<button type="button" onClick=${() => void decide(String(r.id), true)}>Approve</button>
                        <button type="button" class="secondary" onClick=${() => void decide(String(r.id), false)}>
                          Deny
                        </button>`
                    : r.status === 'approved' && !r.revokedAt
                      ? html`<button type="button" class="secondary" onClick=${() => void revoke(String(r.id))}>
                          End access now
                        </button>`
                      : null
                }
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

// ── operators: four-eyes, certificates, backups, orchestrations, alerts ────────────────────────

function Approvals({ me }: { me: Me }) {
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
    <table>
      <thead>
        <tr>
          <th scope="col">Requested</th>
          <th scope="col">What</th>
          <th scope="col">Reason</th>
          <th scope="col">Status</th>
          <th scope="col">Decision</th>
        </tr>
      </thead>
      <tbody>
        ${(list.data?.items ?? []).map(
          (a) =>
            html`<tr>
              <td>${when(a.requestedAt)}</td>
              <td>${String(a.summary)}</td>
              <td>${String(a.reason)}</td>
              <td>${String(a.status)}</td>
              <td>
                ${
                  a.status === 'pending' && a.requestedBy !== me.id
                    ? html`<button type="button" onClick=${() => void decide(String(a.id), true)}>Approve</button>
                        <button type="button" class="secondary" onClick=${() => void decide(String(a.id), false)}>
                          Deny
                        </button>`
                    : a.status === 'pending'
                      ? 'waiting for a second operator'
                      : null
                }
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function Certificates() {
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

function Backups() {
  const list = useLoad<{ items: Row[] }>('/backups');
  const action = useAction();
  const [started, setStarted] = useState<string | undefined>();
  const start = () =>
    action.run(async () => {
      setStarted((await api<{ backupId: string }>('POST', '/backups')).backupId);
      list.reload();
    });
  return html`<section>
    <h2>Backups</h2>
    <p>
      Nightly and on demand; every table encrypted and checksummed into WORM storage. The restore drill:
      <code>npm run -s admin -- backup restore</code>.
    </p>
    <button type="button" onClick=${() => void start()}>Start backup now</button>
    <${Outcome}
      error=${action.error ?? list.error}
      done=${started && html`<p>Backup <code data-testid="backup-started">${started}</code> started.</p>`}
    />
    <button type="button" class="outline" onClick=${list.reload}>Refresh backups</button>
    <table>
      <thead>
        <tr>
          <th scope="col">Backup</th>
          <th scope="col">Created</th>
          <th scope="col">Tables</th>
          <th scope="col">Rows</th>
        </tr>
      </thead>
      <tbody>
        ${(list.data?.items ?? []).map(
          (b) =>
            html`<tr>
              <td>${String(b.backupId)}</td>
              <td>${when(b.createdAt)}</td>
              <td>${String(b.tables)}</td>
              <td>${String(b.entities)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function Orchestrations() {
  const list = useLoad<{ items: Row[] }>('/orchestrations');
  return html`<section>
    <h2>Orchestrations</h2>
    <${Outcome} error=${list.error} />
    <button type="button" class="outline" onClick=${list.reload}>Refresh orchestrations</button>
    <table>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Instance</th>
          <th scope="col">Status</th>
          <th scope="col">Last update</th>
        </tr>
      </thead>
      <tbody>
        ${(list.data?.items ?? []).map(
          (o) =>
            html`<tr>
              <td>${String(o.name)}</td>
              <td><code>${String(o.instanceId)}</code></td>
              <td>${String(o.runtimeStatus)}</td>
              <td>${when(o.lastUpdatedTime)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function Alerts() {
  const list = useLoad<{ items: Row[] }>('/security/alerts');
  return html`<section>
    <h2>Security alerts</h2>
    <${Outcome} error=${list.error} />
    ${(list.data?.items ?? []).length === 0 ? html`<p>No alerts.</p>` : null}
    <table>
      <thead>
        <tr>
          <th scope="col">Detected</th>
          <th scope="col">Kind</th>
          <th scope="col">Count</th>
          <th scope="col">Summary</th>
        </tr>
      </thead>
      <tbody>
        ${(list.data?.items ?? []).map(
          (a) =>
            html`<tr>
              <td>${when(a.detectedAt)}</td>
              <td>${String(a.kind)}</td>
              <td>${String(a.count)}</td>
              <td>${String(a.summary)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

// ── the shell ──────────────────────────────────────────────────────────────────────────────────

interface Page {
  path: string;
  title: string;
  show: (me: Me) => boolean;
  component: (props: { me: Me }) => unknown;
}

const can = (me: Me, permission: string) => me.permissions.includes(permission);
const PAGES: Page[] = [
  { path: '#/profile', title: 'Profile', show: () => true, component: Profile },
  { path: '#/users', title: 'Users', show: (me) => can(me, 'users:manage'), component: Users },
  {
    path: '#/integrations',
    title: 'Integrations',
    show: (me) => can(me, 'integrations:manage'),
    component: Integrations,
  },
  { path: '#/exports', title: 'Exports', show: (me) => can(me, 'exports:start'), component: Exports },
  { path: '#/audit', title: 'Audit trail', show: (me) => can(me, 'audit:read'), component: Audit },
  { path: '#/retention', title: 'Retention', show: (me) => can(me, 'retention:manage'), component: Retention },
  { path: '#/access', title: 'Staff access', show: (me) => can(me, 'access-requests:approve'), component: StaffAccess },
  {
    path: '#/notifications',
    title: 'Breach notifications',
    show: (me) => can(me, 'breaches:acknowledge'),
    component: Notifications,
  },
  { path: '#/tenants', title: 'Tenants', show: (me) => can(me, 'tenants:manage'), component: Tenants },
  { path: '#/approvals', title: 'Approvals', show: (me) => me.realm === 'operator', component: Approvals },
  { path: '#/certificates', title: 'Certificates', show: (me) => can(me, 'tenants:manage'), component: Certificates },
  { path: '#/backups', title: 'Backups', show: (me) => can(me, 'backups:manage'), component: Backups },
  {
    path: '#/orchestrations',
    title: 'Orchestrations',
    show: (me) => can(me, 'orchestrations:manage'),
    component: Orchestrations,
  },
  { path: '#/breaches', title: 'Breach register', show: (me) => can(me, 'breaches:manage'), component: Breaches },
  { path: '#/alerts', title: 'Security alerts', show: (me) => can(me, 'security:read'), component: Alerts },
];

function App() {
  const [me, setMe] = useState<Me | undefined>();
  const hash = useHash();
  if (!me || !hasToken()) return html`<${Login} onSignedIn=${setMe} />`;
  const pages = PAGES.filter((p) => p.show(me));
  const page = pages.find((p) => p.path === hash) ?? pages[0];
  const logout = async () => {
    await api('POST', '/auth/logout').catch(() => undefined);
    setToken(undefined);
    setMe(undefined);
  };
  return html`<div class="container">
    <header>
      <nav aria-label="Main">
        <ul>
          <li><strong>LabVault</strong> · ${me.username} (${me.realm})</li>
        </ul>
        <ul>
          ${pages.map((p) => html`<li><a href=${p.path} aria-current=${p === page ? 'page' : undefined}>${p.title}</a></li>`)}
          <li><button type="button" class="secondary" onClick=${() => void logout()}>Log out</button></li>
        </ul>
      </nav>
    </header>
    <main>${page ? h(page.component as (props: { me: Me }) => null, { me }) : null}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app') as HTMLElement);
