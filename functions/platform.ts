import { app } from '@azure/functions';
import { apiDocument } from '../lib/operations.js';
import * as df from 'durable-functions';
import { conflict, notFound, unavailable } from '../lib/errors.js';
import { health, listOrchestrations, openApiDocument, purgeOrchestration } from '../lib/platform/api.js';
import { checkStorageHealth } from '../lib/storage/health.js';
import { handle, metaOf } from './http.js';
import { ENDED_RUNTIME_STATUSES } from '../orchestrations/export-lock.js';

app.http(
  health.id,
  handle(health, async (_ctx, { storage }) => {
    const result = await checkStorageHealth(storage);
    // Unreachable storage is the platform's outage: 503 with Retry-After, as the pipeline answers one.
    if (result.status === 'unreachable') throw unavailable(10);
    return { status: 200, body: result };
  }),
);

let document: Record<string, unknown> | undefined;
app.http(
  openApiDocument.id,
  handle(openApiDocument, async () => {
    document ??= apiDocument();
    return { status: 200, body: document };
  }),
);

app.http(
  listOrchestrations.id,
  handle(
    listOrchestrations,
    async (ctx) => {
      const client = df.getClient(ctx.invocation);
      const statuses = ctx.query.runtimeStatus
        ? await client.getStatusBy({ runtimeStatus: [ctx.query.runtimeStatus as df.OrchestrationRuntimeStatus] })
        : await client.getStatusAll();
      // Status only: inputs and outputs stay out of the operator's view.
      const items = statuses.map((s) => ({
        name: s.name,
        instanceId: s.instanceId,
        runtimeStatus: String(s.runtimeStatus),
        createdTime: new Date(s.createdTime).toISOString(),
        lastUpdatedTime: new Date(s.lastUpdatedTime).toISOString(),
        ...(s.customStatus !== undefined && s.customStatus !== null ? { customStatus: s.customStatus } : {}),
      }));
      return { status: 200, body: { items: items.sort((a, b) => b.createdTime.localeCompare(a.createdTime)) } };
    },
    { extraInputs: [df.input.durableClient()] },
  ),
);

app.http(
  purgeOrchestration.id,
  handle(
    purgeOrchestration,
    async (ctx, { approvals }) => {
      const status = await df
        .getClient(ctx.invocation)
        .getStatus(ctx.params.instanceId)
        .catch(() => undefined);
      if (!status?.instanceId) throw notFound('No such orchestration.');
      if (!ENDED_RUNTIME_STATUSES.has(String(status.runtimeStatus)))
        throw conflict('The orchestration still runs; only a finished one is purged.');
      const approval = await approvals.request(
        'orchestration.purge',
        { target: ctx.params.instanceId, reason: ctx.query.reason ?? 'history no longer needed' },
        ctx.principal,
        metaOf(ctx),
      );
      return { status: 202, headers: { Location: `/api/approvals/${approval.id}` }, body: approval };
    },
    { extraInputs: [df.input.durableClient()] },
  ),
);
