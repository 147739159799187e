import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { z } from 'zod';
import { DecryptionError } from '../crypto/field-cipher.js';
import type { AuditActor } from '../audit/types.js';
import { OPERATOR_REALM, type Principal } from '../identity/permissions.js';
import type { RateLimit, RateVerdict } from '../identity/rate-limits.js';
import { errorFields, type Logger } from '../observability/logger.js';
import { StorageLimitError, statusOf } from '../storage/errors.js';
import { ifNoneMatchHits, representationEtag } from './etags.js';
import type { FailureRenderer, Operation } from './operation.js';
import {
  DomainError,
  type FieldError,
  forbidden,
  invalidInput,
  notFound,
  rateLimited,
  tooLarge,
  unavailable,
  unsupportedMediaType,
} from '../errors.js';
import { asProblem, ProblemError, problemBody, problemOf } from './problem.js';

export const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Authenticator {
  /** Resolves the Authorization header to a principal, or throws an UnauthenticatedError. */
  authenticate(
    authorization: string | null,
    request: { clientAddress: string | undefined; correlationId: string; tenantHeader: string | null },
  ): Promise<Principal>;
}

export interface PipelineServices {
  authenticator: Authenticator;
  logger: Logger;
  /** Reverse proxies whose X-Forwarded-For entries are trusted (LABVAULT_TRUSTED_PROXIES). */
  trustedProxies: readonly string[];
  /** Per-principal budgets of expensive routes (operations that declare a rateLimit). */
  rateLimiter: { take(principal: string, rule: RateLimit): Promise<RateVerdict> };
  /** Records a call made under an operator's access grant in the tenant's audit log (before it runs). */
  recordStaffAccess(principal: Principal, operationId: string, correlationId: string, actor: AuditActor): Promise<void>;
  /** Records a refusal (403, 404) of an authenticated caller: the anomaly scan counts them as probing. */
  recordRefusal?(
    principal: Principal,
    operationId: string,
    status: number,
    correlationId: string,
    actor: AuditActor,
  ): Promise<void>;
}

export interface RequestContext<P, Q, B> {
  principal: Principal;
  /** The tenant (or the operator realm) whose data this call reaches. */
  tenant: string;
  actor: AuditActor;
  params: P;
  query: Q;
  body: B;
  headers: Headers;
  correlationId: string;
  clientAddress: string | undefined;
  /** The Functions invocation (e.g. for df.getClient). */
  invocation: InvocationContext;
  /** The body's bytes and media type, for operations that declare `rawBody`. */
  rawBody?: RawBody;
  request: HttpRequest;
}

type Infer<T> = T extends z.ZodType ? z.infer<T> : undefined;

export interface RawBody {
  bytes: Buffer;
  /** The media type without parameters, lower case. */
  mediaType: string;
  /** The `charset` parameter, lower case, when given. */
  charset?: string;
}

const SECURITY_HEADERS: Record<string, string> = {
  'Cache-Control': 'no-store',
  Pragma: 'no-cache',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
  'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function issuesToErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.map((issue) => ({
    path: issue.path.length === 0 ? '/' : '/' + issue.path.map(String).join('/'),
    // zod's messages describe the rule, not the value (we never enable value reporting).
    message: issue.message,
  }));
}

/**
 * JSON.parse that refuses prototype-polluting keys anywhere in the document. A reviver makes the
 * parse several times slower, so it runs only when such a key could be there: a key that decodes to
 * one of them is spelled out literally unless it uses a \u escape.
 */
export function parseJsonStrict(text: string): unknown {
  if (!text.includes('\\u') && ![...FORBIDDEN_KEYS].some((key) => text.includes(key))) return JSON.parse(text);
  return JSON.parse(text, (key, value: unknown) => {
    if (FORBIDDEN_KEYS.has(key)) throw invalidInput(`The key "${key}" is not allowed in a request body.`);
    return value;
  });
}

