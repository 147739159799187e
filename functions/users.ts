import { app } from '@azure/functions';
import {
  createUser,
  deleteRole,
  deleteUser,
  getSecurityPolicy,
  getUser,
  listRoles,
  listUsers,
  putRole,
  putSecurityPolicy,
  resetUserPassword,
  updateUser,
} from '../lib/identity/api.js';
import { handle } from './http.js';

app.http(
  listUsers.id,
  handle(listUsers, async (ctx, { users }) => ({ status: 200, body: { items: await users.list(ctx.tenant) } })),
);

app.http(
  createUser.id,
  handle(createUser, async (ctx, { users }) => {
    const { roles, ...profile } = ctx.body;
    // Privacy by default: a new account may only read and edit its own profile.
    const created = await users.create(ctx.tenant, profile, roles ?? ['self'], { actor: ctx.actor, correlationId: ctx.correlationId });
    return {
      status: 201,
      headers: { Location: `/api/users/${created.user.id}` },
      body: { id: created.user.id, username: created.user.username, initialPassword: created.initialPassword },
    };
  }),
);

app.http(
  getUser.id,
  handle(getUser, async (ctx, { users }) => ({ status: 200, body: await users.get(ctx.tenant, ctx.params.id) })),
);

app.http(
  updateUser.id,
  handle(updateUser, async (ctx, { users }) => ({
    status: 200,
    body: await users.update(ctx.tenant, ctx.params.id, ctx.body, { actor: ctx.actor, correlationId: ctx.correlationId }),
  })),
);

app.http(
  deleteUser.id,
  handle(deleteUser, async (ctx, { users }) => {
    await users.update(ctx.tenant, ctx.params.id, { status: 'deactivated' }, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: 204 };
  }),
);

app.http(
  resetUserPassword.id,
  handle(resetUserPassword, async (ctx, { users, guard }) => {
    const reset = await users.resetPassword(ctx.tenant, ctx.params.id, { actor: ctx.actor, correlationId: ctx.correlationId });
    await guard.reset(ctx.tenant, reset.user.username);
    return { status: 200, body: { id: reset.user.id, username: reset.user.username, initialPassword: reset.initialPassword } };
  }),
);

app.http(
  getSecurityPolicy.id,
  handle(getSecurityPolicy, async (ctx, { users }) => ({ status: 200, body: await users.policy(ctx.tenant) })),
);

app.http(
  putSecurityPolicy.id,
  handle(putSecurityPolicy, async (ctx, { users }) => {
    await users.setPolicy(ctx.tenant, ctx.body, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: 200, body: ctx.body };
  }),
);

app.http(
  listRoles.id,
  handle(listRoles, async (ctx, { users }) => ({ status: 200, body: { items: await users.listRoles(ctx.tenant) } })),
);

app.http(
  putRole.id,
  handle(putRole, async (ctx, { users }) => {
    const { role, created } = await users.putRole(ctx.tenant, ctx.params.name, ctx.body.permissions, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: created ? 201 : 200, body: role };
  }),
);

app.http(
  deleteRole.id,
  handle(deleteRole, async (ctx, { users }) => {
    await users.deleteRole(ctx.tenant, ctx.params.name, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: 204 };
  }),
);
