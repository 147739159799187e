import { app } from '@azure/functions';
import { getOperatorToms, getOperatorTomsPage, getToms, getTomsPage } from '../lib/compliance/api.js';
import { renderTomsHtml } from '../lib/compliance/toms.js';
import { OPERATOR_REALM } from '../lib/identity/permissions.js';
import { handle } from './http.js';

const html = (body: string) => ({ status: 200, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body });

app.http(
  getToms.id,
  handle(getToms, async (ctx, { toms }) => ({ status: 200, body: await toms.report(ctx.tenant) })),
);
app.http(
  getTomsPage.id,
  handle(getTomsPage, async (ctx, { toms }) => html(renderTomsHtml(await toms.report(ctx.tenant)))),
);
app.http(
  getOperatorToms.id,
  handle(getOperatorToms, async (_ctx, { toms }) => ({ status: 200, body: await toms.report(OPERATOR_REALM) })),
);
app.http(
  getOperatorTomsPage.id,
  handle(getOperatorTomsPage, async (_ctx, { toms }) => html(renderTomsHtml(await toms.report(OPERATOR_REALM)))),
);
