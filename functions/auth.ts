import { app } from '@azure/functions';
import { changePassword, login, logout, refresh } from '../lib/identity/api.js';
import { handle } from './http.js';

app.http(
  login.id,
  handle(login, async (ctx, { auth }) => ({
    status: 200,
    body: await auth.login(ctx.body, { source: ctx.clientAddress, correlationId: ctx.correlationId }),
  })),
);

app.http(
  changePassword.id,
  handle(changePassword, async (ctx, { auth }) => {
    await auth.changePassword(ctx.principal, ctx.body.currentPassword, ctx.body.newPassword, { source: ctx.clientAddress, correlationId: ctx.correlationId });
    return { status: 204 };
  }),
);

app.http(
  refresh.id,
  handle(refresh, async (ctx, { auth }) => ({
    status: 200,
    body: await auth.refresh(ctx.body.refreshToken, { source: ctx.clientAddress, correlationId: ctx.correlationId }),
  })),
);

app.http(
  logout.id,
  handle(logout, async (ctx, { auth }) => {
    await auth.logout(ctx.principal, { source: ctx.clientAddress, correlationId: ctx.correlationId });
    return { status: 204 };
  }),
);
