import { app } from '@azure/functions';
import { listAudit, verifyAudit } from '../lib/audit/api.js';
import type { AuditEntry } from '../lib/audit/types.js';
import { badRequest } from '../lib/http/problem.js';
import { handle } from './http.js';

interface Cursor {
  at: string;
  stream: string;
  seq: number;
}

function after(entry: AuditEntry, cursor: Cursor): boolean {
  if (entry.at !== cursor.at) return entry.at > cursor.at;
  if (entry.stream !== cursor.stream) return entry.stream > cursor.stream;
  return entry.seq > cursor.seq;
}

function decodeCursor(token: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Cursor;
    if (typeof c.at === 'string' && typeof c.stream === 'string' && Number.isInteger(c.seq)) return c;
  } catch {
    // fall through
  }
  throw badRequest('The continuation token is invalid.', [{ path: '/continuationToken', message: 'not a token this API issued' }]);
}

app.http(
  listAudit.id,
  handle(listAudit, async (ctx, { audit }) => {
    const { limit, continuationToken, action, ...filters } = ctx.query;
    const cursor = continuationToken ? decodeCursor(continuationToken) : undefined;
    const isActionCode = action !== undefined && /^[CRUDE]$/.test(action);
    const items: AuditEntry[] = [];
    let more = false;
    for await (const entry of audit.list(ctx.tenant, {
      ...(cursor ? { from: cursor.at } : filters.from ? { from: filters.from } : {}),
      ...(filters.to ? { to: filters.to } : {}),
      ...(filters.actor ? { actor: filters.actor } : {}),
      ...(filters.entity ? { entity: filters.entity } : {}),
      ...(action && !isActionCode ? { event: action } : {}),
    })) {
      if (cursor && !after(entry, cursor)) continue;
      if (isActionCode && entry.action !== action) continue;
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(entry);
    }
    const last = items[items.length - 1];
    const next = more && last ? Buffer.from(JSON.stringify({ at: last.at, stream: last.stream, seq: last.seq })).toString('base64url') : undefined;
    return { status: 200, body: { items: items.map(({ tenant: _tenant, ...rest }) => rest), ...(next ? { continuationToken: next } : {}) } };
  }),
);

app.http(
  verifyAudit.id,
  handle(verifyAudit, async (ctx, { audit }) => ({ status: 200, body: await audit.verify(ctx.tenant) })),
);
