import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantKeyring } from '../../lib/crypto/keyring.js';
import type { LocalSecretStore } from '../../lib/crypto/secret-store.js';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';
import { createStorageClients } from '../../lib/storage/clients.js';
import { useAzurite } from '../support/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

const azurite = useAzurite();
let target: AzuriteInstance;
let s: TestServices;
const meta = { actor: { type: 'integration' as const, id: 'lis' }, correlationId: 'backup-test' };

async function rows(connectionString: string, table: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of createStorageClients({ kind: 'connectionString', connectionString })
    .table(table)
    .listEntities<Record<string, unknown>>()) {
    const { etag: _e, timestamp: _t, ...data } = e as Record<string, unknown>;
    out.push(JSON.stringify(Object.fromEntries(Object.entries(data).sort(([a], [b]) => a.localeCompare(b)))));
  }
  return out.sort();
}

/** Restores a backup into a fresh, empty Azurite and hands `use` services over it (the same key store). */
async function withRestored(backupId: string, use: (restored: TestServices) => Promise<void>): Promise<void> {
  const empty = await startAzurite();
  try {
    await s.backups.restore(
      backupId,
      createStorageClients({ kind: 'connectionString', connectionString: empty.connectionString }),
    );
    await use(await testServices(empty.connectionString, undefined, s.config.dataDir));
  } finally {
    await empty.stop();
  }
}

/** A backup of every table, as the nightly orchestration takes it: its id. */
async function backupEverything(): Promise<string> {
  const backupId = s.backups.newBackupId();
  const parts = [];
  for (const table of await s.backups.tables()) parts.push(await s.backups.backupTable(backupId, table));
  await s.backups.writeManifest(backupId, parts);
  return backupId;
}

/** One patient's orders in the tenant, one per external id: their ids. */
async function patientOrders(tenant: string, patientId: string, externalIds: string[]): Promise<string[]> {
  const base = exampleOrder();
  const ids: string[] = [];
  for (const externalId of externalIds)
    ids.push(
      (await s.orders.create(tenant, { ...base, externalId, patient: { ...base.patient, id: patientId } }, meta)).order
        .id,
    );
  return ids;
}

/** The patient's erasure, requested and confirmed by two admins, begun once its window passed (a moved clock). */
async function begunErasure(tenant: string, patientId: string): Promise<{ id: string; clocked: TestServices }> {
  let now = new Date();
  const clocked = await testServices(azurite.connectionString, () => now, s.config.dataDir);
  const requested = await clocked.subjects.requestErasure(tenant, patientId, 'admin-1', meta);
  await clocked.subjects.confirmErasure(tenant, requested.id, 'admin-2', meta);
  now = new Date(now.getTime() + 2 * 24 * 3600 * 1000);
  expect(await clocked.subjects.beginErasure(tenant, requested.id, meta)).toEqual({ proceed: true });
  return { id: requested.id, clocked };
}

