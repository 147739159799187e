/**
 * RFC 9457 problem details. Domain code throws these typed errors; the pipeline turns them into
 * `application/problem+json`. Details are written by us, never copied from input or exceptions.
 */
export interface FieldError {
  path: string;
  message: string;
}

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

export const badRequest = (detail: string, errors?: FieldError[]): ProblemError =>
  new ProblemError(400, 'Bad Request', detail, errors ? { errors } : {});
export const unauthorized = (detail = 'Missing or invalid credentials.'): ProblemError => new ProblemError(401, 'Unauthorized', detail);
export const forbidden = (detail = 'The principal lacks the permission for this operation.'): ProblemError =>
  new ProblemError(403, 'Forbidden', detail);
export const notFound = (detail = 'No such resource.'): ProblemError => new ProblemError(404, 'Not Found', detail);
export const conflict = (detail: string): ProblemError => new ProblemError(409, 'Conflict', detail);
export const preconditionFailed = (detail = 'The resource changed; fetch it again and retry with its current ETag.'): ProblemError =>
  new ProblemError(412, 'Precondition Failed', detail);
export const payloadTooLarge = (detail: string): ProblemError => new ProblemError(413, 'Payload Too Large', detail);
export const unsupportedMediaType = (detail: string): ProblemError => new ProblemError(415, 'Unsupported Media Type', detail);
export const unprocessable = (detail: string, errors?: FieldError[]): ProblemError =>
  new ProblemError(422, 'Unprocessable Content', detail, errors ? { errors } : {});
export const tooManyRequests = (detail: string, retryAfterSeconds: number): ProblemError =>
  new ProblemError(429, 'Too Many Requests', detail, { retryAfterSeconds });
/** 403 naming the permissions that exceed the caller's own (RFC 9457 extension member). */
export const exceedsGrantor = (exceeding: readonly string[], detail = 'Nobody grants more than they hold.'): ProblemError =>
  new ProblemError(403, 'Forbidden', detail, {
    errors: exceeding.map((p) => ({ path: '/permissions', message: `you do not hold ${p}` })),
    members: { exceedingPermissions: [...exceeding] },
  });
export const preconditionRequired = (detail: string): ProblemError => new ProblemError(428, 'Precondition Required', detail);
export const serviceUnavailable = (retryAfterSeconds = 5): ProblemError =>
  new ProblemError(503, 'Service Unavailable', 'A backing service is temporarily unavailable; retry later.', { retryAfterSeconds });

export function problemBody(status: number, title: string, detail: string, correlationId: string, errors?: FieldError[], members: Record<string, unknown> = {}): Record<string, unknown> {
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
