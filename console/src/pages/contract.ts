// The contract's living parts (Art. 28 GDPR): the sub-processor register with its announced changes
// (tenants object within the window, operators announce and withdraw) and the report of technical
// and organisational measures (Art. 32), read from the running system.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { DataTable, Field, html, Outcome, type Row, useAction, useLoad, when, type Me } from '../ui.js';

interface SubProcessor {
  name: string;
  purpose: string;
  location: string;
  dataCategories: string[];
  safeguards: string;
}
interface Change {
  id: string;
  status: string;
  summary: string;
  announcedAt: string;
  effectiveAt: string;
  items: SubProcessor[];
  objections: { tenant: string; reason: string; at: string }[];
}

const registerColumns = [
  { title: 'Name', cell: (r: Row) => String(r.name) },
  { title: 'Purpose', cell: (r: Row) => String(r.purpose) },
  { title: 'Location', cell: (r: Row) => String(r.location) },
  { title: 'Data', cell: (r: Row) => (r.dataCategories as string[]).join(', ') },
  { title: 'Safeguards', cell: (r: Row) => String(r.safeguards) },
];

export function SubProcessors({ me }: { me: Me }) {
  const register = useLoad<{ current: { version: number; effectiveAt: string; items: Row[] }; changes: Change[] }>(
    '/sub-processors',
  );
  const action = useAction();
  const mayObject = me.permissions.includes('sub-processors:object');
  const mayManage = me.permissions.includes('tenants:manage');
  const withdraw = (id: string) =>
    action.run(async () => {
      await api('POST', `/sub-processors/changes/${id}/withdrawal`);
      register.reload();
    });
  const current = register.data?.current;
  return html`<section>
    <h2>Sub-processors</h2>
    <${Outcome} error=${register.error ?? action.error} />
    ${
      current &&
      html`<p>Register version ${current.version}, in force since ${when(current.effectiveAt)}.</p>
        <${DataTable}
          label="Sub-processors in force"
          empty="No sub-processors."
          rows=${current.items}
          columns=${registerColumns}
        />`
    }
    <h3>Announced changes</h3>
    <${DataTable}
      label="Announced changes"
      empty="No changes announced."
      rows=${register.data?.changes as unknown as Row[] | undefined}
      columns=${[
        { title: 'Announced', cell: (c: Row) => when(c.announcedAt) },
        { title: 'Summary', cell: (c: Row) => String(c.summary) },
        { title: 'New register', cell: (c: Row) => (c.items as SubProcessor[]).map((i) => i.name).join('; ') },
        { title: 'Takes effect', cell: (c: Row) => when(c.effectiveAt) },
        { title: 'Status', testId: 'change-status', cell: (c: Row) => String(c.status) },
        {
          title: 'Objections',
          testId: 'change-objections',
          cell: (c: Row) =>
            (c.objections as Change['objections']).map((o) => `${o.tenant}: ${o.reason}`).join('; ') || 'none',
        },
        {
          title: '',
          cell: (c: Row) =>
            mayManage && c.status === 'announced'
              ? html`<button type="button" class="secondary" onClick=${() => void withdraw(String(c.id))}>
                  Withdraw change
                </button>`
              : null,
        },
      ]}
    />
    ${
      mayObject &&
      register.data?.changes
        .filter((c) => c.status === 'announced' && c.objections.length === 0)
        .map((c) => html`<${Objection} key=${c.id} change=${c} onDone=${register.reload} />`)
    }
    ${mayManage && current && html`<${Announce} current=${current.items} onDone=${register.reload} />`}
  </section>`;
}

/** A tenant's objection while the window is open: the change does not take effect before it closes. */
function Objection({ change, onDone }: { change: Change; onDone: () => void }) {
  const [reason, setReason] = useState('');
  const action = useAction();
  const object = action.submit(async () => {
    await api('POST', `/sub-processors/changes/${change.id}/objections`, { reason });
    onDone();
  });
  return html`<form onSubmit=${object} aria-label=${`Object to: ${change.summary}`}>
    <h4>Object to “${change.summary}” (until ${when(change.effectiveAt)})</h4>
    <${Field} label="Reason for the objection" name="reason" value=${reason} onInput=${setReason} required />
    <button type="submit">Record objection</button>
    <${Outcome} error=${action.error} />
  </form>`;
}

/**
 * An operator announces the next register whole (as the API takes it): the register in force,
 * edited as JSON. Rare, and reviewed by the tenants in their objection window.
 */
function Announce({ current, onDone }: { current: Row[]; onDone: () => void }) {
  const [summary, setSummary] = useState('');
  const [items, setItems] = useState(JSON.stringify(current, null, 2));
  const action = useAction();
  const announce = action.submit(async () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(items);
    } catch {
      throw new Error('The new register is not valid JSON.');
    }
    await api('POST', '/sub-processors/changes', { summary, items: parsed });
    onDone();
  });
  return html`<form onSubmit=${announce} aria-label="Announce a change">
    <h3>Announce a change</h3>
    <${Field} label="Summary for the tenants" name="summary" value=${summary} onInput=${setSummary} required />
    <label
      >New register (JSON: every sub-processor, as it will be)
      <textarea
        name="items"
        rows="10"
        value=${items}
        onInput=${(e: Event) => setItems((e.target as HTMLTextAreaElement).value)}
      ></textarea>
    </label>
    <button type="submit">Announce change</button>
    <${Outcome} error=${action.error} />
  </form>`;
}

/** The TOM report as tables, from the same JSON the API gives; printable with the browser's own dialog. */
export function Measures({ me }: { me: Me }) {
  const report = useLoad<Record<string, unknown>>(me.realm === 'operator' ? '/security/toms' : '/compliance/toms');
  const data = report.data;
  return html`<section>
    <h2>Technical and organisational measures</h2>
    <p>Read from the running system's settings and state when this page was loaded (Art. 32 GDPR).</p>
    <button type="button" class="outline" onClick=${() => print()}>Print</button>
    <${Outcome} error=${report.error} />
    ${
      data &&
      html`${Value({ value: Object.fromEntries(Object.entries(data).filter(([, v]) => typeof v !== 'object' || v === null)) })}
      ${Object.entries(data)
        .filter(([, v]) => typeof v === 'object' && v !== null)
        .map(
          ([k, v]) =>
            html`<section aria-label=${k}>
              <h3>${k}</h3>
              ${Value({ value: v })}
            </section>`,
        )}`
    }
  </section>`;
}

function Value({ value }: { value: unknown }): unknown {
  if (value === null || value === undefined) return html`<em>none</em>`;
  if (Array.isArray(value))
    return value.every((v) => typeof v !== 'object') ? value.join(', ') : value.map((v) => Value({ value: v }));
  if (typeof value === 'object')
    return html`<table>
      <tbody>
        ${Object.entries(value as Record<string, unknown>).map(
          ([k, v]) =>
            html`<tr>
              <th scope="row">${k}</th>
              <td>${Value({ value: v })}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
  return String(value);
}
