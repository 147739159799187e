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
  /** The JSON media types the body is documented with (default application/json; any `+json` type is read). */
  bodyMediaTypes?: readonly string[];
  /**
   * The body may be left out (no bytes at all): the handler then gets `undefined`. For a body only
   * some callers need, e.g. the password a person confirms with where an API key sends nothing.
   */
  bodyOptional?: boolean;
  /**
   * The body as bytes, for formats that are not JSON or need their own parser (HL7 v2, LDT, FHIR):
   * the pipeline checks the media type and the size, the handler parses. Excludes `body`.
   */
  rawBody?: { mediaTypes: readonly string[] };
  /** How failures answer when not as problem+json (same status and headers, the format's own body). */
  failures?: FailureRenderer;
  /** A per-principal budget for an expensive route: over it, 429 with Retry-After. */
  rateLimit?: RateLimit;
  /** Request headers the operation reads (documented only). */
  headers?: Record<string, { description: string; required?: boolean }>;
  responses: Record<number, ResponseSpec>;
}

/** A failure as a format's own error document (a FHIR OperationOutcome, an HL7 ACK) instead of problem+json. */
export interface FailureRenderer {
  contentType: string;
  render(failure: {
    status: number;
    title: string;
    detail: string;
    correlationId: string;
    errors?: readonly { path: string; message: string }[];
  }): string | Uint8Array;
}

export function defineOperation<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  operation: Operation<P, Q, B>,
): Operation<P, Q, B> {
  return operation;
}
