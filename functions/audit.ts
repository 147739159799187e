import { app } from '@azure/functions';
import { anchorAuditChains, listAudit, verifyAudit } from '../lib/audit/api.js';
import { OPERATOR_REALM } from '../lib/identity/permissions.js';
import { getServices, type Services } from '../lib/services.js';
import type { AuditEntry } from '../lib/audit/types.js';
import type { AuditPosition } from '../lib/audit/audit-log.js';
import { handle } from './http.js';

const isPosition = (v: unknown): v is AuditPosition =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as AuditPosition).at === 'string' &&
  typeof (v as AuditPosition).stream === 'string' &&
  Number.isInteger((v as AuditPosition).seq);

app.http(
  listAudit.id,
  handle(listAudit, async (ctx, { audit, continuations }) => {
    const { limit, continuationToken, ...filters } = ctx.query;
    // A token works only for the tenant and the filters it was issued for (not for another query).
    const binding = { tenant: ctx.tenant, route: listAudit.id, query: filters };
    const after = continuationToken ? await continuations.open(binding, continuationToken, isPosition) : undefined;
    const { action, ...rest } = filters;
    const isActionCode = action !== undefined && /^[CRUDE]$/.test(action);
    const items: AuditEntry[] = [];
    let more = false;
    // Merged page by page from each stream's own query: a page costs a page, whatever the log's size.
    for await (const entry of audit.list(
      ctx.tenant,
      { ...rest, ...(action ? (isActionCode ? { action } : { event: action }) : {}) },
      { ...(after ? { after } : {}), pageSize: limit + 1 },
    )) {
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(entry);
    }
    const last = items[items.length - 1];
    const next =
      more && last
        ? await continuations.issue(binding, { at: last.at, stream: last.stream, seq: last.seq })
        : undefined;
    return {
      status: 200,
      body: {
        items: items.map(({ tenant: _tenant, ...entry }) => entry),
        ...(next ? { continuationToken: next } : {}),
      },
    };
  }),
);

app.http(
  verifyAudit.id,
  handle(verifyAudit, async (ctx, { audit }) => ({ status: 200, body: await audit.verify(ctx.tenant) })),
);

/** Every realm whose audit chains are anchored: the tenants and the vendor's staff. */
async function allRealms(tenants: Services['tenants']): Promise<string[]> {
  return [...(await tenants.list()).map((t) => t.id), OPERATOR_REALM];
}

/** Every hour: the heads of the audit streams that moved, to write-once storage (lib/audit/anchors.ts). */
app.timer('anchorAuditChains', {
  schedule: '0 7 * * * *',
  handler: async () => {
    const { auditAnchors, tenants, logger } = await getServices();
    logger.log('info', 'audit.anchored', await auditAnchors.anchorAll(await allRealms(tenants)));
  },
});

app.http(
  anchorAuditChains.id,
  handle(anchorAuditChains, async (_ctx, { auditAnchors, tenants }) => ({
    status: 200,
    body: await auditAnchors.anchorAll(await allRealms(tenants)),
  })),
);
