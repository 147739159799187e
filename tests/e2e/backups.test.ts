import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let empty: AzuriteInstance;

describe('the backup orchestration and the restore drill of the admin CLI', () => {
  beforeAll(async () => {
    host = await startHost();
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
});