async function readBody(request: HttpRequest, optional: boolean): Promise<unknown> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > MAX_BODY_BYTES)
    throw tooLarge(`Request bodies are limited to ${MAX_BODY_BYTES} bytes.`);
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_BODY_BYTES) throw tooLarge(`Request bodies are limited to ${MAX_BODY_BYTES} bytes.`);
  if (optional && bytes.length === 0) return undefined;
  const contentType = (request.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (contentType !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(contentType)) {
    throw unsupportedMediaType('Send the body as application/json.');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw invalidInput('The body is not valid UTF-8.');
  }
  try {
    return parseJsonStrict(text);
  } catch (error) {
    if (error instanceof DomainError) throw error;
    throw invalidInput('The body is not valid JSON.');
  }
}

async function readRawBody(request: HttpRequest, mediaTypes: readonly string[]): Promise<RawBody> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > MAX_BODY_BYTES)
    throw tooLarge(`Request bodies are limited to ${MAX_BODY_BYTES} bytes.`);
  const [type = '', ...parameters] = (request.headers.get('content-type') ?? '').split(';');
  const mediaType = type.trim().toLowerCase();
  if (!mediaTypes.includes(mediaType)) throw unsupportedMediaType(`Send the body as ${mediaTypes.join(' or ')}.`);
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_BODY_BYTES) throw tooLarge(`Request bodies are limited to ${MAX_BODY_BYTES} bytes.`);
  const charset = parameters
    .map((p) => /^\s*charset\s*=\s*"?([^";\s]+)"?\s*$/i.exec(p)?.[1])
    .find((c) => c !== undefined)
    ?.toLowerCase();
  return { bytes, mediaType, ...(charset ? { charset } : {}) };
}

function parseWith<T extends z.ZodType>(
  schema: T,
  value: unknown,
  onError: (errors: FieldError[]) => DomainError,
): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw onError(issuesToErrors(result.error.issues));
  return result.data;
}

/**
 * Restricted tokens reach only the operations that admit their scope. Tenant operations need a
 * principal of that tenant (an operator only through a live grant, else the tenant's data does not
 * exist for them: 404) holding the permission; operator operations need operator permissions.
 */
function authorize(operation: Operation, principal: Principal): void {
  if (principal.scope !== 'full' && !(operation.scopes ?? []).includes(principal.scope)) {
    throw forbidden(
      principal.scope === 'password-change'
        ? 'Change your password first (POST /api/auth/password).'
        : 'Enrol a second factor first.',
    );
  }
  const access = operation.access;
  if (access === 'operator' && principal.kind !== 'operator')
    throw forbidden('Only the vendor’s operators make this call.');
  if (typeof access !== 'object') return;
  if ('permission' in access) {
    if (principal.tenant === undefined) throw notFound();
    if (!principal.permissions.has(access.permission)) throw forbidden();
    return;
  }
  if (!principal.operatorPermissions.has(access.operatorPermission)) throw forbidden();
}

