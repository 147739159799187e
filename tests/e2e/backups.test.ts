import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { BlobServiceClient } from '@azure/storage-blob';
import { call, person } from '../support/api.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let empty: AzuriteInstance;
const OPERATOR_PASSWORD = 'first-start-operator-password-77';

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
    for (let i = 0; i < 10; i++) {
      await fetch(`${host.apiBaseUrl}/orders`, {
        method: 'POST',
        headers: { authorization: `ApiKey ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(exampleOrder({ externalId: `DR-${i}` })),
      });
    }
  });

  afterAll(async () => {
    await host?.kill();
    await empty?.stop();
  });

  it('backs up every table through the durable orchestration and restores it into an empty account with verified checksums', async () => {
    const backupId = '20261127-drill';
    const started = await fetch(host.durableUrl(`orchestrators/tableBackup/backup-drill`), {
      method: 'POST',
      body: JSON.stringify({ backupId }),
    });
    expect(started.status).toBe(202);
    let status: { runtimeStatus: string; output: { tables: number; entities: number } } = {
      runtimeStatus: 'Pending',
      output: { tables: 0, entities: 0 },
    };
    for (let i = 0; i < 200 && status.runtimeStatus !== 'Completed' && status.runtimeStatus !== 'Failed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await (await fetch(host.durableUrl(`instances/backup-drill`))).json()) as typeof status;
    }
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output.entities).toBeGreaterThan(30);
    const restored = admin(host.dataDir, ['backup', 'restore', backupId, '--target', empty.connectionString]);
    expect(restored.status).toBe(0);
    const tables = (restored.json?.tables ?? []) as { table: string; entities: number; verified: boolean }[];
    expect(tables.length).toBe(status.output.tables);
    expect(tables.every((t) => t.verified)).toBe(true);
    expect(tables.find((t) => t.table === 'tenantdata')?.entities).toBeGreaterThan(30);
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
