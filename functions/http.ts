import type { FunctionInput } from '@azure/functions';
import type { z } from 'zod';
import type { Operation } from '../lib/http/operation.js';
import { type ApiResult, createHandler, type RequestContext } from '../lib/http/pipeline.js';
import type { RequestMeta } from '../lib/audit/types.js';
import { getServices, type Services } from '../lib/services.js';

type Infer<T> = T extends z.ZodType ? z.infer<T> : undefined;

/** Binds an operation of the contract to its handler, with the app's services. */
export function handle<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  operation: Operation<P, Q, B>,
  fn: (ctx: RequestContext<Infer<P>, Infer<Q>, Infer<B>>, services: Services) => Promise<ApiResult>,
  options: { extraInputs?: FunctionInput[] } = {},
) {
  return {
    ...(options.extraInputs ? { extraInputs: options.extraInputs } : {}),
    methods: [operation.method],
    route: operation.route,
    authLevel: 'anonymous' as const,
    handler: createHandler(getServices, operation, async (ctx) => fn(ctx, await getServices())),
  };
}

/** Who acts in this request: what every audited domain call is given. */
export function metaOf(ctx: { actor: RequestContext<unknown, unknown, unknown>['actor']; correlationId: string }): RequestMeta {
  return { actor: ctx.actor, correlationId: ctx.correlationId };
}

/** Where a login-like attempt comes from: what the brute-force defence counts. */
export function attemptOf(ctx: { clientAddress: string | undefined; correlationId: string }): { source: string | undefined; correlationId: string } {
  return { source: ctx.clientAddress, correlationId: ctx.correlationId };
}