function toProblem(error: unknown, logger: Logger, operationId: string, correlationId: string): ProblemError {
  const problem = asProblem(error);
  if (problem) return problem;
  if (error instanceof StorageLimitError) return problemOf(tooLarge('The data is too large to store.'));
  const status = statusOf(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (
    (status !== undefined && (status >= 500 || status === 408 || status === 429)) ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === 'REQUEST_SEND_ERROR'
  ) {
    logger.log('warn', 'storage.unavailable', { operation: operationId, correlationId, ...errorFields(error) });
    return problemOf(unavailable());
  }
  logger.log('error', 'request.failed', {
    operation: operationId,
    correlationId,
    ...errorFields(error),
    decryption: error instanceof DecryptionError,
  });
  return new ProblemError(
    500,
    'Internal Server Error',
    'The request failed; quote the correlation id when reporting it.',
  );
}

/**
 * The HTTP answer of a handler's result. A successful GET (and HEAD) carries a strong ETag — the
 * handler's own, or the hash of the representation — and answers 304 when If-None-Match names it
 * (RFC 9110 §13.1.2). HEAD answers what GET would, without the body.
 */
function respond(
  result: ApiResult,
  correlationId: string,
  request: { method: string; ifNoneMatch: string | null },
): HttpResponseInit {
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'x-correlation-id': correlationId,
    ...(result.headers ?? {}),
  };
  const isRead = request.method === 'GET' || request.method === 'HEAD';
  let body: HttpResponseInit['body'];
  if (result.body === undefined) body = undefined;
  else if (Buffer.isBuffer(result.body) || result.body instanceof Uint8Array) body = result.body;
  // Large bodies (an export archive) stream through; the handler sets their headers.
  else if (result.body instanceof ReadableStream) body = result.body;
  else {
    headers['Content-Type'] ??= 'application/json; charset=utf-8';
    body = JSON.stringify(result.body);
  }
  if (isRead && result.status === 200 && (typeof body === 'string' || body instanceof Uint8Array)) {
    headers.ETag ??= representationEtag(body);
    if (request.ifNoneMatch !== null && ifNoneMatchHits(request.ifNoneMatch, headers.ETag)) {
      delete headers['Content-Type'];
      delete headers['Content-Length'];
      return { status: 304, headers };
    }
  }
  if (request.method === 'HEAD') {
    if (typeof body === 'string' || body instanceof Uint8Array)
      headers['Content-Length'] ??= String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    if (body instanceof ReadableStream) void body.cancel();
    return { status: result.status, headers };
  }
  return body === undefined ? { status: result.status, headers } : { status: result.status, headers, body };
}

/** The challenges of a 401 (RFC 9110 §11.6.1): people send a bearer token, integrations an API key. */
const AUTH_CHALLENGES = 'Bearer realm="labvault", ApiKey realm="labvault"';

export function problemResponse(
  problem: ProblemError,
  correlationId: string,
  failures?: FailureRenderer,
): HttpResponseInit {
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'x-correlation-id': correlationId,
    'Content-Type': failures?.contentType ?? 'application/problem+json; charset=utf-8',
  };
  if (problem.extras.retryAfterSeconds !== undefined) headers['Retry-After'] = String(problem.extras.retryAfterSeconds);
  if (problem.status === 401) headers['WWW-Authenticate'] = AUTH_CHALLENGES;
  if (failures) {
    const { status, title, detail } = problem;
    const errors = problem.extras.errors;
    return {
      status,
      headers,
      body: failures.render({ status, title, detail, correlationId, ...(errors ? { errors } : {}) }),
    };
  }
  return {
    status: problem.status,
    headers,
    body: JSON.stringify(
      problemBody(
        problem.status,
        problem.title,
        problem.detail,
        correlationId,
        problem.extras.errors,
        problem.extras.members,
      ),
    ),
  };
}

/** An X-Forwarded-For entry without its port: `1.2.3.4:5678` → `1.2.3.4`, `[::1]:5678` → `::1`. */
function addressOfEntry(entry: string): string | undefined {
  const trimmed = entry.trim();
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::\d{1,5})?$/.exec(trimmed);
  const candidate = bracketed
    ? (bracketed[1] ?? '')
    : (/^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(trimmed)?.[1] ?? trimmed);
  return isIP(candidate) ? candidate.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1').toLowerCase() : undefined;
}

/**
 * The caller's address. The platform's front end (or the local host) appends the address of the
 * connection it accepted to X-Forwarded-For, so the right-most entry is what we saw; entries to its
 * left are whatever the caller claimed. Only when LABVAULT_TRUSTED_PROXIES lists the proxies in
 * front do we walk left past them, to the right-most entry no trusted proxy added.
 */
export function clientAddressOf(request: HttpRequest, trustedProxies: readonly string[] = []): string | undefined {
  const entries = (request.headers.get('x-forwarded-for') ?? '').split(',').filter((e) => e.trim() !== '');
  const trusted = new Set(trustedProxies.map((p) => addressOfEntry(p)).filter((p): p is string => p !== undefined));
  for (let i = entries.length - 1; i >= 0; i--) {
    const address = addressOfEntry(entries[i] ?? '');
    if (address === undefined) return undefined;
    if (!trusted.has(address) || i === 0) return address;
  }
  return undefined;
}

