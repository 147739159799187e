import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { conflict, forbidden, notFound } from '../lib/errors.js';
import { TENANT_ADMIN_ROLE } from '../lib/identity/permissions.js';
import {
  certificateKeys,
  confirmDeletion,
  getDeletion,
  getNotices,
  getRetention,
  liftHold,
  putBounds,
  putRetention,
  setHold,
  terminate,
  withdrawTermination,
} from '../lib/retention/api.js';
import type { RetentionBounds } from '../lib/retention/retention.js';
import { getServices } from '../lib/services.js';
import { DELETION_EVENTS, deletionInstanceId, retentionInstanceId } from '../orchestrations/retention.js';
import { raiseEvent, startOrchestration, terminate as terminateInstance } from './durable.js';
import { attemptOf, handle, metaOf } from './http.js';

const client = [df.input.durableClient()];

app.http(
  getRetention.id,
  handle(getRetention, async (ctx, { retention }) => ({
    status: 200,
    body: { policy: await retention.policy(ctx.tenant), bounds: await retention.bounds(ctx.tenant) },
  })),
);

app.http(
  putRetention.id,
  handle(putRetention, async (ctx, { retention }) => ({
    status: 200,
    body: await retention.setPolicy(ctx.tenant, ctx.body, metaOf(ctx)),
  })),
);

app.http(
  getNotices.id,
  handle(getNotices, async (ctx, { deletion }) => ({
    status: 200,
    body: { items: await deletion.notices(ctx.tenant) },
  })),
);

/** Whether any bound would go down: that weakens what the tenant must keep, so it needs a second operator. */
function lowers(next: RetentionBounds, current: RetentionBounds): boolean {
  return (Object.keys(next) as (keyof RetentionBounds)[]).some((k) => next[k] < current[k]);
}

app.http(
  putBounds.id,
  handle(putBounds, async (ctx, { retention, tenants, approvals }) => {
    if (!(await tenants.get(ctx.params.id))) throw notFound('No such tenant.');
    const current = await retention.bounds(ctx.params.id);
    if (lowers(ctx.body, current)) {
      retention.validateBounds(ctx.body);
      const approval = await approvals.request(
        'retention-bounds.lower',
        {
          target: ctx.params.id,
          tenant: ctx.params.id,
          params: { bounds: ctx.body },
          reason: 'retention bounds lowered',
        },
        ctx.principal,
        metaOf(ctx),
      );
      return { status: 202, headers: { Location: `/api/approvals/${approval.id}` }, body: approval };
    }
    return { status: 200, body: await retention.setBounds(ctx.params.id, ctx.body, metaOf(ctx)) };
  }),
);

app.http(
  terminate.id,
  handle(
    terminate,
    async (ctx, { deletion }) => {
      const { deleteAt, noticeEndsAt } = await deletion.schedule(ctx.params.id, ctx.body.contractEndsAt, metaOf(ctx));
      await startOrchestration(ctx.invocation, 'tenantDeletion', deletionInstanceId(ctx.params.id), ctx.params.id);
      const location = `/api/tenants/${ctx.params.id}/deletion`;
      return {
        status: 202,
        headers: { Location: location },
        body: { deleteAt, noticeEndsAt, statusQueryGetUri: location },
      };
    },
    { extraInputs: client },
  ),
);

app.http(
  withdrawTermination.id,
  handle(
    withdrawTermination,
    async (ctx, { deletion }) => {
      await deletion.withdraw(ctx.params.id, metaOf(ctx));
      await terminateInstance(ctx.invocation, deletionInstanceId(ctx.params.id), 'termination withdrawn');
      return { status: 204 };
    },
    { extraInputs: client },
  ),
);

