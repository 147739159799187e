import { app } from '@azure/functions';
import { OPERATOR_REALM } from '../lib/identity/permissions.js';
import {
  announceSubProcessorChange,
  getSubProcessors,
  objectToSubProcessorChange,
  withdrawSubProcessorChange,
} from '../lib/subprocessors/api.js';
import { handle, metaOf } from './http.js';

app.http(
  getSubProcessors.id,
  handle(getSubProcessors, async (ctx, { subProcessors }) => {
    // Operators see every objection; a tenant's people and integrations see their tenant's own.
    const viewer = ctx.principal.realm === OPERATOR_REALM ? {} : { tenant: ctx.principal.realm };
    const { current, versions } = await subProcessors.register();
    return { status: 200, body: { current, versions, changes: await subProcessors.changes(viewer) } };
  }),
);

app.http(
  announceSubProcessorChange.id,
  handle(announceSubProcessorChange, async (ctx, { subProcessors }) => {
    const change = await subProcessors.announce(ctx.body, ctx.principal.id, metaOf(ctx));
    return { status: 201, body: change };
  }),
);

app.http(
  objectToSubProcessorChange.id,
  handle(objectToSubProcessorChange, async (ctx, { subProcessors }) => ({
    status: 201,
    body: await subProcessors.object(ctx.tenant, ctx.params.id, ctx.body.reason, metaOf(ctx)),
  })),
);

app.http(
  withdrawSubProcessorChange.id,
  handle(withdrawSubProcessorChange, async (ctx, { subProcessors }) => ({
    status: 200,
    body: await subProcessors.withdraw(ctx.params.id, metaOf(ctx)),
  })),
);
