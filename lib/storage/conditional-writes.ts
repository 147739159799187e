import type { TableClient, TableEntity } from '@azure/data-tables';
import { isConflict, isNotFound, isPreconditionFailed } from './errors.js';

/**
 * Whether a conditional write that was answered 412 (ETag moved) or 409 (row exists) had in fact
 * landed. When the answer to a write is lost (connection dropped after the service applied it), the
 * SDK sends the request again, and the retry meets the ETag or the row its own first attempt wrote.
 * Without this check the caller reports "changed meanwhile" for its own change, and skips what
 * follows the write (its audit entry, the action an approval releases).
 *
 * True when the stored row holds every field of `written`. Callers whose write decides something
 * (a claim, a one-time use) write a value unique to the attempt (a decision id, a fresh token hash),
 * so another writer's row never matches; where two writers would store the very same state (the same
 * legal hold set twice), either may take it as made.
 */
export async function landedAlready(table: TableClient, written: TableEntity, error: unknown): Promise<boolean> {
  if (!isPreconditionFailed(error) && !isConflict(error)) return false;
  let stored: Record<string, unknown>;
  try {
    stored = await table.getEntity(written.partitionKey, written.rowKey);
  } catch (readError) {
    if (isNotFound(readError)) return false;
    throw readError;
  }
  return Object.entries(written).every(
    ([field, value]) => SERVICE_FIELDS.has(field) || sameValue(stored[field], value),
  );
}

/** Kept by the service, not by the writer (a row read and written back carries the old ones). */
const SERVICE_FIELDS = new Set(['etag', 'timestamp', 'odata.etag', 'odata.metadata']);

function sameValue(stored: unknown, written: unknown): boolean {
  if (written instanceof Date) return stored instanceof Date && stored.getTime() === written.getTime();
  // A field written as undefined is not stored at all.
  return written === undefined ? stored === undefined : stored === written;
}

/**
 * Creates a row under a key new to this call (a random id): a 409 whose stored row is this one is the
 * call's own create, its answer lost, and counts as made.
 */
export async function createNewRow(table: TableClient, row: TableEntity): Promise<void> {
  try {
    await table.createEntity(row);
  } catch (error) {
    if (!(await landedAlready(table, row, error))) throw error;
  }
}
