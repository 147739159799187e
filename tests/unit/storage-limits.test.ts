import type { TransactionAction } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { StorageLimitError } from '../../lib/storage/errors.js';
import { assertTransactionLimits } from '../../lib/storage/transaction.js';

const row = (pk: string, i: number, extra: Record<string, unknown> = {}): TransactionAction => [
  'create',
  { partitionKey: pk, rowKey: `r${i}`, ...extra },
];

describe("Azure's table limits, enforced before Azurite (which does not)", () => {
  it('allows 100 actions in one partition', () => {
    expect(() => assertTransactionLimits(Array.from({ length: 100 }, (_, i) => row('p', i)))).not.toThrow();
  });
  it('refuses 101 actions, two partitions, a 64 KiB property and a 4 MiB batch', () => {
    expect(() => assertTransactionLimits(Array.from({ length: 101 }, (_, i) => row('p', i)))).toThrowError(
      StorageLimitError,
    );
    expect(() => assertTransactionLimits([row('p', 1), row('q', 2)])).toThrowError(/one partition/);
    expect(() => assertTransactionLimits([row('p', 1, { big: 'x'.repeat(32 * 1024 + 1) })])).toThrowError(
      /property big/,
    );
    const wide = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, 'x'.repeat(25_000)]));
    expect(() => assertTransactionLimits(Array.from({ length: 5 }, (_, i) => row('p', i, wide)))).toThrowError(/4 MiB/);
  });
});
