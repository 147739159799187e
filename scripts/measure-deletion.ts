// Measures the deletion of a seeded tenant in this process against its own Azurite: rows and blobs
// deleted per second, and raw batch deletes of the same number of rows as the baseline.
// `node --import tsx scripts/measure-deletion.ts 2000`
import { uploadAndProcess } from '../tests/support/images.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseConfig } from '../lib/config.js';
import { startAzurite } from '../local-host/azurite.js';
import { createLogger } from '../lib/observability/logger.js';
import { createServices } from '../lib/services.js';
import { deleteBaselineRows, seedBaselineRows, startCpuMeter } from './baselines.js';

const count = Number(process.argv[2] ?? 2000);
const azurite = await startAzurite();
const services = await createServices(
  parseConfig({
    AzureWebJobsStorage: azurite.connectionString,
    LABVAULT_ENVIRONMENT: 'test',
    LABVAULT_DATA_DIR: mkdtempSync(join(tmpdir(), 'lv-del-')),
  }),
  { logger: createLogger(() => undefined) },
);
const actor = { type: 'system' as const, id: 'measure' };
const meta = { actor, correlationId: 'm' };
await services.tenants.create('lab-del', 'Del', { actor, correlationId: 'm' });
const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: 'red' } })
  .png()
  .toBuffer();
let next = 0;
await Promise.all(
  Array.from({ length: 16 }, async () => {
    for (let i = next++; i < count; i = next++) {
      const o = await services.orders.create(
        'lab-del',
        {
          externalId: `D-${i}`,
          patient: { id: `P-${i}`, firstName: 'A', lastName: 'B', birthDate: '1970-01-01', sex: 'female' },
          orderingPhysician: { name: 'Dr. X' },
          priority: 'routine',
          specimens: [{ id: 'S-1', type: 'biopsy', collectedAt: '2026-11-20T09:30:00Z' }],
          examinations: ['histology'],
        },
        meta,
      );
      if (i % 10 === 0) {
        const u = await services.images.createUpload(
          'lab-del',
          o.order.id,
          'S-1',
          { contentType: 'image/png', fileName: 'x.png' },
          meta,
        );
        await uploadAndProcess(
          services,
          { tenant: 'lab-del', orderId: o.order.id, specimenId: 'S-1', imageId: u.imageId },
          png,
        );
      }
    }
  }),
);
const rowsMeter = startCpuMeter({ azurite: azurite.pid });
const t0 = performance.now();
const rows = await services.deletion.deleteRows('lab-del');
const rowsSpent = rowsMeter();
const rowsCpu = { labvault: rowsSpent.client, azurite: rowsSpent.azurite };
const t1 = performance.now();
const blobs = await services.deletion.deleteBlobs('lab-del');
const t2 = performance.now();
const rowCount = Object.values(rows).reduce((a, b) => a + b, 0);
// Baseline, as in the bench: the same number of rows in the same table, found by a key-only listing
// and removed by 100-row batch deletes, DELETE_CONCURRENCY partitions at a time.
const table = services.storage.table('tenantdata');
await seedBaselineRows(table, 'zz-baseline~', rowCount);
const baseMeter = startCpuMeter({ azurite: azurite.pid });
const b0 = performance.now();
await deleteBaselineRows(table, 'zz-baseline~');
const b1 = performance.now();
const baseSpent = baseMeter();
const baseCpu = { client: baseSpent.client, azurite: baseSpent.azurite };
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
