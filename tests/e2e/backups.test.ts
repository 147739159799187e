import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { BlobServiceClient } from '@azure/storage-blob';
import { call, person } from '../support/api.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';
import { testServices } from '../support/services.js';

let host: RunningHost;
let empty: AzuriteInstance;
const OPERATOR_PASSWORD = 'first-start-operator-password-77';
const ERASED_PATIENT = 'DRILL-ERASED-1';

/** Runs the backup orchestration under `instanceId` and waits for its end. */
async function backUp(
  instanceId: string,
  backupId: string,
): Promise<{ runtimeStatus: string; output: { tables: number; entities: number } }> {
  const started = await fetch(host.durableUrl(`orchestrators/tableBackup/${instanceId}`), {
    method: 'POST',
    body: JSON.stringify({ backupId }),
  });
  expect(started.status).toBe(202);
  let status = { runtimeStatus: 'Pending', output: { tables: 0, entities: 0 } };
  for (let i = 0; i < 300 && status.runtimeStatus !== 'Completed' && status.runtimeStatus !== 'Failed'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = (await (await fetch(host.durableUrl(`instances/${instanceId}`))).json()) as typeof status;
  }
  expect(status.runtimeStatus).toBe('Completed');
  return status;
}

describe('the backup orchestration and the restore drill of the admin CLI', () => {
  beforeAll(async () => {
    host = await startHost({ env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD } });
    empty = await startAzurite();
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-drill', '--name', 'Drill']);
    const key = String(
      admin(host.dataDir, [
        'integration',
        'create',
        '--tenant',
        'lab-drill',
        '--name',
        'x',
        '--permissions',
        'orders:create',
      ]).json?.apiKey,
    );
    for (let i = 0; i < 13; i++) {
      const patient = i < 10 ? exampleOrder().patient : { ...exampleOrder().patient, id: ERASED_PATIENT };
      const created = await fetch(`${host.apiBaseUrl}/orders`, {
        method: 'POST',
        headers: { authorization: `ApiKey ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(exampleOrder({ externalId: `DR-${i}`, patient })),
      });
      expect(created.status).toBe(201);
    }
  });

  afterAll(async () => {
    await host?.kill();
    await empty?.stop();
  });

  it('backs up every table through the durable orchestration and restores it into an empty account with verified checksums', async () => {
    const backupId = '20261127-drill';
    const status = await backUp('backup-drill', backupId);
    const restored = admin(host.dataDir, ['backup', 'restore', backupId, '--target', empty.connectionString]);
    expect(restored.status).toBe(0);
    const tables = (restored.json?.tables ?? []) as { table: string; entities: number; verified: boolean }[];
    expect(tables.length).toBe(status.output.tables);
    expect(tables.every((t) => t.verified)).toBe(true);
    expect(tables.find((t) => t.table === 'tenantdata')?.entities).toBeGreaterThan(30);
  });

  it("applies again, in the restored account, a patient's erasure completed after the backup was taken", async () => {
    const backupId = `${new Date().toISOString().slice(0, 10).replaceAll('-', '')}-before-erasure`;
    await backUp('backup-before-erasure', backupId);
    // The erasure after the backup, through the product's services on the host's storage (the
    // window passed on a moved clock); its certificate step records it beside the backups.
    let now = new Date();
    const services = await testServices(host.storageConnectionString, () => now, host.dataDir);
    const meta = { actor: { type: 'system' as const, id: 'backup-test' }, correlationId: 'backup-test' };
    const requested = await services.subjects.requestErasure('lab-drill', ERASED_PATIENT, 'admin-a', meta);
    await services.subjects.confirmErasure('lab-drill', requested.id, 'admin-b', meta);
    now = new Date(now.getTime() + 2 * 24 * 3600 * 1000);
    expect(await services.subjects.beginErasure('lab-drill', requested.id, meta)).toEqual({ proceed: true });
    const { orderIds, ...facts } = await services.subjects.erase('lab-drill', requested.id, meta);
    expect(facts.orders).toBe(3);
    const verification = await services.subjects.verifyErasure('lab-drill', requested.id, orderIds);
    await services.subjects.certifyErasure('lab-drill', requested.id, facts, verification, meta);

    const target = await startAzurite();
    try {
      const restored = admin(host.dataDir, ['backup', 'restore', backupId, '--target', target.connectionString]);
      expect(restored.status, restored.stderr).toBe(0);
      expect(restored.json?.erasuresReapplied).toEqual({ erasures: 1, orders: 3, images: 0 });
      const inTarget = await testServices(target.connectionString, undefined, host.dataDir);
      // The erased patient's orders are gone again; every other order is back; the chains verify.
      for (const id of orderIds) await expect(inTarget.orders.get('lab-drill', id, meta)).rejects.toThrow();
      const others = await inTarget.orders.list('lab-drill', { limit: 50 }, meta);
      expect(others.items).toHaveLength(10);
      expect(others.items.every((o) => o.patient.id !== ERASED_PATIENT)).toBe(true);
      expect((await inTarget.audit.verify('lab-drill')).valid).toBe(true);
      // The request, made after the backup, is back in the restored log as it ended, with its certificate.
      const live = await services.subjects.get('lab-drill', requested.id);
      expect(await inTarget.subjects.get('lab-drill', requested.id)).toEqual(live);
      expect(live).toMatchObject({ status: 'completed', certificate: { jws: expect.any(String) } });
      // Restoring twice applies nothing twice: a second empty account gets the same.
      const again = await startAzurite();
      try {
        const second = admin(host.dataDir, ['backup', 'restore', backupId, '--target', again.connectionString]);
        expect(second.json?.erasuresReapplied).toEqual({ erasures: 1, orders: 3, images: 0 });
      } finally {
        await again.stop();
      }
    } finally {
      await target.stop();
    }
  });

  it('runs a restore drill over HTTP that reads every table back, and finds a table changed in storage', async () => {
    const operator = await person(host, 'operator', 'operator', OPERATOR_PASSWORD);
    const started = await call(host, 'POST', '/backups', operator);
    expect(started.status).toBe(202);
    const backupId = String(started.body.backupId);
    let listed: { backupId: string; entities: number; lastDrill: unknown }[] = [];
    for (let i = 0; i < 300 && !listed.some((b) => b.backupId === backupId); i++) {
      await new Promise((r) => setTimeout(r, 100));
      listed = (await call(host, 'GET', '/backups', operator)).body.items as typeof listed;
    }
    const entry = listed.find((b) => b.backupId === backupId);
    expect(entry?.lastDrill).toBeNull();

    const drill = await call(host, 'POST', `/backups/${backupId}/restore-drills`, operator);
    expect(drill.status).toBe(200);
    expect(drill.body).toMatchObject({ backupId, kind: 'verification', passed: true });
    const tables = drill.body.tables as { table: string; entities: number; verified: boolean }[];
    expect(tables.reduce((n, t) => n + t.entities, 0)).toBe(entry?.entities);

    // Someone with storage access rewrites one table's backup: the next drill says which and why.
    const container = BlobServiceClient.fromConnectionString(host.storageConnectionString).getContainerClient(
      'backups',
    );
    const blob = container.getBlockBlobClient(`${backupId}/tenantdata.ndjson.enc`);
    const original = await blob.downloadToBuffer();
    const tampered = Buffer.from(original);
    tampered[tampered.length - 20] = (tampered[tampered.length - 20] ?? 0) ^ 0xff;
    await blob.uploadData(tampered);
    const second = await call(host, 'POST', `/backups/${backupId}/restore-drills`, operator);
    expect(second.status).toBe(200);
    expect(second.body.passed).toBe(false);
    const broken = (second.body.tables as { table: string; verified: boolean; reason?: string }[]).find(
      (t) => t.table === 'tenantdata',
    );
    expect(broken).toMatchObject({ verified: false, reason: 'The backup of tenantdata does not match its checksum.' });
    const after = (await call(host, 'GET', '/backups', operator)).body.items as {
      backupId: string;
      lastDrill: { passed: boolean; kind: string } | null;
    }[];
    expect(after.find((b) => b.backupId === backupId)?.lastDrill).toMatchObject({
      passed: false,
      kind: 'verification',
    });

    expect((await call(host, 'POST', '/backups/20990101-none/restore-drills', operator)).status).toBe(404);
  });
});
