// Measures the deletion of a seeded tenant in this process against its own Azurite: rows and blobs
// deleted per second, and raw batch deletes of the same number of rows as the baseline.
// `node --import tsx scripts/measure-deletion.ts 2000`
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransactionAction } from '@azure/data-tables';
import sharp from 'sharp';
import { parseConfig } from '../lib/config.js';
import { startAzurite } from '../lib/local-host/azurite.js';
import { createLogger } from '../lib/observability/logger.js';
import { DELETE_CONCURRENCY } from '../lib/retention/deletion.js';
import { createServices } from '../lib/services.js';

const count = Number(process.argv[2] ?? 2000);
const azurite = await startAzurite();
const services = await createServices(
  parseConfig({ AzureWebJobsStorage: azurite.connectionString, LABVAULT_ENVIRONMENT: 'test', LABVAULT_DATA_DIR: mkdtempSync(join(tmpdir(), 'lv-del-')) }),
  { logger: createLogger(() => undefined) },
);
const actor = { type: 'system' as const, id: 'measure' };
const meta = { actor, correlationId: 'm' };
await services.tenants.create('lab-del', 'Del', actor, 'm');
const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: 'red' } }).png().toBuffer();
let next = 0;
await Promise.all(
  Array.from({ length: 16 }, async () => {
    for (let i = next++; i < count; i = next++) {
      const o = await services.orders.create(
        'lab-del',
        { externalId: `D-${i}`, patient: { id: `P-${i}`, firstName: 'A', lastName: 'B', birthDate: '1970-01-01', sex: 'female' }, orderingPhysician: { name: 'Dr. X' }, priority: 'routine', specimens: [{ id: 'S-1', type: 'biopsy', collectedAt: '2026-11-20T09:30:00Z' }], examinations: ['histology'] },
        meta,
      );
      if (i % 10 === 0) {
        const u = await services.images.createUpload('lab-del', o.order.id, 'S-1', { contentType: 'image/png', fileName: 'x.png' }, meta);
        await services.images.processUpload({ tenant: 'lab-del', orderId: o.order.id, specimenId: 'S-1', imageId: u.imageId }, png);
      }
    }
  }),
);
const cpuOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const azuriteCpu0 = cpuOf(azurite.pid);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const rows = await services.deletion.deleteRows('lab-del');
const rowsCpu = { labvault: (process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6, azurite: cpuOf(azurite.pid) - azuriteCpu0 };
const t1 = performance.now();
const blobs = await services.deletion.deleteBlobs('lab-del');
const t2 = performance.now();
const rowCount = Object.values(rows).reduce((a, b) => a + b, 0);
// Baseline, as in the bench: the same number of rows in the same table, found by a key-only listing
// and removed by 100-row batch deletes, DELETE_CONCURRENCY partitions at a time.
const table = services.storage.table('tenantdata');
const seeded = Array.from({ length: 16 }, (_, p) => ({ pk: `zz-baseline~${p.toString(16)}`, rows: [] as string[] }));
for (let i = 0; i < rowCount; i++) seeded[i % 16]?.rows.push(String(i).padStart(8, '0'));
for (const { pk, rows: rks } of seeded) for (let i = 0; i < rks.length; i += 100) await table.submitTransaction(rks.slice(i, i + 100).map((rk): TransactionAction => ['create', { partitionKey: pk, rowKey: rk, v: 'x'.repeat(200) }]));
const baseAzurite0 = cpuOf(azurite.pid);
const baseCpu0 = process.cpuUsage();
const b0 = performance.now();
const found = new Map<string, string[]>();
for await (const r of table.listEntities({ queryOptions: { filter: "PartitionKey ge 'zz-baseline~' and PartitionKey lt 'zz-baseline~~'", select: ['PartitionKey', 'RowKey'] } })) {
  found.set(r.partitionKey as string, [...(found.get(r.partitionKey as string) ?? []), r.rowKey as string]);
}
const partitions = [...found];
await Promise.all(
  Array.from({ length: DELETE_CONCURRENCY }, async () => {
    for (let next = partitions.shift(); next; next = partitions.shift()) {
      const [pk, rks] = next;
      for (let i = 0; i < rks.length; i += 100) await table.submitTransaction(rks.slice(i, i + 100).map((rk): TransactionAction => ['delete', { partitionKey: pk, rowKey: rk }]));
    }
  }),
);
const b1 = performance.now();
const baseCpu = { client: (process.cpuUsage(baseCpu0).user + process.cpuUsage(baseCpu0).system) / 1e6, azurite: cpuOf(azurite.pid) - baseAzurite0 };
process.stdout.write(
  JSON.stringify({
    orders: count,
    rowsDeleted: rowCount,
    rowsPerSec: Math.round(rowCount / ((t1 - t0) / 1000)),
    blobsDeleted: blobs.blobs,
    blobsPerSec: Math.round(blobs.blobs / ((t2 - t1) / 1000)),
    baselineRowsPerSec: Math.round(rowCount / ((b1 - b0) / 1000)),
    cpuSeconds: { deletion: rowsCpu, baseline: baseCpu },
    ratio: Number((rowCount / ((t1 - t0) / 1000) / (rowCount / ((b1 - b0) / 1000))).toFixed(2)),
  }) + '\n',
);
await azurite.stop();
process.exit(0);
