import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject } from 'zod-openapi';
import type { Operation, ResponseSpec } from './operation.js';
import { problemSchema } from './schemas.js';

/** The permission an operation requires, tenant or operator vocabulary. */
export function requiredPermission(op: Operation): string | undefined {
  if (typeof op.access !== 'object') return undefined;
  return 'permission' in op.access ? op.access.permission : op.access.operatorPermission;
}

/** `orders/{id:guid}` → `/orders/{id}` */
export function openApiPath(route: string): string {
  return '/' + route.replace(/\{\*?([A-Za-z0-9_]+)(?::[^}?]+)?\??\}/g, '{$1}');
}

const problemOf = (description: string, headers?: ResponseSpec['headers']): ResponseSpec => ({
  description,
  schema: problemSchema,
  ...(headers ? { headers } : {}),
});
const RETRY_AFTER = { 'Retry-After': { description: 'Seconds to wait before trying again', required: true } };

/**
 * Every status an operation can answer, beyond what it declares: the pipeline's own answers
 * (authentication, validation, body limits, throttling, storage outages) and those of RFC 9110
 * (304 to a conditional GET, Location on 201/202, ETag on a successful GET).
 */
function responsesOf(op: Operation): Record<number, ResponseSpec> {
  const declared: Record<number, ResponseSpec> = { ...op.responses };
  // An operation whose failures answer in its format's own error document documents that type.
  const failureType = op.failures?.contentType.split(';')[0];
  const problemResponse = (description: string, headers?: ResponseSpec['headers']): ResponseSpec =>
    failureType
      ? { description, contentType: failureType, ...(headers ? { headers } : {}) }
      : problemOf(description, headers);
  const add = (status: number, spec: ResponseSpec) => {
    declared[status] ??= spec;
  };
  if (op.access !== 'public') {
    declared[401] = {
      ...(declared[401] ?? problemResponse('Missing or invalid credentials')),
      headers: { 'WWW-Authenticate': { description: 'The accepted schemes: Bearer and ApiKey', required: true } },
    };
    add(403, problemResponse('Not permitted (permission, token scope, or a grant beyond the caller)'));
  }
  if (op.params) add(404, problemResponse('No such resource (or another tenant’s)'));
  // A tenant's data does not exist for an operator without a staff grant for that tenant.
  if (typeof op.access === 'object' && 'permission' in op.access)
    add(404, problemResponse('No such resource, or no tenant (an operator without a staff grant)'));
  if (op.query || op.body || op.rawBody) add(400, problemResponse('Malformed request'));
  if (op.body || op.rawBody) {
    add(413, problemResponse('Body over 1 MiB'));
    add(415, problemResponse(op.rawBody ? 'Not one of the accepted media types' : 'The body is not JSON'));
  }
  if (op.rateLimit || declared[429])
    declared[429] = { ...(declared[429] ?? problemResponse('Too many calls; see Retry-After')), headers: RETRY_AFTER };
  if (op.id !== 'openApiDocument')
    declared[503] = {
      ...(declared[503] ?? problemResponse('A backing service is temporarily unavailable')),
      headers: RETRY_AFTER,
    };
  for (const status of [201, 202] as const) {
    const spec = declared[status];
    if (spec)
      declared[status] = {
        ...spec,
        headers: {
          Location: { description: 'Where the created resource (or the status of the started work) is' },
          ...(spec.headers ?? {}),
        },
      };
  }
  if (op.method === 'GET' && declared[200]) {
    declared[200] = {
      ...declared[200],
      headers: {
        ETag: { description: 'A strong entity tag of this representation', required: true },
        ...(declared[200].headers ?? {}),
      },
    };
    add(304, {
      description: 'Not modified: If-None-Match named the current ETag',
      headers: { ETag: { description: 'The current entity tag', required: true } },
    });
  }
  return declared;
}

function responseObjects(responses: Record<number, ResponseSpec>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(responses).map(([status, r]) => [
      status,
      {
        description: r.description,
        ...(r.headers
          ? {
              headers: Object.fromEntries(
                Object.entries(r.headers).map(([name, h]) => [
                  name,
                  { description: h.description, required: h.required ?? false, schema: { type: 'string' } },
                ]),
              ),
            }
          : {}),
        ...(r.schema
          ? {
              content: {
                [r.contentType ?? (Number(status) >= 400 ? 'application/problem+json' : 'application/json')]: {
                  schema: r.schema,
                },
              },
            }
          : r.contentType
            ? { content: { [r.contentType]: {} } }
            : {}),
      },
    ]),
  );
}

