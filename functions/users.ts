import { app } from '@azure/functions';
import { deleteRole, listRoles, putRole } from '../lib/identity/api/roles.js';
import {
  createUser,
  deleteUser,
  getSecurityPolicy,
  getUser,
  listUsers,
  putSecurityPolicy,
  resetUserPassword,
  unlockUser,
  updateUser,
} from '../lib/identity/api/users.js';
import { handle, metaOf } from './http.js';

app.http(
  listUsers.id,
  handle(listUsers, async (ctx, { users }) => ({ status: 200, body: { items: await users.list(ctx.tenant) } })),
);

app.http(
  createUser.id,
  handle(createUser, async (ctx, { users }) => {
    const { roles, ...profile } = ctx.body;
    // Privacy by default: a new account may only read and edit its own profile.
    const created = await users.create(ctx.tenant, profile, roles ?? ['self'], metaOf(ctx), { grantor: ctx.principal });
    return {
      status: 201,
      headers: { Location: `/api/users/${created.user.id}` },
      body: { id: created.user.id, username: created.user.username, initialPassword: created.initialPassword },
    };
  }),
);

app.http(
  getUser.id,
  handle(getUser, async (ctx, { users, guard }) => {
    const user = await users.get(ctx.tenant, ctx.params.id);
    return { status: 200, body: { ...user, locked: await guard.isLocked(ctx.tenant, user.username) } };
  }),
);

app.http(
  updateUser.id,
  handle(updateUser, async (ctx, { users }) => ({
    status: 200,
    body: await users.update(ctx.tenant, ctx.params.id, ctx.body, metaOf(ctx), ctx.principal),
  })),
);

app.http(
  deleteUser.id,
  handle(deleteUser, async (ctx, { users }) => {
    await users.update(ctx.tenant, ctx.params.id, { status: 'deactivated' }, metaOf(ctx), ctx.principal);
    return { status: 204 };
  }),
);

app.http(
  resetUserPassword.id,
  handle(resetUserPassword, async (ctx, { users, guard }) => {
    const reset = await users.resetPassword(ctx.tenant, ctx.params.id, metaOf(ctx), ctx.principal);
    await guard.reset(ctx.tenant, reset.user.username);
    return {
      status: 200,
      body: { id: reset.user.id, username: reset.user.username, initialPassword: reset.initialPassword },
    };
  }),
);

app.http(
  unlockUser.id,
  handle(unlockUser, async (ctx, { users, guard, audit }) => {
    const user = await users.get(ctx.tenant, ctx.params.id);
    await guard.reset(ctx.tenant, user.username);
    await audit.record(ctx.tenant, users.partition(ctx.tenant), [
      users.event('user.unlock', 'U', user.id, metaOf(ctx)),
    ]);
    return { status: 204 };
  }),
);

app.http(
  getSecurityPolicy.id,
  handle(getSecurityPolicy, async (ctx, { policy }) => ({ status: 200, body: await policy.policy(ctx.tenant) })),
);

app.http(
  putSecurityPolicy.id,
  handle(putSecurityPolicy, async (ctx, { policy }) => {
    await policy.setPolicy(ctx.tenant, ctx.body, metaOf(ctx));
    return { status: 200, body: ctx.body };
  }),
);

app.http(
  listRoles.id,
  handle(listRoles, async (ctx, { roles }) => ({ status: 200, body: { items: await roles.listRoles(ctx.tenant) } })),
);

app.http(
  putRole.id,
  handle(putRole, async (ctx, { roles }) => {
    const { role, created } = await roles.putRole(
      ctx.tenant,
      ctx.params.name,
      ctx.body.permissions,
      metaOf(ctx),
      ctx.principal,
    );
    return { status: created ? 201 : 200, body: role };
  }),
);

app.http(
  deleteRole.id,
  handle(deleteRole, async (ctx, { roles }) => {
    await roles.deleteRole(ctx.tenant, ctx.params.name, metaOf(ctx), ctx.principal);
    return { status: 204 };
  }),
);
