import { app, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { decideApproval, getApproval, listApprovals } from '../lib/approvals/api.js';
import type { Approval, ApprovalKind } from '../lib/approvals/approvals.js';
import type { RequestMeta } from '../lib/audit/types.js';
import type { RetentionBounds } from '../lib/retention/retention.js';
import type { Services } from '../lib/services.js';
import { DELETION_EVENTS, deletionInstanceId } from '../orchestrations/retention.js';
import { raiseEvent } from './durable.js';
import { handle, metaOf } from './http.js';

type Executor = (
  approval: Approval,
  services: Services,
  invocation: InvocationContext,
  meta: RequestMeta,
) => Promise<void>;

/** What each approved request does: the same domain calls the single-person routes used to make. */
const EXECUTORS: Record<ApprovalKind, Executor> = {
  'legal-hold.lift': async (approval, { deletion }, invocation, meta) => {
    await deletion.setLegalHold(approval.target, false, meta);
    await raiseEvent(invocation, deletionInstanceId(approval.target), DELETION_EVENTS.lifted, {});
  },
  'retention-bounds.lower': async (approval, { retention }, _invocation, meta) => {
    await retention.setBounds(approval.target, approval.params.bounds as RetentionBounds, meta);
  },
  'backup.delete': async (approval, { backups }) => {
    await backups.delete(approval.target);
  },
  'orchestration.purge': async (approval, _services, invocation) => {
    await df.getClient(invocation).purgeInstanceHistory(approval.target);
  },
};

app.http(
  listApprovals.id,
  handle(listApprovals, async (ctx, { approvals }) => ({
    status: 200,
    body: { items: await approvals.list(ctx.query.status ? { status: ctx.query.status } : {}) },
  })),
);

app.http(
  getApproval.id,
  handle(getApproval, async (ctx, { approvals }) => ({ status: 200, body: await approvals.get(ctx.params.id) })),
);

app.http(
  decideApproval.id,
  handle(
    decideApproval,
    async (ctx, services) => {
      const meta = metaOf(ctx);
      const decided = await services.approvals.decide(
        ctx.params.id,
        ctx.body.approve,
        ctx.principal,
        meta,
        (approval) => EXECUTORS[approval.kind](approval, services, ctx.invocation, meta),
      );
      return { status: 200, body: decided };
    },
    { extraInputs: [df.input.durableClient()] },
  ),
);
