// The storage retry metric: a table request the SDK sends again (the account answered 503 once) is
// counted once, by service, through the real TableClient pipeline built in lib/storage/clients.ts.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageClients } from '../../lib/storage/clients.js';

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
const provider = new MeterProvider({ readers: [reader] });
let answered = 0;
const server = createServer((_req, res) => {
  answered++;
  if (answered === 1) {
    res.writeHead(503).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json;odata=nometadata' }).end('{"value":[]}');
});

beforeAll(async () => {
  metrics.setGlobalMeterProvider(provider);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
});
afterAll(async () => {
  server.close();
  await provider.shutdown();
});

describe('labvault.storage.retries', () => {
  it('counts the second attempt of a table request that met a 503', async () => {
    const port = (server.address() as AddressInfo).port;
    const clients = createStorageClients({
      kind: 'connectionString',
      // Azurite's published development account, on a server that fails the first request.
      connectionString: `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1;BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`,
    });
    for await (const _ of clients.tableService.listTables()) break;
    expect(answered).toBe(2);
    await reader.forceFlush();
    const points = exporter
      .getMetrics()
      .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
      .filter((m) => m.descriptor.name === 'labvault.storage.retries')
      .flatMap((m) => m.dataPoints as { attributes: object; value: unknown }[]);
    expect(points.at(-1)).toMatchObject({ attributes: { service: 'table' }, value: 1 });
  }, 30_000);
});