/** The OpenAPI 3.1 document of the given operations (the registry, lib/operations.ts, has them all). */
export function buildOpenApiDocument(operations: readonly Operation[]): Record<string, unknown> {
  const paths: ZodOpenApiPathsObject = {};
  const allowed = new Map<string, Set<string>>();
  for (const op of operations) {
    const path = openApiPath(op.route);
    const responses = responsesOf(op);
    const entry: ZodOpenApiOperationObject = {
      operationId: op.id,
      summary: op.summary,
      tags: [op.tag],
      ...(op.access === 'public' ? { security: [] } : {}),
      ...(requiredPermission(op) ? { 'x-permission': requiredPermission(op) } : {}),
      ...(op.rateLimit
        ? { 'x-rate-limit': { limit: op.rateLimit.limit, windowSeconds: op.rateLimit.windowSeconds } }
        : {}),
      requestParams: {
        ...(op.params ? { path: op.params as never } : {}),
        ...(op.query ? { query: op.query as never } : {}),
      },
      ...(op.headers || op.method === 'GET'
        ? {
            parameters: [
              ...Object.entries(op.headers ?? {}).map(([name, h]) => ({
                name,
                in: 'header' as const,
                description: h.description,
                required: h.required ?? false,
                schema: { type: 'string' as const },
              })),
              ...(op.method === 'GET'
                ? [
                    {
                      name: 'If-None-Match',
                      in: 'header' as const,
                      description: 'Answer 304 when the representation still has one of these ETags',
                      required: false,
                      schema: { type: 'string' as const },
                    },
                  ]
                : []),
            ],
          }
        : {}),
      // JSON bodies; a PATCH also takes JSON Merge Patch (RFC 7396), which is what it does.
      ...(op.body
        ? {
            requestBody: {
              required: op.bodyOptional !== true,
              content: {
                ...Object.fromEntries((op.bodyMediaTypes ?? ['application/json']).map((t) => [t, { schema: op.body }])),
                ...(op.method === 'PATCH' ? { 'application/merge-patch+json': { schema: op.body } } : {}),
              },
            },
          }
        : {}),
      ...(op.rawBody
        ? {
            requestBody: {
              required: true,
              content: Object.fromEntries(op.rawBody.mediaTypes.map((type) => [type, { schema: { type: 'string' } }])),
            },
          }
        : {}),
      responses: responseObjects(responses) as never,
    };
    const method = op.method.toLowerCase() as 'get';
    paths[path] = { ...(paths[path] ?? {}), [method]: entry };
    if (op.method === 'GET') {
      // HEAD: what GET answers, without a body.
      const head = {
        ...entry,
        operationId: `${op.id}Head`,
        summary: `${op.summary} (headers only)`,
        responses: responseObjects(
          Object.fromEntries(
            Object.entries(responses).map(([status, r]) => [
              status,
              { description: r.description, ...(r.headers ? { headers: r.headers } : {}) },
            ]),
          ),
        ) as never,
      };
      paths[path] = { ...paths[path], head } as never;
    }
    const methods = allowed.get(path) ?? new Set<string>();
    methods.add(op.method);
    if (op.method === 'GET') methods.add('HEAD');
    allowed.set(path, methods);
  }
  for (const [path, methods] of allowed) {
    const allow = [...methods, 'OPTIONS'].sort().join(', ');
    paths[path] = {
      ...paths[path],
      options: {
        operationId: `options${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
        summary: `The methods of this path: ${allow}`,
        tags: ['platform'],
        security: [],
        parameters: [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({
          name: m[1],
          in: 'path',
          required: true,
          schema: { type: 'string' },
        })),
        responses: {
          204: {
            description: 'No content',
            headers: { Allow: { description: allow, required: true, schema: { type: 'string' } } },
          },
        } as never,
      },
    } as never;
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'LabVault API',
      version: '0.1.0',
      description: 'Pathology lab orders and specimen data, encrypted, pseudonymised and audited.',
    },
    servers: [{ url: '/api' }],
    security: [{ apiKey: [] }, { bearer: [] }],
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'ApiKey <key>' },
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      },
    },
    paths,
  }) as unknown as Record<string, unknown>;
}
