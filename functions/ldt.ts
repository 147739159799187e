import { app } from '@azure/functions';
import { ldtUpload } from '../lib/intake/api.js';
import { handle, metaOf } from './http.js';

app.http(
  ldtUpload.id,
  handle(ldtUpload, async (ctx, { ldt }) => ({
    status: 200,
    body: await ldt.receive(ctx.tenant, ctx.rawBody?.bytes ?? Buffer.alloc(0), ctx.rawBody?.charset, metaOf(ctx)),
  })),
);