describe('table backups and restore', () => {
  beforeAll(async () => {
    target = await startAzurite();
    s = await testServices(azurite.connectionString);
    for (const tenant of ['lab-bk1', 'lab-bk2']) {
      await s.tenants.create(tenant, tenant, { actor: operatorActor, correlationId: 'setup' });
      for (let i = 0; i < 40; i++) await s.orders.create(tenant, exampleOrder({ externalId: `BK-${i}` }), meta);
      await s.users.create(tenant, { username: 'someone', email: 's@x.example' }, ['self'], meta);
    }
  });

  afterAll(async () => {
    await target?.stop();
  });

  it('backs up every table encrypted and checksummed, restores every entity into an empty account, and the audit chains verify', async () => {
    const backupId = s.backups.newBackupId();
    const tables = await s.backups.tables();
    expect(tables).toEqual(expect.arrayContaining(['tenantdata', 'platform']));
    const started = performance.now();
    const parts = [];
    for (const table of tables) parts.push(await s.backups.backupTable(backupId, table));
    const manifest = await s.backups.writeManifest(backupId, parts);
    const backupSeconds = (performance.now() - started) / 1000;
    const entities = manifest.tables.reduce((n, t) => n + t.entities, 0);
    expect(entities).toBeGreaterThan(200);

    const stored = await s.storage.blobService
      .getContainerClient('backups')
      .getBlobClient(`${backupId}/tenantdata.ndjson.enc`)
      .downloadToBuffer();
    expect(stored.subarray(0, 4).toString()).toBe('LVC1');
    expect(stored.includes(Buffer.from('order~'))).toBe(false);

    const restoreStarted = performance.now();
    const result = await s.backups.restore(
      backupId,
      createStorageClients({ kind: 'connectionString', connectionString: target.connectionString }),
    );
    const restoreSeconds = (performance.now() - restoreStarted) / 1000;
    expect(result.tables.every((t) => t.verified)).toBe(true);
    for (const table of tables)
      expect(await rows(target.connectionString, table)).toEqual(await rows(azurite.connectionString, table));
    process.stdout.write(
      `backup ${Math.round(entities / backupSeconds)} entities/s, restore ${Math.round(entities / restoreSeconds)} entities/s (${entities} entities)\n`,
    );

    // The restored account works with the same keys: the chains verify and the data decrypts.
    const restored = await testServices(target.connectionString, undefined, s.config.dataDir);
    expect((await restored.audit.verify('lab-bk1')).valid).toBe(true);
    expect((await restored.audit.verify('lab-bk2')).valid).toBe(true);
    const page = await restored.orders.list('lab-bk1', { limit: 5 }, meta);
    expect(page.items.map((o) => o.patient.lastName)).toEqual(Array(5).fill('Mustermann'));
    await expect(
      s.backups.restore(
        backupId,
        createStorageClients({ kind: 'connectionString', connectionString: target.connectionString }),
      ),
    ).rejects.toMatchObject({ kind: 'conflict' });
  });

  it('keeps each completed erasure once beside the backups, for a restore of an older backup to apply again', async () => {
    const backupId = s.backups.newBackupId();
    await s.backups.writeManifest(backupId, [await s.backups.backupTable(backupId, 'platform')]);
    const record = {
      tenant: 'lab-bk1',
      requestId: 'a'.repeat(24),
      outcome: 'completed' as const,
      orderIds: ['o1', 'o2'],
      erasedAt: new Date().toISOString(),
    };
    await s.backups.recordErasure(record);
    // A repeated certificate step writes again: the first record stands, nothing fails.
    await s.backups.recordErasure({ ...record, orderIds: [], erasedAt: new Date(Date.now() + 1000).toISOString() });
    expect(await s.backups.erasuresToReapply(backupId)).toEqual([record]);
    // Encrypted like the backups beside it: nothing of the record is readable in storage.
    const stored = await s.storage.blobService
      .getContainerClient('backups')
      .getBlobClient(`erasures/lab-bk1/${record.requestId}.json.enc`)
      .downloadToBuffer();
    expect(stored.subarray(0, 4).toString()).toBe('LVC1');
    expect(stored.includes(Buffer.from('"orderIds"'))).toBe(false);
    // Nothing from before the backup's day; the listing of backups is not confused by the records.
    await s.backups.recordErasure({ ...record, requestId: 'b'.repeat(24), erasedAt: '2020-01-01T00:00:00.000Z' });
    expect((await s.backups.erasuresToReapply(backupId)).map((r) => r.requestId)).toEqual([record.requestId]);
    expect((await s.backups.list()).map((b) => b.backupId)).toContain(backupId);
    // The TOM report counts them per tenant.
    expect(await s.backups.erasuresRecorded('lab-bk1')).toBe(2);
    expect(await s.backups.erasuresRecorded('lab-bk2')).toBe(0);
    await expect(s.backups.erasuresToReapply('20990101-none')).rejects.toMatchObject({ kind: 'not-found' });
  });

  it('gives a restored account the erasure a backup caught running: orders gone, request completed, export lock free', async () => {
    const ids = await patientOrders('lab-bk2', 'BK-ERASED', ['ER-1', 'ER-2']);
    const { id: requestId, clocked } = await begunErasure('lab-bk2', 'BK-ERASED');
    // The nightly backup runs now: the request erasing, the tenant's export lock held, the orders there.
    const backupId = await backupEverything();
    const { orderIds, ...facts } = await clocked.subjects.erase('lab-bk2', requestId, meta);
    const verification = await clocked.subjects.verifyErasure('lab-bk2', requestId, orderIds);
    const live = await clocked.subjects.certifyErasure('lab-bk2', requestId, facts, verification, meta);

    await withRestored(backupId, async (restored) => {
      expect((await restored.subjects.get('lab-bk2', requestId)).status).toBe('erasing'); // as the backup caught it
      const reapplied = await restored.subjects.reapplyErasures(await s.backups.erasuresToReapply(backupId), meta);
      expect(reapplied).toMatchObject({ orders: 2 });
      for (const id of ids) await expect(restored.orders.get('lab-bk2', id, meta)).rejects.toThrow();
      expect(await restored.subjects.get('lab-bk2', requestId)).toEqual(live);
      // The lock the backup caught is free: the tenant exports in the restored account.
      expect((await restored.exports.request('lab-bk2', 'ndjson', 'request', 'admin-1', meta)).status).toBe('pending');
      expect((await restored.audit.verify('lab-bk2')).valid).toBe(true);
    });
  });

  it('gives a restored account the erasure whose run failed after deleting: its orders stay gone, the request failed, to be run again', async () => {
    const ids = await patientOrders('lab-bk1', 'BK-FAILED', ['EF-1', 'EF-2']);
    // The nightly backup holds the orders; the request comes after it.
    const backupId = await backupEverything();
    const completedBefore = await s.backups.erasuresRecorded('lab-bk1');
    const { id: requestId, clocked } = await begunErasure('lab-bk1', 'BK-FAILED');
    // The run deletes the orders, then storage fails past every retry before the certificate.
    await clocked.subjects.erase('lab-bk1', requestId, meta);
    const failed = await clocked.subjects.failErasure('lab-bk1', requestId, meta);
    expect(failed.status).toBe('failed');
    // A failed run is not a completed erasure: the TOM report's count stays.
    expect(await s.backups.erasuresRecorded('lab-bk1')).toBe(completedBefore);

    await withRestored(backupId, async (restored) => {
      await expect(restored.subjects.get('lab-bk1', requestId)).rejects.toMatchObject({ kind: 'not-found' });
      const records = await s.backups.erasuresToReapply(backupId);
      const record = records.find((r) => r.requestId === requestId);
      expect(record?.outcome).toBe('failed');
      expect(record?.orderIds.toSorted()).toEqual(ids.toSorted());
      await restored.subjects.reapplyErasures(records, meta);
      for (const id of ids) await expect(restored.orders.get('lab-bk1', id, meta)).rejects.toThrow();
      expect(await restored.subjects.get('lab-bk1', requestId)).toEqual(failed);
      // In the restored account it is run again as in the live one.
      expect((await restored.subjects.retryErasure('lab-bk1', requestId, 'admin-3', meta)).status).toBe('erasing');
      expect((await restored.audit.verify('lab-bk1')).valid).toBe(true);
    });
  });

  it('refuses a tampered backup', async () => {
    const backupId = s.backups.newBackupId();
    const part = await s.backups.backupTable(backupId, 'platform');
    await s.backups.writeManifest(backupId, [
      { ...part, entities: part.entities, sha256: part.sha256, encryptedSha256: '0'.repeat(64) },
    ]);
    const empty = await startAzurite();
    try {
      await expect(
        s.backups.restore(
          backupId,
          createStorageClients({ kind: 'connectionString', connectionString: empty.connectionString }),
        ),
      ).rejects.toMatchObject({ kind: 'conflict' });
    } finally {
      await empty.stop();
    }
  });

  it('keeps a crypto-shredded tenant unreadable in an old backup', async () => {
    const backupId = await backupEverything();
    const orderId = (await s.orders.list('lab-bk2', { limit: 1 }, meta)).items[0]?.id ?? '';
    // Crypto-shred lab-bk2: every version of its keys is destroyed.
    const store = s.secrets as LocalSecretStore;
    await store.remove(TenantKeyring.secretName('lab-bk2', 'data'));
    await store.remove(TenantKeyring.secretName('lab-bk2', 'pseudonym'));
    // A fresh process over the restored account, with the (shredded) key store.
    await withRestored(backupId, async (restored) => {
      await expect(restored.orders.get('lab-bk2', orderId, meta)).rejects.toThrow();
      // The other tenant still reads fine.
      expect((await restored.orders.list('lab-bk1', { limit: 1 }, meta)).items[0]?.patient.lastName).toBe('Mustermann');
    });
  });
});
