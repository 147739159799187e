import { app } from '@azure/functions';
import { problemOf } from '../lib/http/problem.js';
import { hl7v2Message } from '../lib/intake/api.js';
import { handle, metaOf } from './http.js';

app.http(
  hl7v2Message.id,
  handle(hl7v2Message, async (ctx, { hl7 }) => {
    const answer = await hl7.receive(ctx.tenant, ctx.rawBody?.bytes ?? Buffer.alloc(0), metaOf(ctx), {
      mayUpdate: ctx.principal.permissions.has('orders:update'),
    });
    return {
      // AA is a 200; a refusal keeps the status its kind has everywhere in the API, with the ACK as body.
      status: answer.refusal ? problemOf(answer.refusal).status : 200,
      body: answer.ack,
      headers: { 'Content-Type': `x-application/hl7-v2+er7; charset=${answer.charset}` },
    };
  }),
);
