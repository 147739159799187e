// Measures the deletion of a seeded tenant in this process against its own Azurite: rows and blobs
// deleted per second, and raw batch deletes of the same number of rows as the baseline.
// `node --import tsx scripts/measure-deletion.ts 2000`
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransactionAction } from '@azure/data-tables';
import sharp from 'sharp';
import { parseConfig } from '../lib/config.js';
import { startAzurite } from '../lib/local-host/azurite.js';
import { createLogger } from '../lib/observability/logger.js';
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
const t0 = performance.now();
const rows = await services.deletion.deleteRows('lab-del');
const t1 = performance.now();
const blobs = await services.deletion.deleteBlobs('lab-del');
const t2 = performance.now();
const rowCount = Object.values(rows).reduce((a, b) => a + b, 0);
// Baseline: the same number of rows written and batch-deleted straight through the SDK.
const table = services.storage.table('baselinedel');
await services.storage.tableService.createTable('baselinedel');
for (let p = 0; p * 100 < rowCount; p++) {
  await table.submitTransaction(Array.from({ length: Math.min(100, rowCount - p * 100) }, (_, i): TransactionAction => ['create', { partitionKey: `p${p % 16}`, rowKey: `${p}-${i}`, v: 'x' }]));
}
const keys: { partitionKey: string; rowKey: string }[] = [];
for await (const r of table.listEntities({ queryOptions: { select: ['PartitionKey', 'RowKey'] } })) keys.push({ partitionKey: r.partitionKey as string, rowKey: r.rowKey as string });
const b0 = performance.now();
const byPartition = new Map<string, string[]>();
for (const k of keys) byPartition.set(k.partitionKey, [...(byPartition.get(k.partitionKey) ?? []), k.rowKey]);
for (const [pk, rks] of byPartition) for (let i = 0; i < rks.length; i += 100) await table.submitTransaction(rks.slice(i, i + 100).map((rk): TransactionAction => ['delete', { partitionKey: pk, rowKey: rk }]));
const b1 = performance.now();
process.stdout.write(
  JSON.stringify({
    orders: count,
    rowsDeleted: rowCount,
    rowsPerSec: Math.round(rowCount / ((t1 - t0) / 1000)),
    blobsDeleted: blobs.blobs,
    blobsPerSec: Math.round(blobs.blobs / ((t2 - t1) / 1000)),
    baselineRowsPerSec: Math.round(keys.length / ((b1 - b0) / 1000)),
    ratio: Number((rowCount / ((t1 - t0) / 1000) / (keys.length / ((b1 - b0) / 1000))).toFixed(2)),
  }) + '\n',
);
await azurite.stop();
process.exit(0);
