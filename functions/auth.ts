import { app } from '@azure/functions';
import { changePassword, login, logout, refresh } from '../lib/identity/api/auth.js';
import { attemptOf, handle } from './http.js';

app.http(
  login.id,
  handle(login, async (ctx, { auth }) => ({
    status: 200,
    body: await auth.login(ctx.body, attemptOf(ctx)),
  })),
);

app.http(
  changePassword.id,
  handle(changePassword, async (ctx, { auth }) => {
    await auth.changePassword(ctx.principal, ctx.body.currentPassword, ctx.body.newPassword, attemptOf(ctx));
    return { status: 204 };
  }),
);

app.http(
  refresh.id,
  handle(refresh, async (ctx, { auth }) => ({
    status: 200,
    body: await auth.refresh(ctx.body.refreshToken, attemptOf(ctx)),
  })),
);

app.http(
  logout.id,
  handle(logout, async (ctx, { auth }) => {
    await auth.logout(ctx.principal, attemptOf(ctx));
    return { status: 204 };
  }),
);
