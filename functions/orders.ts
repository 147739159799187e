import { app } from '@azure/functions';
import { ifMatchHolds, strongEtag } from '../lib/http/etags.js';
import { invalidInput, versionRequired } from '../lib/errors.js';
import {
  createOrder,
  getOrder,
  idempotencyKeySchema,
  listOrders,
  searchOrders,
  updateOrder,
} from '../lib/orders/api.js';
import type { OrderFilters } from '../lib/orders/schemas.js';
import type { RequestContext } from '../lib/http/pipeline.js';
import type { Services } from '../lib/services.js';
import { handle, metaOf } from './http.js';

app.http(
  createOrder.id,
  handle(createOrder, async (ctx, { orders }) => {
    const key = ctx.headers.get('idempotency-key');
    if (key !== null && !idempotencyKeySchema.safeParse(key).success) {
      throw invalidInput('The Idempotency-Key header is invalid.', [
        { path: '/headers/Idempotency-Key', message: '1-128 visible ASCII characters' },
      ]);
    }
    const created = await orders.create(ctx.tenant, ctx.body, metaOf(ctx), key ?? undefined);
    return {
      status: 201,
      body: created.order,
      headers: {
        Location: `/api/orders/${created.order.id}`,
        ETag: strongEtag(created.etag),
        ...(created.replayed ? { 'Idempotent-Replayed': 'true' } : {}),
      },
    };
  }),
);

app.http(
  getOrder.id,
  handle(getOrder, async (ctx, { orders }) => {
    const stored = await orders.get(ctx.tenant, ctx.params.id, metaOf(ctx));
    return { status: 200, body: stored.order, headers: { ETag: strongEtag(stored.etag) } };
  }),
);

const isContinuation = (v: unknown): v is { c: string } =>
  typeof v === 'object' && v !== null && typeof (v as { c?: unknown }).c === 'string';

/** One page of orders for GET /orders and POST /orders/search alike. */
async function orderPage(
  { orders, continuations }: Services,
  ctx: RequestContext<unknown, unknown, unknown>,
  route: string,
  { limit, continuationToken, ...filters }: OrderFilters & { limit: number; continuationToken?: string | undefined },
) {
  // Storage's continuation travels signed: a token of another tenant, route or query, or a changed one, is a 400.
  const binding = { tenant: ctx.tenant, route, query: filters };
  const continuation = continuationToken
    ? (await continuations.open(binding, continuationToken, isContinuation)).c
    : undefined;
  const page = await orders.list(
    ctx.tenant,
    { ...filters, limit, ...(continuation ? { continuation } : {}) },
    metaOf(ctx),
  );
  const next = page.continuation ? await continuations.issue(binding, { c: page.continuation }) : undefined;
  return { status: 200, body: { items: page.items, ...(next ? { continuationToken: next } : {}) } };
}

app.http(
  listOrders.id,
  handle(listOrders, (ctx, services) => orderPage(services, ctx, listOrders.id, ctx.query)),
);

app.http(
  searchOrders.id,
  handle(searchOrders, (ctx, services) => orderPage(services, ctx, searchOrders.id, ctx.body)),
);

app.http(
  updateOrder.id,
  handle(updateOrder, async (ctx, { orders }) => {
    const ifMatch = ctx.headers.get('if-match');
    if (!ifMatch)
      throw versionRequired('Send If-Match with the ETag of the order as last read (or * for any version).');
    const stored = await orders.update(
      ctx.tenant,
      ctx.params.id,
      ctx.body,
      (version) => ifMatchHolds(ifMatch, strongEtag(version)),
      metaOf(ctx),
    );
    return { status: 200, body: stored.order, headers: { ETag: strongEtag(stored.etag) } };
  }),
);
