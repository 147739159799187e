import type { TableClient, TableTransactionResponse, TransactionAction } from '@azure/data-tables';
import { StorageLimitError, statusOf, TABLE_LIMITS } from './errors.js';

/** A failed entity-group transaction, with the index of the action the service rejected. */
export class TransactionFailedError extends Error {
  override name = 'TransactionFailedError';
  constructor(
    readonly statusCode: number,
    /** Index of the failing action when the service reports it (Azure and Azurite prefix "N:"). */
    readonly failedIndex: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(`entity-group transaction failed with ${statusCode} at action ${failedIndex ?? 'unknown'}`, options);
  }
}

function propertyBytes(value: unknown): number {
  if (typeof value === 'string') return value.length * 2;
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === 'object' && value !== null && 'value' in value)
    return propertyBytes((value as { value: unknown }).value);
  return 8;
}

/** Throws StorageLimitError when actions break Azure's entity-group transaction limits. */
export function assertTransactionLimits(actions: readonly TransactionAction[]): void {
  if (actions.length === 0) throw new StorageLimitError('a transaction needs at least one action');
  if (actions.length > TABLE_LIMITS.actionsPerTransaction) {
    throw new StorageLimitError(`a transaction holds at most ${TABLE_LIMITS.actionsPerTransaction} actions`);
  }
  const partition = actions[0]?.[1].partitionKey;
  let total = 0;
  for (const action of actions) {
    const entity = action[1] as Record<string, unknown>;
    if (entity.partitionKey !== partition) throw new StorageLimitError('a transaction spans exactly one partition');
    let entityBytes = 0;
    for (const [name, value] of Object.entries(entity)) {
      const bytes = propertyBytes(value);
      if (bytes > TABLE_LIMITS.bytesPerProperty) {
        throw new StorageLimitError(`property ${name} exceeds ${TABLE_LIMITS.bytesPerProperty} bytes`);
      }
      entityBytes += bytes + name.length * 2 + 8;
    }
    if (entityBytes > TABLE_LIMITS.bytesPerEntity) throw new StorageLimitError('an entity exceeds 1 MiB');
    total += entityBytes;
  }
  if (total > TABLE_LIMITS.bytesPerTransaction) throw new StorageLimitError('a transaction exceeds 4 MiB');
}

export async function submitTransaction(
  table: TableClient,
  actions: TransactionAction[],
): Promise<TableTransactionResponse> {
  assertTransactionLimits(actions);
  try {
    return await table.submitTransaction(actions);
  } catch (error) {
    const status = statusOf(error);
    if (status === 409 || status === 412 || status === 404) {
      const match = /^(\d+):/.exec(error instanceof Error ? error.message : '');
      throw new TransactionFailedError(status, match ? Number(match[1]) : undefined, { cause: error });
    }
    throw error;
  }
}
