import { app } from '@azure/functions';
import { createIntegration, listIntegrations, revokeIntegration } from '../lib/identity/api/integrations.js';
import { forbidden } from '../lib/errors.js';
import { attemptOf, handle, metaOf } from './http.js';

app.http(
  listIntegrations.id,
  handle(listIntegrations, async (ctx, { integrations }) => ({
    status: 200,
    body: { items: await integrations.list(ctx.tenant) },
  })),
);

app.http(
  createIntegration.id,
  handle(createIntegration, async (ctx, { auth, integrations }) => {
    if (ctx.principal.kind === 'integration')
      throw forbidden('Integrations do not create API keys; a person with the permissions does.');
    // A key outlives any session: only the account holder, with their password, makes one.
    await auth.reauthenticate(ctx.principal, ctx.body.currentPassword, attemptOf(ctx));
    const created = await integrations.create(
      ctx.tenant,
      ctx.body.name,
      ctx.body.permissions,
      metaOf(ctx),
      ctx.principal,
    );
    return {
      status: 201,
      headers: { Location: `/api/integrations/${created.id}` },
      body: { id: created.id, apiKey: created.apiKey },
    };
  }),
);

app.http(
  revokeIntegration.id,
  handle(revokeIntegration, async (ctx, { integrations }) => {
    await integrations.revoke(ctx.tenant, ctx.params.id, metaOf(ctx));
    return { status: 204 };
  }),
);
