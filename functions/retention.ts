import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { notFound } from '../lib/http/problem.js';
import { certificateKeys, getDeletion, getNotices, getRetention, liftHold, putBounds, putRetention, setHold, terminate } from '../lib/retention/api.js';
import { getServices } from '../lib/services.js';
import { deletionInstanceId, retentionInstanceId } from '../orchestrations/retention.js';
import { handle } from './http.js';

const client = [df.input.durableClient()];

/** Starts an instance under a deterministic id; one that runs already is left alone. */
async function startOnce(context: InvocationContext, name: string, instanceId: string, input: unknown): Promise<boolean> {
  try {
    await df.getClient(context).startNew(name, { instanceId, input });
    return true;
  } catch {
    return false; // running under this id already (a second sweep, a repeated termination)
  }
}

app.http(
  getRetention.id,
  handle(getRetention, async (ctx, { retention }) => ({ status: 200, body: { policy: await retention.policy(ctx.tenant), bounds: await retention.bounds(ctx.tenant) } })),
);

app.http(
  putRetention.id,
  handle(putRetention, async (ctx, { retention }) => ({ status: 200, body: await retention.setPolicy(ctx.tenant, ctx.body, { actor: ctx.actor, correlationId: ctx.correlationId }) })),
);

app.http(getNotices.id, handle(getNotices, async (ctx, { deletion }) => ({ status: 200, body: { items: await deletion.notices(ctx.tenant) } })));

app.http(
  putBounds.id,
  handle(putBounds, async (ctx, { retention, tenants }) => {
    if (!(await tenants.get(ctx.params.id))) throw notFound('No such tenant.');
    return { status: 200, body: await retention.setBounds(ctx.params.id, ctx.body, { actor: ctx.actor, correlationId: ctx.correlationId }) };
  }),
);

app.http(
  terminate.id,
  handle(
    terminate,
    async (ctx, { deletion }) => {
      const { deleteAt } = await deletion.schedule(ctx.params.id, ctx.body.contractEndsAt, { actor: ctx.actor, correlationId: ctx.correlationId });
      await startOnce(ctx.invocation, 'tenantDeletion', deletionInstanceId(ctx.params.id), ctx.params.id);
      const location = `/api/tenants/${ctx.params.id}/deletion`;
      return { status: 202, headers: { Location: location }, body: { deleteAt, statusQueryGetUri: location } };
    },
    { extraInputs: client },
  ),
);

for (const [operation, hold] of [
  [setHold, true],
  [liftHold, false],
] as const) {
  app.http(
    operation.id,
    handle(
      operation,
      async (ctx, { deletion }) => {
        await deletion.setLegalHold(ctx.params.id, hold, { actor: ctx.actor, correlationId: ctx.correlationId });
        try {
          await df.getClient(ctx.invocation).raiseEvent(deletionInstanceId(ctx.params.id), hold ? 'legal-hold' : 'legal-hold-lifted', {});
        } catch {
          // no deletion running: the flag alone holds it once one starts
        }
        return { status: 204 };
      },
      { extraInputs: client },
    ),
  );
}

app.http(
  getDeletion.id,
  handle(getDeletion, async (ctx, { deletion }) => {
    const state = await deletion.state(ctx.params.id);
    if (!state) throw notFound('No deletion is scheduled for this tenant.');
    return { status: 200, body: { tenant: ctx.params.id, ...state } };
  }),
);

app.http(certificateKeys.id, handle(certificateKeys, async (_ctx, { deletion }) => ({ status: 200, body: await deletion.verificationKeys() })));

// Daily at 02:00 UTC: one retention run per tenant and day (deterministic ids: a second sweep starts nothing).
app.timer('retentionSweep', {
  schedule: '0 0 2 * * *',
  extraInputs: client,
  handler: async (_timer: Timer, context: InvocationContext) => {
    const { tenants, deletion, logger } = await getServices();
    const asOf = new Date().toISOString();
    let started = 0;
    for (const tenant of await tenants.list()) {
      if (await startOnce(context, 'retentionRun', retentionInstanceId(tenant.id, asOf.slice(0, 10)), { tenant: tenant.id, asOf })) started++;
      const state = await deletion.state(tenant.id);
      // A scheduled contract-end deletion whose orchestration is gone (e.g. purged) starts again.
      if (state && (state.status === 'scheduled' || state.status === 'deleting')) await startOnce(context, 'tenantDeletion', deletionInstanceId(tenant.id), tenant.id);
    }
    logger.log('info', 'retention.sweep', { started });
  },
});
