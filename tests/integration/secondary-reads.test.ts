import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config.js';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';
import { createLogger } from '../../lib/observability/logger.js';
import { createServices, type Services } from '../../lib/services.js';
import { createStorageClients } from '../../lib/storage/clients.js';
import { checkStorageHealth } from '../../lib/storage/health.js';
import { exampleOrder } from '../support/fixtures.js';
import { operatorActor } from '../support/services.js';

let primary: AzuriteInstance;
let secondary: AzuriteInstance;
let s: Services;
const meta = { actor: { type: 'integration' as const, id: 'lis' }, correlationId: 'geo' };

/** Stands in for geo-replication: every table and blob container of the primary copied to the secondary. */
async function replicate(): Promise<void> {
  const from = createStorageClients({ kind: 'connectionString', connectionString: primary.connectionString });
  const to = createStorageClients({ kind: 'connectionString', connectionString: secondary.connectionString });
  for await (const container of from.blobService.listContainers()) {
    const target = to.blobService.getContainerClient(container.name);
    await target.createIfNotExists();
    for await (const blob of from.blobService.getContainerClient(container.name).listBlobsFlat()) {
      const bytes = await from.blobService
        .getContainerClient(container.name)
        .getBlobClient(blob.name)
        .downloadToBuffer();
      await target.getBlockBlobClient(blob.name).uploadData(bytes);
    }
  }
  for await (const table of from.tableService.listTables()) {
    const name = table.name ?? '';
    await to.tableService.createTable(name);
    for await (const e of from.table(name).listEntities<Record<string, unknown>>()) {
      const {
        etag: _e,
        timestamp: _t,
        ...data
      } = e as Record<string, unknown> & { partitionKey: string; rowKey: string };
      await to.table(name).upsertEntity(data as { partitionKey: string; rowKey: string }, 'Replace');
    }
  }
}

describe('reads from the read-access secondary when the primary is lost', () => {
  beforeAll(async () => {
    primary = await startAzurite();
    secondary = await startAzurite();
    s = await createServices(
      parseConfig({
        AzureWebJobsStorage: primary.connectionString,
        LABVAULT_STORAGE_SECONDARY: secondary.connectionString,
        LABVAULT_ENVIRONMENT: 'test',
        LABVAULT_DATA_DIR: mkdtempSync(join(tmpdir(), 'labvault-geo-')),
      }),
      { logger: createLogger(() => undefined) },
    );
    await s.tenants.create('lab-geo', 'Geo Lab', { actor: operatorActor, correlationId: 'setup' });
    await s.users.create('lab-geo', { username: 'reader', email: 'r@geo.example' }, ['self'], meta);
    for (let i = 0; i < 3; i++) await s.orders.create('lab-geo', exampleOrder({ externalId: `GEO-${i}` }), meta);
    await s.auditAnchors.anchor('lab-geo');
    await replicate();
  });

  afterAll(async () => {
    await primary?.stop();
    await secondary?.stop();
  });

  it('serves reads from the primary while it is up', async () => {
    expect((await s.users.list('lab-geo')).map((u) => u.username)).toEqual(['reader']);
    expect(await checkStorageHealth(s.storage)).toEqual({ status: 'ok', storage: 'ok', readEndpoint: 'primary' });
  });

  it('falls back to the secondary for reads once the primary stops, and never for writes', async () => {
    await primary.stop();
    expect((await s.users.list('lab-geo')).map((u) => u.username)).toEqual(['reader']);
    expect(s.storage.readEndpoint.lastRead).toBe('secondary');
    const entries = [];
    for await (const e of s.audit.list('lab-geo')) entries.push(e.event);
    expect(entries).toEqual(expect.arrayContaining(['tenant.create', 'user.create', 'order.create']));
    // Verified against its write-once anchors, which geo-replication carried to the secondary too.
    expect(await s.audit.verify('lab-geo')).toMatchObject({ valid: true, anchors: { lines: 1 } });
    expect(await checkStorageHealth(s.storage)).toEqual({
      status: 'degraded',
      storage: 'ok',
      readEndpoint: 'secondary',
    });
    // Writes go to the primary only: they fail rather than land on a replica.
    await expect(s.orders.create('lab-geo', exampleOrder({ externalId: 'GEO-NEW' }), meta)).rejects.toThrow();
    // Reading patient data needs its audit entry written first: it fails closed.
    const anyOrder = (await s.orders.list('lab-geo', { limit: 1 }, meta).catch(() => ({ items: [] }))).items;
    expect(anyOrder).toEqual([]);
    // The secondary holds the rows: a direct look finds the orders.
    let orders = 0;
    const direct = createStorageClients({ kind: 'connectionString', connectionString: secondary.connectionString });
    for await (const row of direct.table('tenantdata').listEntities({
      queryOptions: { filter: "PartitionKey ge 'lab-geo~orders~' and PartitionKey lt 'lab-geo~orders~~'" },
    })) {
      if (String(row.rowKey).startsWith('order~')) orders++;
    }
    expect(orders).toBe(3);
  });
});
