import { type TableEntityResult, TableClient, type TransactionAction } from '@azure/data-tables';
import { beforeAll, describe, expect, it } from 'vitest';
import { submitTransaction, TransactionFailedError } from '../../lib/storage/transaction.js';
import { useAzurite } from '../support/azurite.js';

// LabVault writes entity-group transactions itself (lib/storage/transaction.ts says why); these
// tests hold it to the SDK's `submitTransaction`: the same actions through both, on Azurite, must
// store the same entities and fail the same way.
const azurite = useAzurite();
let table: TableClient;

beforeAll(async () => {
  table = TableClient.fromConnectionString(azurite.connectionString, 'transactions', { allowInsecureConnection: true });
  await table.createTable();
});

/** Every kind of value and key LabVault stores: quotes, spaces, non-ASCII, `~`, typed values. */
const entity = (partitionKey: string, rowKey: string) => ({
  partitionKey,
  rowKey,
  text: 'it\'s "quoted" – ünïcödé ✓ \r\n',
  int: 42,
  double: 1.5,
  negative: -7,
  flag: false,
  big: { value: '9007199254740993', type: 'Int64' as const },
  nativeBig: 12345678901234567890n,
  when: new Date('2026-11-30T12:34:56.789Z'),
  bytes: new Uint8Array([0, 1, 2, 253, 254, 255]),
  typedDouble: { value: '2', type: 'Double' as const },
  empty: '',
});
const withoutMeta = ({ etag: _etag, timestamp: _timestamp, ...rest }: TableEntityResult<Record<string, unknown>>) =>
  rest;

async function stored(partitionKey: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const row of table.listEntities({
    queryOptions: { filter: `PartitionKey eq '${partitionKey.replaceAll("'", "''")}'` },
  }))
    rows.push(withoutMeta(row as TableEntityResult<Record<string, unknown>>));
  return rows.map((row) => ({ ...row, partitionKey: 'same' }));
}

/** Runs `actions(pk)` through the SDK and through LabVault, each in its own partition. */
async function both(
  name: string,
  seed: (pk: string) => TransactionAction[],
  actions: (pk: string, etags: (string | undefined)[]) => TransactionAction[],
) {
  const results: { rows: Record<string, unknown>[]; statuses: number[]; etags: number }[] = [];
  for (const [label, submit] of [
    ['sdk', (a: TransactionAction[]) => table.submitTransaction(a)],
    ['labvault', (a: TransactionAction[]) => submitTransaction(table, a)],
  ] as const) {
    const pk = `${name} ${label} it's ü~`;
    const seeded = seed(pk);
    const seedEtags = seeded.length ? (await table.submitTransaction(seeded)).subResponses.map((r) => r.etag) : [];
    const response = await submit(actions(pk, seedEtags));
    results.push({
      rows: await stored(pk),
      statuses: response.subResponses.map((r) => r.status),
      etags: response.subResponses.filter((r) => typeof r.etag === 'string' && r.etag.length > 0).length,
    });
  }
  const [sdk, labVault] = results;
  if (!sdk || !labVault) throw new Error('both ran');
  expect(labVault).toEqual(sdk);
  return labVault;
}

describe('entity-group transactions written by LabVault', () => {
  it('store what the SDK stores: creates with every value type, keys that need escaping', async () => {
    const result = await both(
      'create',
      () => [],
      (pk) => [
        ['create', entity(pk, "row 'one' ü ~ % & + : = ;")],
        ['create', entity(pk, 'two')],
      ],
    );
    expect(result.rows).toHaveLength(2);
    expect(result.rows[0]).toMatchObject({ int: 42, flag: false, big: BigInt('9007199254740993'), empty: '' });
  });

  it('store what the SDK stores: update (merge, replace with an etag), upsert both ways, delete', async () => {
    const seed = (pk: string): TransactionAction[] => ['a', 'b', 'c', 'd'].map((rk) => ['create', entity(pk, rk)]);
    const result = await both('update', seed, (pk, etags) => [
      ['update', { partitionKey: pk, rowKey: 'a', int: 1 }, 'Merge'],
      ['update', { partitionKey: pk, rowKey: 'b', only: 'this' }, 'Replace', { etag: etags[1] ?? '' }],
      ['upsert', { partitionKey: pk, rowKey: 'c', added: true }],
      ['upsert', { partitionKey: pk, rowKey: 'new', fresh: 1 }, 'Replace'],
      ['delete', { partitionKey: pk, rowKey: 'd' }],
    ]);
    expect(result.statuses).toEqual([204, 204, 204, 204, 204]);
    // Updates and upserts answer the row's new etag (the audit chain's head relies on it).
    expect(result.etags).toBe(4);
  });

  it('fail as the SDK fails: nothing stored, the status and the index of the refused action', async () => {
    const pk = 'conflict';
    await table.createEntity({ partitionKey: pk, rowKey: 'taken' });
    const error = await submitTransaction(table, [
      ['create', { partitionKey: pk, rowKey: 'free' }],
      ['create', { partitionKey: pk, rowKey: 'taken' }],
    ]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransactionFailedError);
    expect(error).toMatchObject({ statusCode: 409, failedIndex: 1 });
    const sdkError = await table
      .submitTransaction([
        ['create', { partitionKey: pk, rowKey: 'free' }],
        ['create', { partitionKey: pk, rowKey: 'taken' }],
      ])
      .catch((e: unknown) => e);
    const firstLine = (e: unknown) => (e as Error).message.split('\n')[0];
    expect((error as TransactionFailedError).cause).toMatchObject({
      statusCode: (sdkError as { statusCode: number }).statusCode,
      code: (sdkError as { code: string }).code,
    });
    expect(firstLine((error as TransactionFailedError).cause)).toBe(firstLine(sdkError));
    expect((await stored(pk)).map((r) => r.rowKey)).toEqual(['taken']);

    const stale = await submitTransaction(table, [
      ['create', { partitionKey: pk, rowKey: 'free' }],
      [
        'update',
        { partitionKey: pk, rowKey: 'taken', x: 1 },
        'Merge',
        { etag: 'W/"datetime\'2000-01-01T00%3A00%3A00Z\'"' },
      ],
    ]).catch((e: unknown) => e);
    expect(stale).toMatchObject({ statusCode: 412, failedIndex: 1 });
    const missing = await submitTransaction(table, [
      ['update', { partitionKey: pk, rowKey: 'absent', x: 1 }, 'Merge'],
    ]).catch((e: unknown) => e);
    expect(missing).toMatchObject({ statusCode: 404, failedIndex: 0 });
    expect((await stored(pk)).map((r) => r.rowKey)).toEqual(['taken']);
  });

  it('answer a request the service refuses as a whole with its status', async () => {
    const error = await submitTransaction(table, [['create', { partitionKey: 'p', rowKey: 'bad/key#?' }]]).catch(
      (e: unknown) => e,
    );
    const sdkError = await table
      .submitTransaction([['create', { partitionKey: 'p', rowKey: 'bad/key#?' }]])
      .catch((e: unknown) => e);
    expect(statusOfError(error)).toBe(statusOfError(sdkError));
    expect(statusOfError(error)).toBeGreaterThanOrEqual(400);
  });
});

function statusOfError(error: unknown): number | undefined {
  if (error instanceof TransactionFailedError) return error.statusCode;
  return (error as { statusCode?: number }).statusCode;
}
