import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject } from 'zod-openapi';
import { approvalOperations } from '../approvals/api.js';
import { auditOperations } from '../audit/api.js';
import { backupOperations } from '../backups/api.js';
import { identityOperations } from '../identity/api.js';
import { imageOperations } from '../images/api.js';
import { exportOperations } from '../exports/api.js';
import { breachOperations } from '../breaches/api.js';
import { retentionOperations } from '../retention/api.js';
import { orderOperations } from '../orders/api.js';
import type { Operation } from './operation.js';
import { platformOperations } from './platform-api.js';

/** Every operation of the public API; the OpenAPI document and the route tests read this list. */
export const ALL_OPERATIONS: readonly Operation[] = [...platformOperations, ...identityOperations, ...orderOperations, ...imageOperations, ...exportOperations, ...breachOperations, ...retentionOperations, ...auditOperations, ...approvalOperations, ...backupOperations];

/** The permission an operation requires, tenant or operator vocabulary. */
export function requiredPermission(op: Operation): string | undefined {
  if (typeof op.access !== 'object') return undefined;
  return 'permission' in op.access ? op.access.permission : op.access.operatorPermission;
}

/** `orders/{id:guid}` → `/orders/{id}` */
export function openApiPath(route: string): string {
  return '/' + route.replace(/\{\*?([A-Za-z0-9_]+)(?::[^}?]+)?\??\}/g, '{$1}');
}

export function buildOpenApiDocument(operations: readonly Operation[] = ALL_OPERATIONS): Record<string, unknown> {
  const paths: ZodOpenApiPathsObject = {};
  for (const op of operations) {
    const path = openApiPath(op.route);
    const entry: ZodOpenApiOperationObject = {
      operationId: op.id,
      summary: op.summary,
      tags: [op.tag],
      ...(op.access === 'public' ? { security: [] } : {}),
      ...(requiredPermission(op) ? { 'x-permission': requiredPermission(op) } : {}),
      requestParams: {
        ...(op.params ? { path: op.params as never } : {}),
        ...(op.query ? { query: op.query as never } : {}),
      },
      ...(op.headers
        ? {
            parameters: Object.entries(op.headers).map(([name, h]) => ({
              name,
              in: 'header' as const,
              description: h.description,
              required: h.required ?? false,
              schema: { type: 'string' as const },
            })),
          }
        : {}),
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: op.body } } } } : {}),
      responses: Object.fromEntries(
        Object.entries(op.responses).map(([status, r]) => [
          status,
          {
            description: r.description,
            ...(r.schema
              ? { content: { [r.contentType ?? (Number(status) >= 400 ? 'application/problem+json' : 'application/json')]: { schema: r.schema } } }
              : {}),
          },
        ]),
      ),
    };
    const method = op.method.toLowerCase() as 'get';
    paths[path] = { ...(paths[path] ?? {}), [method]: entry };
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
