// Measures a data export of a seeded tenant, in this process, against its own Azurite:
// records per second and the peak RSS. `node --import tsx scripts/measure-export.ts 20000`
// (the figures in docs/performance.md come from this script).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../lib/config.js';
import { startAzurite } from '../local-host/azurite.js';
import { createLogger } from '../lib/observability/logger.js';
import type { CreateOrderInput } from '../lib/orders/schemas.js';
import type { PartFile } from '../lib/exports/exports.js';
import { createServices } from '../lib/services.js';
import { startCpuMeter } from './baselines.js';

const count = Number(process.argv[2] ?? 20000);
const azurite = await startAzurite();
const services = await createServices(
  parseConfig({
    AzureWebJobsStorage: azurite.connectionString,
    LABVAULT_ENVIRONMENT: 'test',
    LABVAULT_DATA_DIR: mkdtempSync(join(tmpdir(), 'lv-measure-')),
  }),
  { logger: createLogger(() => undefined) },
);
const actor = { type: 'system' as const, id: 'measure' };
await services.tenants.create('lab-measure', 'Measure', { actor, correlationId: 'm' });
const order = (i: number): CreateOrderInput => ({
  externalId: `M-${i}`,
  patient: {
    id: `P-${i % 5000}`,
    firstName: 'Test',
    lastName: `Patient${i % 5000}`,
    birthDate: '1970-01-01',
    sex: 'female',
  },
  orderingPhysician: { name: 'Dr. Test', lanr: '123456601', bsnr: '031234500' },
  priority: 'routine',
  clinicalInformation: 'Measurement order',
  specimens: [{ id: 'S-1', type: 'biopsy', collectedAt: '2026-11-20T09:30:00Z' }],
  examinations: ['histology'],
});
let next = 0;
const seedStart = performance.now();
await Promise.all(
  Array.from({ length: 16 }, async () => {
    for (let i = next++; i < count; i = next++)
      await services.orders.create('lab-measure', order(i), { actor, correlationId: 'seed' });
  }),
);
const seedSeconds = (performance.now() - seedStart) / 1000;
let peak = process.memoryUsage().rss;
const baseline = peak;
const peaks = { heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  peak = Math.max(peak, m.rss);
  for (const k of Object.keys(peaks) as (keyof typeof peaks)[]) peaks[k] = Math.max(peaks[k], m[k]);
}, 50);
const cpuMeter = startCpuMeter({ azurite: azurite.pid });
const started = performance.now();
const record = await services.exports.request('lab-measure', 'ndjson', 'request', 'measure', {
  actor,
  correlationId: 'm',
});
const files: PartFile[] = [];
const stepSeconds: Record<string, number> = {};
const timed = async <T>(step: string, run: () => Promise<T>): Promise<T> => {
  const t0 = performance.now();
  const result = await run();
  stepSeconds[step] = (stepSeconds[step] ?? 0) + Number(((performance.now() - t0) / 1000).toFixed(2));
  return result;
};
// Four parts at a time, as the orchestration runs them.
const parts = await services.exports.plan('lab-measure', record.id);
for (let i = 0; i < parts.length; i += 4) {
  const batch = parts.slice(i, i + 4);
  const results = await timed('parts', () =>
    Promise.all(batch.map((part) => services.exports.writePart('lab-measure', record.id, part, 'ndjson'))),
  );
  files.push(...results.flat());
}
const archive = await timed('assemble', () => services.exports.assemble('lab-measure', record.id, 'ndjson', files));
const seconds = (performance.now() - started) / 1000;
const spent = cpuMeter();
const azuriteCpu = spent.azurite;
clearInterval(sampler);
const records = files.reduce((n, f) => n + f.count, 0);
process.stdout.write(
  JSON.stringify({
    orders: count,
    seedOrdersPerSec: Math.round(count / seedSeconds),
    exportSeconds: Number(seconds.toFixed(1)),
    records,
    recordsPerSec: Math.round(records / seconds),
    archiveMB: Number((archive.bytes / 1048576).toFixed(1)),
    mbPerSec: Number((archive.bytes / 1048576 / seconds).toFixed(2)),
    rssBeforeMB: Math.round(baseline / 1048576),
    peakRssMB: Math.round(peak / 1048576),
    peakMB: Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, Math.round(v / 1048576)])),
    stepSeconds,
    cpuSeconds: {
      labvault: Number(spent.client.toFixed(1)),
      azurite: Number(azuriteCpu.toFixed(1)),
    },
  }) + '\n',
);
await azurite.stop();
process.exit(0);
