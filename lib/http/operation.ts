import type { z } from 'zod';
import type { OperatorPermission, Permission, TokenScope } from '../identity/permissions.js';
import type { RateLimit } from '../identity/rate-limits.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  contentType?: string;
  /** Response headers the answer carries (ETag, Location, Retry-After, …), with whether they always do. */
  headers?: Record<string, { description: string; required?: boolean }>;
}

/**
 * One operation of the public contract: its route, who may call it and the zod schemas of its
 * inputs and outputs. Function files register handlers for these; the OpenAPI document and the
 * request pipeline are both generated from them, so the two cannot drift apart.
 */
export interface Operation<
  P extends z.ZodType = z.ZodType,
  Q extends z.ZodType = z.ZodType,
  B extends z.ZodType = z.ZodType,
> {
  /** Function name (unique in the app) and OpenAPI operationId. */
  id: string;
  method: HttpMethod;
  /** Azure Functions route template, without the `api/` prefix. */
  route: string;
  summary: string;
  tag: string;
  /**
   * `public`: no credentials; `authenticated`: any principal (its own profile, session);
   * `operator`: any of the vendor's staff (the handler checks what the action itself needs);
   * `{ permission }`: a tenant operation, reaching the data of the principal's tenant;
   * `{ operatorPermission }`: an operation of the vendor's staff.
   */
  access:
    'public' | 'authenticated' | 'operator' | { permission: Permission } | { operatorPermission: OperatorPermission };
  /** Token scopes admitted besides `full` (e.g. the password change of a first login). */
  scopes?: readonly TokenScope[];
  params?: P;
  query?: Q;
  body?: B;
  /** A per-principal budget for an expensive route: over it, 429 with Retry-After. */
  rateLimit?: RateLimit;
  /** Request headers the operation reads (documented only). */
  headers?: Record<string, { description: string; required?: boolean }>;
  responses: Record<number, ResponseSpec>;
}

export function defineOperation<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  operation: Operation<P, Q, B>,
): Operation<P, Q, B> {
  return operation;
}
