import { app } from '@azure/functions';
import { badRequest, preconditionRequired } from '../lib/http/problem.js';
import { createOrder, getOrder, idempotencyKeySchema, listOrders, updateOrder } from '../lib/orders/api.js';
import { handle } from './http.js';

app.http(
  createOrder.id,
  handle(createOrder, async (ctx, { orders }) => {
    const key = ctx.headers.get('idempotency-key');
    if (key !== null && !idempotencyKeySchema.safeParse(key).success) {
      throw badRequest('The Idempotency-Key header is invalid.', [{ path: '/headers/Idempotency-Key', message: '1-128 visible ASCII characters' }]);
    }
    const created = await orders.create(ctx.tenant, ctx.body, { actor: ctx.actor, correlationId: ctx.correlationId }, key ?? undefined);
    return {
      status: 201,
      body: created.order,
      headers: { Location: `/api/orders/${created.order.id}`, ETag: created.etag, ...(created.replayed ? { 'Idempotent-Replayed': 'true' } : {}) },
    };
  }),
);

app.http(
  getOrder.id,
  handle(getOrder, async (ctx, { orders }) => {
    const stored = await orders.get(ctx.tenant, ctx.params.id, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: 200, body: stored.order, headers: { ETag: stored.etag } };
  }),
);

app.http(
  listOrders.id,
  handle(listOrders, async (ctx, { orders }) => {
    const page = await orders.list(ctx.tenant, ctx.query, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: 200, body: page };
  }),
);

app.http(
  updateOrder.id,
  handle(updateOrder, async (ctx, { orders }) => {
    const ifMatch = ctx.headers.get('if-match');
    if (!ifMatch) throw preconditionRequired('Send If-Match with the ETag of the order as last read.');
    const stored = await orders.update(ctx.tenant, ctx.params.id, ctx.body, ifMatch, { actor: ctx.actor, correlationId: ctx.correlationId });
    return { status: 200, body: stored.order, headers: { ETag: stored.etag } };
  }),
);
