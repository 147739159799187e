import { app } from '@azure/functions';
import {
  confirmTotp,
  getMe,
  regenerateRecoveryCodes,
  removeTotp,
  startTotp,
  updateMe,
} from '../lib/identity/api/profile.js';
import type { Principal } from '../lib/identity/permissions.js';
import { forbidden } from '../lib/errors.js';
import type { Services } from '../lib/services.js';
import { attemptOf, handle, metaOf } from './http.js';

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
    const { currentPassword, ...change } = ctx.body;
    // The e-mail is where resets and notices go: a stolen token alone must not redirect it.
    if (change.email !== undefined)
      await services.auth.reauthenticate(principal, currentPassword ?? '', attemptOf(ctx));
    await services.users.update(principal.realm, principal.id, change, metaOf(ctx));
    return { status: 200, body: await me(principal, services) };
  }),
);

app.http(
  startTotp.id,
  handle(startTotp, async (ctx, { auth, mfa }) => {
    const principal = person(ctx.principal);
    await auth.reauthenticate(principal, ctx.body.currentPassword, attemptOf(ctx));
    return { status: 200, body: await mfa.begin(principal.realm, principal.id, metaOf(ctx)) };
  }),
);

app.http(
  confirmTotp.id,
  handle(confirmTotp, async (ctx, { auth, mfa }) => {
    const principal = person(ctx.principal);
    await auth.reauthenticate(principal, ctx.body.currentPassword, attemptOf(ctx));
    const { recoveryCodes, epoch } = await mfa.confirm(principal.realm, principal.id, ctx.body.code, metaOf(ctx));
    await auth.keepCallingSession(principal, epoch);
    return { status: 200, body: { recoveryCodes } };
  }),
);

app.http(
  removeTotp.id,
  handle(removeTotp, async (ctx, { auth, mfa }) => {
    const principal = person(ctx.principal);
    await auth.reauthenticate(principal, ctx.body.currentPassword, attemptOf(ctx));
    await auth.keepCallingSession(
      principal,
      await mfa.remove(principal.realm, principal.id, ctx.body.currentPassword, metaOf(ctx)),
    );
    return { status: 204 };
  }),
);

app.http(
  regenerateRecoveryCodes.id,
  handle(regenerateRecoveryCodes, async (ctx, { auth, mfa }) => {
    const principal = person(ctx.principal);
    await auth.reauthenticate(principal, ctx.body.currentPassword, attemptOf(ctx));
    return { status: 200, body: await mfa.regenerateRecoveryCodes(principal.realm, principal.id, metaOf(ctx)) };
  }),
);
