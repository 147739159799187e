// The console's building blocks: data loading, actions, labelled fields, clocks and timelines,
// tables. Pages are made of these and of plain /api calls; nothing here holds rules of its own.
import { h, type ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { api, apiBytes, messageOf } from './api.js';

export const html = htm.bind(h);

export interface Me {
  id: string;
  username: string;
  realm: string;
  roles: string[];
  permissions: string[];
}

export type Row = Record<string, unknown>;

export function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

/** Loads `path` once (and again on `reload()`); errors shown where the data would be. */
export function useLoad<T>(path: string | undefined): {
  data: T | undefined;
  error: string | undefined;
  reload: () => void;
} {
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

/**
 * A paged listing (`{items, continuationToken}`): the first page on load and on `reload()`, the next
 * one appended by `more()` while the API says there is one.
 */
export function usePaged(path: string): {
  items: Row[] | undefined;
  hasMore: boolean;
  error: string | undefined;
  more: () => void;
  reload: () => void;
} {
  const first = useLoad<{ items: Row[]; continuationToken?: string }>(path);
  const [later, setLater] = useState<{ items: Row[]; next: string | undefined }>({ items: [], next: undefined });
  const [error, setError] = useState<string | undefined>();
  useEffect(() => setLater({ items: [], next: first.data?.continuationToken }), [first.data]);
  const more = () => {
    if (!later.next) return;
    const separator = path.includes('?') ? '&' : '?';
    api<{ items: Row[]; continuationToken?: string }>(
      'GET',
      `${path}${separator}continuationToken=${encodeURIComponent(later.next)}`,
    ).then(
      (page) => setLater((l) => ({ items: [...l.items, ...page.items], next: page.continuationToken })),
      (e: unknown) => setError(messageOf(e)),
    );
  };
  return {
    items: first.data ? [...first.data.items, ...later.items] : undefined,
    hasMore: later.next !== undefined,
    error: first.error ?? error,
    more,
    reload: first.reload,
  };
}

/**
 * An archive fetched through the API (same origin, the session's token) and hashed here with
 * WebCrypto: what the person saves is what LabVault reported, checked before it leaves the page.
 */
export async function downloadAndVerify(
  path: string,
  body: unknown,
  expectedSha256: string | undefined,
): Promise<{ matches: boolean; url: string }> {
  const bytes = await apiBytes('POST', path, body);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
  return {
    matches: hex === expectedSha256,
    url: URL.createObjectURL(new Blob([bytes], { type: 'application/zip' })),
  };
}

/** What a form or button starts: its error is shown until the next attempt. */
export function useAction(): {
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

export function Field(props: {
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

/** The current password, which sensitive actions ask for again: a session's token alone is not enough. */
export function CurrentPasswordField(props: { value: string; onInput: (value: string) => void }) {
  return html`<${Field}
    label="Your current password"
    name="currentPassword"
    type="password"
    value=${props.value}
    onInput=${props.onInput}
    required
    autocomplete="current-password"
  />`;
}

export function Outcome({ error, done }: { error?: string | undefined; done?: ComponentChildren }) {
  if (error) return html`<p role="alert" class="error">${error}</p>`;
  if (done) return html`<div role="status">${done}</div>`;
  return null;
}

export const when = (iso: unknown) => (typeof iso === 'string' ? new Date(iso).toLocaleString() : '–');

/** Hours and minutes until `deadline` (negative: overdue). */
export function remaining(deadline: string): string {
  const ms = new Date(deadline).getTime() - Date.now();
  const abs = Math.abs(ms);
  const text = `${Math.floor(abs / 3_600_000)} h ${Math.floor((abs % 3_600_000) / 60_000)} min`;
  return ms >= 0 ? `${text} left` : `overdue by ${text}`;
}

/** A clock drawn as a bar: how much of the time from `start` to `deadline` has passed. */
export function Clock({ label, start, deadline }: { label: string; start: string; deadline: string }) {
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
export function Timeline({ points }: { points: { label: string; at: string }[] }) {
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

export interface Column {
  title: string;
  cell: (row: Row) => ComponentChildren;
  /** A test id on each cell of the column, for browser tests that read one value. */
  testId?: string;
}

/** A table of rows, or the `empty` sentence when there are none; its label names it for screen readers. */
export function DataTable({
  label,
  columns,
  rows,
  empty,
}: {
  label: string;
  columns: Column[];
  rows: Row[] | undefined;
  empty: string;
}) {
  if (!rows) return null;
  if (rows.length === 0) return html`<p>${empty}</p>`;
  return html`<table aria-label=${label}>
    <thead>
      <tr>
        ${columns.map((c) => html`<th scope="col">${c.title}</th>`)}
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (row) =>
          html`<tr>
            ${columns.map((c) => html`<td data-testid=${c.testId}>${c.cell(row)}</td>`)}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** A comma-separated field's values, trimmed, without empty ones. */
export const listOf = (text: string): string[] =>
  text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
