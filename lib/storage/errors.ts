import { RestError } from '@azure/core-rest-pipeline';

/** Azure's own limits, enforced here because Azurite does not enforce them. */
export const TABLE_LIMITS = {
  actionsPerTransaction: 100,
  bytesPerTransaction: 4 * 1024 * 1024,
  bytesPerProperty: 64 * 1024,
  bytesPerEntity: 1024 * 1024,
} as const;

export class StorageLimitError extends Error {
  override name = 'StorageLimitError';
}

export function statusOf(error: unknown): number | undefined {
  if (error instanceof RestError) return error.statusCode;
  if (typeof error === 'object' && error !== null && 'statusCode' in error) {
    const status = (error as { statusCode?: unknown }).statusCode;
    return typeof status === 'number' ? status : undefined;
  }
  return undefined;
}

export const isNotFound = (error: unknown): boolean => statusOf(error) === 404;
export const isConflict = (error: unknown): boolean => statusOf(error) === 409;
export const isPreconditionFailed = (error: unknown): boolean => statusOf(error) === 412;
