import { app } from '@azure/functions';
import { getToms, getTomsHtml } from '../lib/compliance/api.js';
import { renderTomsHtml } from '../lib/compliance/toms.js';
import { forbidden } from '../lib/errors.js';
import type { Principal } from '../lib/identity/permissions.js';
import { handle } from './http.js';

/** Tenants' auditors (audit:read) and the vendor's security officer (security:read) may read it. */
function realmOf(principal: Principal): string {
  if (principal.permissions.has('audit:read') || principal.operatorPermissions.has('security:read'))
    return principal.realm;
  throw forbidden('The TOM report needs audit:read (tenants) or security:read (operators).');
}

app.http(
  getToms.id,
  handle(getToms, async (ctx, { toms }) => ({ status: 200, body: await toms.report(realmOf(ctx.principal)) })),
);

app.http(
  getTomsHtml.id,
  handle(getTomsHtml, async (ctx, { toms }) => ({
    status: 200,
    headers: { 'Content-Type': 'text/html; charset=utf-8' },
    body: renderTomsHtml(await toms.report(realmOf(ctx.principal))),
  })),
);
