import { app, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import {
  acknowledgeNotification,
  confirmDraft,
  decideBreach,
  draftFromAlert,
  getBreach,
  listBreaches,
  listNotifications,
  recordAnalysis,
  recordAuthorityNotification,
  resendDeliveries,
  reportBreach,
  setBreachWebhook,
  updateBreach,
} from '../lib/breaches/api.js';
import type { BreachTiming } from '../lib/breaches/breaches.js';
import { breachInstanceId, breachTenantInstanceId, deliveryInstanceId } from '../orchestrations/breach.js';
import { raiseEvent, startOrchestration } from './durable.js';
import { handle, metaOf } from './http.js';

const client = [df.input.durableClient()];

async function start(invocation: InvocationContext, breachId: string, timing: BreachTiming): Promise<void> {
  await startOrchestration(invocation, 'breachHandling', breachInstanceId(breachId), { breachId, timing });
}

const raise = raiseEvent;

app.http(
  reportBreach.id,
  handle(
    reportBreach,
    async (ctx, { breaches }) => {
      const { id, timing } = await breaches.register(ctx.body);
      await start(ctx.invocation, id, timing);
      return { status: 202, headers: { Location: `/api/breaches/${id}` }, body: { id } };
    },
    { extraInputs: client },
  ),
);

app.http(
  listBreaches.id,
  handle(listBreaches, async (_ctx, { breaches }) => ({ status: 200, body: { items: await breaches.list() } })),
);
app.http(
  getBreach.id,
  handle(getBreach, async (ctx, { breaches }) => ({ status: 200, body: await breaches.get(ctx.params.id) })),
);

app.http(
  updateBreach.id,
  handle(
    updateBreach,
    async (ctx, { breaches }) => {
      const seq = await breaches.addUpdate(ctx.params.id, ctx.body);
      await raise(ctx.invocation, breachInstanceId(ctx.params.id), 'update', { seq });
      return { status: 202, body: { sequence: seq } };
    },
    { extraInputs: client },
  ),
);

app.http(
  recordAnalysis.id,
  handle(
    recordAnalysis,
    async (ctx, { breaches }) => {
      await breaches.recordAnalysis(ctx.params.id, ctx.body);
      await raise(ctx.invocation, breachInstanceId(ctx.params.id), 'analysis', { closed: ctx.body.closed });
      return { status: 204 };
    },
    { extraInputs: client },
  ),
);

app.http(
  recordAuthorityNotification.id,
  handle(recordAuthorityNotification, async (ctx, { breaches }) => {
    await breaches.recordAuthorityNotification(ctx.params.id, ctx.body);
    return { status: 204 };
  }),
);

app.http(
  confirmDraft.id,
  handle(
    confirmDraft,
    async (ctx, { breaches }) => {
      await start(ctx.invocation, ctx.params.id, await breaches.confirmDraft(ctx.params.id));
      return { status: 202 };
    },
    { extraInputs: client },
  ),
);

app.http(
  decideBreach.id,
  handle(decideBreach, async (ctx, { breaches }) => {
    await breaches.decideNotToNotify(ctx.params.id, ctx.body.reasoning);
    return { status: 204 };
  }),
);

app.http(
  draftFromAlert.id,
  handle(draftFromAlert, async (ctx, { breaches }) => ({
    status: 201,
    body: { id: await breaches.draftFromAlert(ctx.params.alertId) },
  })),
);

app.http(
  listNotifications.id,
  handle(listNotifications, async (ctx, { breaches }) => ({
    status: 200,
    body: { items: await breaches.notices(ctx.tenant) },
  })),
);

app.http(
  acknowledgeNotification.id,
  handle(
    acknowledgeNotification,
    async (ctx, { breaches }) => {
      const breachId = await breaches.acknowledge(ctx.tenant, ctx.params.id, ctx.principal.id, metaOf(ctx));
      await raise(ctx.invocation, breachTenantInstanceId(breachId, ctx.tenant), 'ack', { by: ctx.principal.id });
      return { status: 204 };
    },
    { extraInputs: client },
  ),
);

app.http(
  resendDeliveries.id,
  handle(
    resendDeliveries,
    async (ctx, { breaches }) => {
      const latest = await breaches.latestNotifications(ctx.params.id, ctx.body.tenants);
      const { firstRetrySeconds } = breaches.timingOf({ awareAt: new Date().toISOString() });
      const stamp = ctx.correlationId.replace(/[^A-Za-z0-9-]/g, '').slice(0, 32);
      for (const { tenant, seq } of latest) {
        const message = { kind: 'notification' as const, seq };
        // A new delivery (its own instance), with the message's own id: receivers can drop what they had.
        await startOrchestration(
          ctx.invocation,
          'breachDelivery',
          deliveryInstanceId(ctx.params.id, tenant, message, `resend-${stamp}`),
          { breachId: ctx.params.id, tenant, message, firstRetrySeconds },
        );
      }
      await breaches.timeline(ctx.params.id, 'deliveries-resent', `${latest.length} tenant(s)`);
      return { status: 202, body: { deliveries: latest.map((l) => ({ tenant: l.tenant, sequence: l.seq })) } };
    },
    { extraInputs: client },
  ),
);

app.http(
  setBreachWebhook.id,
  handle(setBreachWebhook, async (ctx, { breaches }) => ({
    status: 200,
    body: { secret: await breaches.setWebhook(ctx.tenant, ctx.body.url, metaOf(ctx)) },
  })),
);
