// Errors of the domains, in the domains' words. Nothing here knows HTTP: the pipeline maps each
// kind to a status and a problem+json body (lib/http/problem.ts), the admin CLI prints them.
// Details are written by us, never copied from input or from another exception.

export interface FieldError {
  path: string;
  message: string;
}

export type DomainErrorKind =
  | 'invalid-input'
  | 'unauthenticated'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'stale-version'
  | 'version-required'
  | 'too-large'
  | 'unsupported-media-type'
  | 'unprocessable'
  | 'rate-limited'
  | 'unavailable';

export interface DomainErrorExtras {
  /** Which fields are wrong, as JSON pointers into the input. */
  errors?: FieldError[];
  /** When trying again may succeed (rate limits, outages). */
  retryAfterSeconds?: number;
  /** Further members a client relies on (e.g. `mfaRequired`, `exceedingPermissions`). */
  members?: Record<string, unknown>;
}

export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly kind: DomainErrorKind,
    readonly detail: string,
    readonly extras: DomainErrorExtras = {},
  ) {
    super(`${kind}: ${detail}`);
  }
}

/** The input is malformed (a value of the wrong shape, a forged token). */
class InvalidInputError extends DomainError {
  override name = 'InvalidInputError';
  constructor(detail: string, errors?: FieldError[]) {
    super('invalid-input', detail, errors ? { errors } : {});
  }
}

/** Who is calling is unknown or not proven (missing, wrong or expired credentials). */
export class UnauthenticatedError extends DomainError {
  override name = 'UnauthenticatedError';
  constructor(detail = 'Missing or invalid credentials.', extras: DomainErrorExtras = {}) {
    super('unauthenticated', detail, extras);
  }
}

/** The caller is known and may not do this. */
export class ForbiddenError extends DomainError {
  override name = 'ForbiddenError';
  constructor(detail = 'The principal lacks the permission for this operation.', extras: DomainErrorExtras = {}) {
    super('forbidden', detail, extras);
  }
}

/** A grant of permissions the granting principal does not hold itself. */
class ExceedsGrantorError extends ForbiddenError {
  override name = 'ExceedsGrantorError';
  constructor(
    readonly exceedingPermissions: readonly string[],
    detail = 'Nobody grants more than they hold.',
  ) {
    super(detail, {
      errors: exceedingPermissions.map((p) => ({ path: '/permissions', message: `you do not hold ${p}` })),
      members: { exceedingPermissions: [...exceedingPermissions] },
    });
  }
}

export class NotFoundError extends DomainError {
  override name = 'NotFoundError';
  constructor(detail = 'No such resource.') {
    super('not-found', detail);
  }
}

/** The request contradicts the current state (a duplicate, a running job, a closed case). */
class ConflictError extends DomainError {
  override name = 'ConflictError';
  constructor(detail: string) {
    super('conflict', detail);
  }
}

/** The caller's version of the resource is not the current one (optimistic concurrency). */
class StaleVersionError extends DomainError {
  override name = 'StaleVersionError';
  constructor(detail = 'The resource changed; fetch it again and retry with its current ETag.') {
    super('stale-version', detail);
  }
}

/** A change that must name the version it applies to did not. */
class VersionRequiredError extends DomainError {
  override name = 'VersionRequiredError';
  constructor(detail: string) {
    super('version-required', detail);
  }
}

class TooLargeError extends DomainError {
  override name = 'TooLargeError';
  constructor(detail: string) {
    super('too-large', detail);
  }
}

class UnsupportedMediaTypeError extends DomainError {
  override name = 'UnsupportedMediaTypeError';
  constructor(detail: string) {
    super('unsupported-media-type', detail);
  }
}

/** Well-formed input that breaks a rule of the domain (a weak password, a bound, a scope). */
class UnprocessableError extends DomainError {
  override name = 'UnprocessableError';
  constructor(detail: string, errors?: FieldError[]) {
    super('unprocessable', detail, errors ? { errors } : {});
  }
}

class RateLimitedError extends DomainError {
  override name = 'RateLimitedError';
  constructor(detail: string, retryAfterSeconds: number) {
    super('rate-limited', detail, { retryAfterSeconds });
  }
}

/** A backing service (storage, Key Vault) does not answer; trying again later may work. */
class UnavailableError extends DomainError {
  override name = 'UnavailableError';
  constructor(retryAfterSeconds = 5, detail = 'A backing service is temporarily unavailable; retry later.') {
    super('unavailable', detail, { retryAfterSeconds });
  }
}

// Short constructors, so that a throw reads like the rule it enforces.
export const invalidInput = (detail: string, errors?: FieldError[]) => new InvalidInputError(detail, errors);
export const unauthenticated = (detail?: string, extras?: DomainErrorExtras) =>
  new UnauthenticatedError(detail, extras);
export const forbidden = (detail?: string, extras?: DomainErrorExtras) => new ForbiddenError(detail, extras);
export const exceedsGrantor = (exceeding: readonly string[], detail?: string) =>
  new ExceedsGrantorError(exceeding, detail);
export const notFound = (detail?: string) => new NotFoundError(detail);
export const conflict = (detail: string) => new ConflictError(detail);
export const staleVersion = (detail?: string) => new StaleVersionError(detail);
export const versionRequired = (detail: string) => new VersionRequiredError(detail);
export const tooLarge = (detail: string) => new TooLargeError(detail);
export const unsupportedMediaType = (detail: string) => new UnsupportedMediaTypeError(detail);
export const unprocessable = (detail: string, errors?: FieldError[]) => new UnprocessableError(detail, errors);
export const rateLimited = (detail: string, retryAfterSeconds: number) =>
  new RateLimitedError(detail, retryAfterSeconds);
export const unavailable = (retryAfterSeconds?: number) => new UnavailableError(retryAfterSeconds);
/** A restricted data subject's record (Art. 18 GDPR): stored, readable, not changed. */
export const restricted = () =>
  new ConflictError(
    "Processing of this record is restricted at the data subject's request (Art. 18 GDPR); it is read-only until the restriction is lifted.",
  );