/**
 * Builds the Azure Functions handler of one operation: correlation id, authentication,
 * authorisation, validation of params, query and body, the domain call, and problem+json for
 * every failure. Handlers only translate; they never see an invalid input.
 */
export function createHandler<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  services: () => Promise<PipelineServices>,
  operation: Operation<P, Q, B>,
  handle: (ctx: RequestContext<Infer<P>, Infer<Q>, Infer<B>>) => Promise<ApiResult>,
): (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit> {
  return async (request, invocation) => {
    const sent = request.headers.get('x-correlation-id');
    const correlationId = sent && CORRELATION_ID.test(sent) ? sent : randomUUID();
    const started = performance.now();
    let logger: Logger | undefined;
    let principalId: string | undefined;
    let response: HttpResponseInit;
    let svc: PipelineServices | undefined;
    let principal: Principal | undefined;
    let actor: AuditActor | undefined;
    try {
      svc = await services();
      logger = svc.logger;
      const clientAddress = clientAddressOf(request, svc.trustedProxies);
      actor = { type: 'system', id: 'anonymous', ...(clientAddress ? { address: clientAddress } : {}) };
      if (operation.access !== 'public') {
        principal = await svc.authenticator.authenticate(request.headers.get('authorization'), {
          clientAddress,
          correlationId,
          tenantHeader: request.headers.get('x-labvault-tenant'),
        });
        principalId = principal.id;
        actor = { type: principal.kind, id: principal.id, ...(clientAddress ? { address: clientAddress } : {}) };
        authorize(operation, principal);
        if (operation.rateLimit) {
          const verdict = await svc.rateLimiter.take(`${principal.realm}:${principal.id}`, operation.rateLimit);
          if (!verdict.allowed)
            throw rateLimited('Too many calls of this kind; wait before trying again.', verdict.retryAfterSeconds);
        }
        if (principal.grant) await svc.recordStaffAccess(principal, operation.id, correlationId, actor);
      }
      // A path parameter that cannot be valid names nothing that exists.
      const params = operation.params
        ? parseWith(operation.params, { ...request.params }, () => notFound())
        : undefined;
      const query = operation.query
        ? parseWith(operation.query, Object.fromEntries(request.query.entries()), (errors) =>
            invalidInput('The query is invalid.', errors),
          )
        : undefined;
      let body: unknown;
      const rawBody = operation.rawBody ? await readRawBody(request, operation.rawBody.mediaTypes) : undefined;
      if (operation.body) {
        const raw = await readBody(request, operation.bodyOptional === true);
        body =
          raw === undefined
            ? undefined
            : parseWith(operation.body, raw, (errors) => invalidInput('The body does not match the schema.', errors));
      }
      const result = await handle({
        principal: principal ?? (undefined as unknown as Principal),
        tenant: principal?.tenant ?? OPERATOR_REALM,
        actor,
        params: params as Infer<P>,
        query: query as Infer<Q>,
        body: body as Infer<B>,
        headers: request.headers as unknown as Headers,
        correlationId,
        clientAddress,
        invocation,
        request,
        ...(rawBody ? { rawBody } : {}),
      });
      response = respond(result, correlationId, {
        method: request.method.toUpperCase(),
        ifNoneMatch: request.headers.get('if-none-match'),
      });
    } catch (error) {
      const fallbackLogger: Logger = logger ?? { log: () => undefined };
      response = problemResponse(
        toProblem(error, fallbackLogger, operation.id, correlationId),
        correlationId,
        operation.failures,
      );
    }
    const status = response.status ?? 200;
    if (principal && actor && svc?.recordRefusal && (status === 403 || status === 404)) {
      // Best effort: the refusal is the answer whatever happens to its record.
      await svc.recordRefusal(principal, operation.id, status, correlationId, actor).catch(() => {
        logger?.log('warn', 'refusal.record.failed', { operation: operation.id, correlationId });
      });
    }
    logger?.log('info', 'request', {
      operation: operation.id,
      status: response.status ?? 200,
      ms: Math.round(performance.now() - started),
      correlationId,
      principal: principalId,
    });
    return response;
  };
}
