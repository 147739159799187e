import { app } from '@azure/functions';
import { createIntegration, listIntegrations, revokeIntegration } from '../lib/identity/api.js';
import { handle } from './http.js';

app.http(
  listIntegrations.id,
  handle(listIntegrations, async (ctx, { integrations }) => ({ status: 200, body: { items: await integrations.list(ctx.tenant) } })),
);

app.http(
  createIntegration.id,
  handle(createIntegration, async (ctx, { integrations }) => {
    const created = await integrations.create(ctx.tenant, ctx.body.name, ctx.body.permissions, ctx.actor, ctx.correlationId);
    return { status: 201, headers: { Location: `/api/integrations/${created.id}` }, body: { id: created.id, apiKey: created.apiKey } };
  }),
);

app.http(
  revokeIntegration.id,
  handle(revokeIntegration, async (ctx, { integrations }) => {
    await integrations.revoke(ctx.tenant, ctx.params.id, ctx.actor, ctx.correlationId);
    return { status: 204 };
  }),
);
