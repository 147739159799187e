/**
 * RFC 9457 problem details: how the HTTP side answers an error. Domain code throws the domain's
 * errors (lib/errors.ts); `problemOf` gives each kind its status and title.
 */
import { DomainError, type DomainErrorKind, type FieldError } from '../errors.js';

export type { FieldError } from '../errors.js';

export class ProblemError extends Error {
  override name = 'ProblemError';
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly extras: { errors?: FieldError[]; retryAfterSeconds?: number; members?: Record<string, unknown> } = {},
  ) {
    super(`${status} ${title}`);
  }
}

const STATUS_OF: Record<DomainErrorKind, [number, string]> = {
  'invalid-input': [400, 'Bad Request'],
  unauthenticated: [401, 'Unauthorized'],
  forbidden: [403, 'Forbidden'],
  'not-found': [404, 'Not Found'],
  conflict: [409, 'Conflict'],
  'stale-version': [412, 'Precondition Failed'],
  'too-large': [413, 'Payload Too Large'],
  'unsupported-media-type': [415, 'Unsupported Media Type'],
  unprocessable: [422, 'Unprocessable Content'],
  'version-required': [428, 'Precondition Required'],
  'rate-limited': [429, 'Too Many Requests'],
  unavailable: [503, 'Service Unavailable'],
};

/** The problem a domain error answers with. */
export function problemOf(error: DomainError): ProblemError {
  const [status, title] = STATUS_OF[error.kind];
  return new ProblemError(status, title, error.detail, error.extras);
}

/** A problem of the HTTP layer itself, or the one a domain error maps to; undefined for anything else. */
export function asProblem(error: unknown): ProblemError | undefined {
  if (error instanceof ProblemError) return error;
  if (error instanceof DomainError) return problemOf(error);
  return undefined;
}

export function problemBody(
  status: number,
  title: string,
  detail: string,
  correlationId: string,
  errors?: FieldError[],
  members: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: `https://labvault.example/problems/${status}`,
    title,
    status,
    detail,
    correlationId,
    ...(errors ? { errors } : {}),
    ...members,
  };
}
