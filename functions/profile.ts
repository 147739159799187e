import { app } from '@azure/functions';
import { confirmTotp, getMe, startTotp, updateMe } from '../lib/identity/api.js';
import type { Principal } from '../lib/identity/permissions.js';
import { forbidden } from '../lib/http/problem.js';
import type { Services } from '../lib/services.js';
import { handle } from './http.js';

function person(principal: Principal): Principal {
  if (principal.kind === 'integration') throw forbidden('Integrations have no personal profile.');
  return principal;
}

async function me(principal: Principal, { users }: Services) {
  const user = await users.get(principal.realm, principal.id);
  const permissions = principal.kind === 'operator' ? [...principal.operatorPermissions] : [...principal.permissions];
  return { ...user, realm: principal.realm, permissions: permissions.sort() };
}

app.http(
  getMe.id,
  handle(getMe, async (ctx, services) => ({ status: 200, body: await me(person(ctx.principal), services) })),
);

app.http(
  updateMe.id,
  handle(updateMe, async (ctx, services) => {
    const principal = person(ctx.principal);
    // Privacy by default: editing the own profile needs profile:update (role `self` has it).
    if (principal.kind === 'user' && !principal.permissions.has('profile:update')) throw forbidden();
    await services.users.update(principal.realm, principal.id, ctx.body, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: 200, body: await me(principal, services) };
  }),
);

app.http(
  startTotp.id,
  handle(startTotp, async (ctx, { users }) => {
    const principal = person(ctx.principal);
    return { status: 200, body: await users.beginTotp(principal.realm, principal.id, { actor: ctx.actor, correlationId: ctx.correlationId }) };
  }),
);

app.http(
  confirmTotp.id,
  handle(confirmTotp, async (ctx, { users }) => {
    const principal = person(ctx.principal);
    return { status: 200, body: await users.confirmTotp(principal.realm, principal.id, ctx.body.code, { actor: ctx.actor, correlationId: ctx.correlationId }) };
  }),
);