app.http(
  confirmDeletion.id,
  handle(
    confirmDeletion,
    async (ctx, { auth, deletion }) => {
      // Only the controller decides to delete early: its own admin, in its own tenant, with the password.
      if (ctx.params.id !== ctx.tenant || ctx.principal.kind !== 'user') throw notFound('No such tenant.');
      if (!ctx.principal.roles.includes(TENANT_ADMIN_ROLE))
        throw forbidden('Only a tenant admin confirms early deletion.');
      await auth.reauthenticate(ctx.principal, ctx.body.currentPassword, attemptOf(ctx));
      const { deleteAt } = await deletion.confirmEarly(ctx.tenant, ctx.principal.id, metaOf(ctx));
      const instanceId = deletionInstanceId(ctx.tenant);
      // Wakes the waiting orchestration; one that was purged meanwhile starts again.
      if ((await startOrchestration(ctx.invocation, 'tenantDeletion', instanceId, ctx.tenant)) === 'already-running') {
        await raiseEvent(ctx.invocation, instanceId, DELETION_EVENTS.confirmed, {});
      }
      const location = `/api/tenants/${ctx.tenant}/deletion`;
      return { status: 202, headers: { Location: location }, body: { deleteAt, statusQueryGetUri: location } };
    },
    { extraInputs: client },
  ),
);

app.http(
  setHold.id,
  handle(
    setHold,
    async (ctx, { deletion }) => {
      await deletion.setLegalHold(ctx.params.id, true, metaOf(ctx));
      await raiseEvent(ctx.invocation, deletionInstanceId(ctx.params.id), DELETION_EVENTS.hold, {});
      return { status: 204 };
    },
    { extraInputs: client },
  ),
);

app.http(
  liftHold.id,
  handle(liftHold, async (ctx, { deletion, tenants, approvals }) => {
    if (!(await tenants.get(ctx.params.id))) throw notFound('No such tenant.');
    const state = await deletion.state(ctx.params.id);
    if (!state?.legalHold) throw conflict('No legal hold stands for this tenant.');
    const approval = await approvals.request(
      'legal-hold.lift',
      { target: ctx.params.id, tenant: ctx.params.id, reason: ctx.query.reason ?? 'legal hold no longer needed' },
      ctx.principal,
      metaOf(ctx),
    );
    return { status: 202, headers: { Location: `/api/approvals/${approval.id}` }, body: approval };
  }),
);

app.http(
  getDeletion.id,
  handle(
    getDeletion,
    async (ctx, { deletion }) => {
      const state = await deletion.state(ctx.params.id);
      if (!state) throw notFound('No deletion is scheduled for this tenant.');
      let progress: { phase: string } | undefined;
      if (state.status === 'deleting') {
        const status = await df
          .getClient(ctx.invocation)
          .getStatus(deletionInstanceId(ctx.params.id))
          .catch(() => undefined);
        const custom = status?.customStatus as { phase?: string } | null | undefined;
        if (custom?.phase) progress = custom as { phase: string };
      }
      return { status: 200, body: { tenant: ctx.params.id, ...state, ...(progress ? { progress } : {}) } };
    },
    { extraInputs: client },
  ),
);

app.http(
  certificateKeys.id,
  handle(certificateKeys, async (_ctx, { deletion }) => ({ status: 200, body: await deletion.verificationKeys() })),
);

// Daily at 02:00 UTC: one retention run per tenant and day (deterministic ids: a second sweep starts nothing).
app.timer('retentionSweep', {
  schedule: '0 0 2 * * *',
  extraInputs: client,
  handler: async (_timer: Timer, context: InvocationContext) => {
    const { tenants, deletion, logger } = await getServices();
    const asOf = new Date().toISOString();
    let started = 0;
    for (const tenant of await tenants.list()) {
      if (
        (await startOrchestration(context, 'retentionRun', retentionInstanceId(tenant.id, asOf.slice(0, 10)), {
          tenant: tenant.id,
          asOf,
        })) === 'started'
      )
        started++;
      const state = await deletion.state(tenant.id);
      // A termination whose orchestration is gone (e.g. purged) starts again.
      if (state && ['scheduled', 'on-hold', 'deleting'].includes(state.status) && state.deleteAt) {
        await startOrchestration(context, 'tenantDeletion', deletionInstanceId(tenant.id), tenant.id);
      }
    }
    logger.log('info', 'retention.sweep', { started });
  },
});
