import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getServices } from '../lib/services.js';
import {
  createAccessRequest,
  createOperator,
  decideAccessRequest,
  listAccessRequests,
  listSecurityAlerts,
  listTenantAlerts,
  revokeAccessGrant,
  runAnomalyScan,
  unlockOperator,
} from '../lib/identity/api/staff.js';
import { createTenant, listTenants } from '../lib/tenants/api.js';
import { OPERATOR_REALM, type Permission } from '../lib/identity/permissions.js';
import { forbidden, notFound } from '../lib/errors.js';
import { onboardTenant } from '../lib/tenants/onboarding.js';
import { handle, metaOf } from './http.js';

const isAfter = (value: unknown): value is { after: string } =>
  typeof value === 'object' && value !== null && typeof (value as { after?: unknown }).after === 'string';

app.http(
  createTenant.id,
  handle(createTenant, async (ctx, services) => {
    const created = await onboardTenant(services, ctx.body, metaOf(ctx));
    return {
      status: 201,
      headers: { Location: `/api/tenants/${created.id}` },
      body: { id: created.id, name: created.name, admin: created.admin },
    };
  }),
);

app.http(
  listTenants.id,
  handle(listTenants, async (ctx, { tenants, deletion, continuations }) => {
    const { limit, continuationToken } = ctx.query;
    const binding = { tenant: ctx.tenant, route: listTenants.id, query: {} };
    const after = continuationToken ? (await continuations.open(binding, continuationToken, isAfter)).after : undefined;
    // Two keyed listings merged by id: the directory, and the lifecycles (a deleted tenant has left
    // the directory; its lifecycle and certificate stay visible). The first `limit` ids of the union
    // are complete: a page that filled up ends beyond every one of them.
    const [directory, lifecycles] = await Promise.all([
      tenants.page({ after, limit }),
      deletion.statesPage({ after, limit }),
    ]);
    const named = new Map(directory.map((t) => [t.id, t]));
    const ids = [...new Set([...named.keys(), ...lifecycles.keys()])].sort().slice(0, limit);
    const active = { status: 'active' as const, deleteAt: null, legalHold: false };
    const items = ids.map((id) => {
      const tenant = named.get(id);
      const lifecycle = lifecycles.get(id);
      return {
        id,
        name: tenant?.name ?? null,
        createdAt: tenant?.createdAt ?? null,
        lifecycle: lifecycle
          ? { status: lifecycle.status, deleteAt: lifecycle.deleteAt, legalHold: lifecycle.legalHold }
          : active,
      };
    });
    const more = directory.length === limit || lifecycles.size === limit;
    const last = ids[ids.length - 1];
    const next = more && last ? await continuations.issue(binding, { after: last }) : undefined;
    return { status: 200, body: { items, ...(next ? { continuationToken: next } : {}) } };
  }),
);

app.http(
  createOperator.id,
  handle(createOperator, async (ctx, { users }) => {
    const { roles, ...profile } = ctx.body;
    const created = await users.create(OPERATOR_REALM, profile, roles, metaOf(ctx), { grantor: ctx.principal });
    return {
      status: 201,
      body: { id: created.user.id, username: created.user.username, initialPassword: created.initialPassword },
    };
  }),
);

app.http(
  unlockOperator.id,
  handle(unlockOperator, async (ctx, { users, guard, audit }) => {
    // An operator never unlocks themself: a locked account is someone else's to open.
    if (ctx.params.id === ctx.principal.id) throw forbidden('Another operator unlocks your account.');
    const user = await users.get(OPERATOR_REALM, ctx.params.id);
    await guard.reset(OPERATOR_REALM, user.username);
    await audit.record(OPERATOR_REALM, users.partition(OPERATOR_REALM), [
      users.event('user.unlock', 'U', user.id, metaOf(ctx)),
    ]);
    return { status: 204 };
  }),
);

app.http(
  listSecurityAlerts.id,
  handle(listSecurityAlerts, async (_ctx, { alerts }) => ({ status: 200, body: { items: await alerts.list() } })),
);

app.http(
  listTenantAlerts.id,
  handle(listTenantAlerts, async (ctx, { alerts }) => ({
    status: 200,
    body: { items: await alerts.listForRealm(ctx.tenant) },
  })),
);

app.http(
  runAnomalyScan.id,
  handle(runAnomalyScan, async (_ctx, { anomalies }) => ({ status: 200, body: { items: await anomalies.scan() } })),
);

// Every five minutes: each realm's audit log against its principals' baselines.
app.timer('anomalyScan', {
  schedule: '0 */5 * * * *',
  handler: async (_timer: Timer, _context: InvocationContext) => {
    const { anomalies, logger } = await getServices();
    const raised = await anomalies.scan();
    logger.log('info', 'anomaly.scan', { alerts: raised.length });
  },
});

app.http(
  createAccessRequest.id,
  handle(createAccessRequest, async (ctx, { accessRequests, tenants }) => {
    if (!(await tenants.get(ctx.body.tenant))) throw notFound('No such tenant.');
    const request = await accessRequests.create(
      ctx.body.tenant,
      ctx.principal.id,
      { reason: ctx.body.reason, minutes: ctx.body.minutes, permissions: ctx.body.permissions as Permission[] },
      metaOf(ctx),
    );
    return { status: 201, body: request };
  }),
);

app.http(
  listAccessRequests.id,
  handle(listAccessRequests, async (ctx, { accessRequests }) => ({
    status: 200,
    body: { items: await accessRequests.list(ctx.tenant) },
  })),
);

app.http(
  decideAccessRequest.id,
  handle(decideAccessRequest, async (ctx, { accessRequests }) => ({
    status: 200,
    body: await accessRequests.decide(ctx.tenant, ctx.params.id, ctx.body.approve, ctx.principal, metaOf(ctx)),
  })),
);

app.http(
  revokeAccessGrant.id,
  handle(revokeAccessGrant, async (ctx, { accessRequests }) => ({
    status: 200,
    body: await accessRequests.revoke(ctx.tenant, ctx.params.id, ctx.principal, metaOf(ctx)),
  })),
);
