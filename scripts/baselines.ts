// Shared by the bench and the measure scripts: the raw-storage baseline of tenant deletion, and
// process CPU from /proc.
import { readFileSync } from 'node:fs';
import type { TableClient, TransactionAction } from '@azure/data-tables';
import { DELETE_CONCURRENCY } from '../lib/retention/deletion.js';
import { pool } from '../tests/reliability/support.js';

/** CPU seconds (user + system, all threads) a process has used. */
export function cpuSecondsOf(pid: number | undefined): number {
  const fields =
    readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
      .split(') ')[1]
      ?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds the host, Azurite and this process spent since a meter started, and the wall-clock seconds. */
export interface CpuSpent {
  host: number;
  azurite: number;
  client: number;
  total: number;
  wallSeconds: number;
}

/**
 * Starts measuring the CPU of the host and Azurite (from /proc; a process left out counts 0) and of
 * this process; the function it returns reads what each spent since, as often as asked.
 */
export function startCpuMeter(pids: { host?: number; azurite?: number }): () => CpuSpent {
  const of = (pid: number | undefined) => (pid === undefined ? 0 : cpuSecondsOf(pid));
  const host0 = of(pids.host);
  const azurite0 = of(pids.azurite);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const own = process.cpuUsage(client0);
    const host = of(pids.host) - host0;
    const azurite = of(pids.azurite) - azurite0;
    const client = (own.user + own.system) / 1e6;
    return { host, azurite, client, total: host + azurite + client, wallSeconds: (performance.now() - t0) / 1000 };
  };
}

/** `count` rows of ~200 bytes under `prefix`, in 16 partitions, written in 100-row batches. */
export async function seedBaselineRows(table: TableClient, prefix: string, count: number): Promise<void> {
  const rowsByPartition = new Map<string, string[]>();
  for (let i = 0; i < count; i++) {
    const pk = `${prefix}${(i % 16).toString(16)}`;
    const list = rowsByPartition.get(pk) ?? [];
    list.push(String(i).padStart(8, '0'));
    rowsByPartition.set(pk, list);
  }
  await batches([...rowsByPartition], table, (pk, rk): TransactionAction => [
    'create',
    { partitionKey: pk, rowKey: rk, v: 'x'.repeat(200) },
  ]);
}

/** What deletion does at its simplest: a key-only listing of the prefix, then 100-row batch deletes, DELETE_CONCURRENCY partitions at a time. */
export async function deleteBaselineRows(table: TableClient, prefix: string): Promise<void> {
  const found = new Map<string, string[]>();
  for await (const r of table.listEntities({
    queryOptions: {
      filter: `PartitionKey ge '${prefix}' and PartitionKey lt '${prefix}~'`,
      select: ['PartitionKey', 'RowKey'],
    },
  })) {
    const list = found.get(r.partitionKey as string) ?? [];
    list.push(r.rowKey as string);
    found.set(r.partitionKey as string, list);
  }
  await batches([...found], table, (pk, rk): TransactionAction => ['delete', { partitionKey: pk, rowKey: rk }]);
}

async function batches(
  partitions: [string, string[]][],
  table: TableClient,
  action: (pk: string, rk: string) => TransactionAction,
): Promise<void> {
  await pool(partitions.length, DELETE_CONCURRENCY, async (p) => {
    const [pk, rks] = partitions[p] ?? ['', []];
    for (let i = 0; i < rks.length; i += 100)
      await table.submitTransaction(rks.slice(i, i + 100).map((rk) => action(pk, rk)));
  });
}
