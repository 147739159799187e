import { inSpan, recordRequest } from '../lib/observability/instruments.js';
import { randomUUID } from 'node:crypto';
import {
  app,
  type FunctionInput,
  type HttpMethod,
  type HttpRequest,
  type HttpResponseInit,
  type InvocationContext,
} from '@azure/functions';
import type { z } from 'zod';
import type { Operation } from '../lib/http/operation.js';
import { type ApiResult, createHandler, type RequestContext } from '../lib/http/pipeline.js';
import { problemBody } from '../lib/http/problem.js';
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
    // HEAD answers what GET would, without the body (RFC 9110 §9.3.2).
    methods: (operation.method === 'GET' ? ['GET', 'HEAD'] : [operation.method]) as HttpMethod[],
    route: operation.route,
    authLevel: 'anonymous' as const,
    handler: measured(
      operation.id,
      createHandler(getServices, operation, async (ctx) =>
        // One span per operation inside the invocation's span: the domain's storage calls are its children.
        inSpan(`labvault ${operation.id}`, { 'labvault.operation': operation.id }, async () =>
          fn(ctx, await getServices()),
        ),
      ),
    ),
  };
}

/** Counts each answer by operation and status (refusals the pipeline gives before the domain too). */
function measured(
  operationId: string,
  handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
): (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit> {
  return async (request, context) => {
    const started = performance.now();
    const response = await handler(request, context);
    recordRequest(operationId, response.status ?? 200, performance.now() - started);
    return response;
  };
}

/** Who acts in this request: what every audited domain call is given. */
export function metaOf(ctx: {
  actor: RequestContext<unknown, unknown, unknown>['actor'];
  correlationId: string;
}): RequestMeta {
  return { actor: ctx.actor, correlationId: ctx.correlationId };
}

/** Where a login-like attempt comes from: what the brute-force defence counts. */
export function attemptOf(ctx: { clientAddress: string | undefined; correlationId: string }): {
  source: string | undefined;
  correlationId: string;
} {
  return { source: ctx.clientAddress, correlationId: ctx.correlationId };
}

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * For every route of the contract, one more function that takes the methods no operation serves:
 * OPTIONS answers 204 with `Allow`, anything else 405 with `Allow` (RFC 9110 §15.5.6). The Functions
 * host would answer those with a bare 404; registered like this, both hosts answer the same.
 */
export function registerAllowedMethods(operations: readonly Operation[]): void {
  const byRoute = new Map<string, Set<string>>();
  for (const op of operations) {
    const methods = byRoute.get(op.route) ?? new Set<string>();
    methods.add(op.method);
    if (op.method === 'GET') methods.add('HEAD');
    byRoute.set(op.route, methods);
  }
  for (const [route, served] of byRoute) {
    const allow = [...served, 'OPTIONS'].sort().join(', ');
    const others = ALL_METHODS.filter((m) => !served.has(m));
    app.http(`allow_${route.replace(/[^A-Za-z0-9]+/g, '_')}`, {
      methods: [...others],
      route,
      authLevel: 'anonymous',
      handler: async (request: HttpRequest): Promise<HttpResponseInit> => {
        const correlationId = randomUUID();
        if (request.method.toUpperCase() === 'OPTIONS')
          return {
            status: 204,
            headers: { Allow: allow, 'x-correlation-id': correlationId, 'Cache-Control': 'no-store' },
          };
        return {
          status: 405,
          headers: {
            Allow: allow,
            'Content-Type': 'application/problem+json; charset=utf-8',
            'x-correlation-id': correlationId,
            'Cache-Control': 'no-store',
          },
          body: JSON.stringify(problemBody(405, 'Method Not Allowed', `This path accepts ${allow}.`, correlationId)),
        };
      },
    });
  }
}
