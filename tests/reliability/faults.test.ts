import { createHash } from 'node:crypto';
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { exampleOrder } from '../support/fixtures.js';
import { photoJpeg, plainPng } from '../support/images.js';
import { adminAsync, type RunningHost, startHost } from '../support/local-host.js';
import { unzip } from '../support/zip.js';
import { callJson, httpCall, type JsonReply, pool, recordFigures, seededRandom, until } from './support.js';

// This process serves the fault proxy: nothing here may block (spawnSync would stall every storage call).

/** Faults injected into this share of LabVault's storage requests while a workflow runs (intake: the high end). */
const FAULT_RATE = Number(process.env.LABVAULT_FAULT_RATE ?? 0.1);
const INTAKE_FAULT_RATE = Number(process.env.LABVAULT_INTAKE_FAULT_RATE ?? 0.2);
const OPERATOR_PASSWORD = 'faults-first-start-password-42';
const STRONG = 'a quiet meadow under autumn rain';

let azurite: AzuriteInstance;
let proxy: FaultProxy;
let host: RunningHost;
let operator: string;
const clientOutcomes = { requests: 0, answered503: 0, otherErrors: [] as string[] };
const figures: Record<string, unknown> = {};
/** Workflows under faults take longer: wait up to 3 minutes, polling every 250 ms. */
const SLOW = { timeoutMs: 180_000, intervalMs: 250 };

/**
 * A client of LabVault under storage faults: every answer must be a success or a retryable 503
 * problem; 503s are retried with the same request (and Idempotency-Key), as the contract says.
 */
async function call(
  method: string,
  path: string,
  auth: string,
  body?: unknown,
  headers?: Record<string, string>,
): Promise<JsonReply> {
  for (let attempt = 1; ; attempt++) {
    clientOutcomes.requests++;
    const reply = await callJson(host.apiBaseUrl, method, path, auth, body, headers);
    if (reply.status === 503) {
      clientOutcomes.answered503++;
      expect(String(reply.headers['content-type'])).toContain('application/problem+json');
      if (attempt >= 40) throw new Error(`${method} ${path}: still 503 after ${attempt} attempts`);
      await new Promise((r) => setTimeout(r, 50 * Math.min(attempt, 10)));
      continue;
    }
    if (reply.status >= 500)
      clientOutcomes.otherErrors.push(`${method} ${path} -> ${reply.status} ${reply.text.slice(0, 200)}`);
    return reply;
  }
}

/** Runs `work` with faults injected, and records what the proxy did meanwhile. */
async function underFaults<T>(scenario: string, work: () => Promise<T>, rate = FAULT_RATE): Promise<T> {
  clientOutcomes.otherErrors.length = 0; // each scenario answers for its own calls
  const before = proxy.stats();
  const answered503 = clientOutcomes.answered503;
  proxy.set({ rate });
  try {
    return await work();
  } finally {
    proxy.set({ rate: 0 });
    const after = proxy.stats();
    figures[scenario] = {
      faultRate: rate,
      storageRequests: after.requests - before.requests,
      faultsInjected: Object.fromEntries(
        Object.entries(after.faults).map(([k, v]) => [k, v - before.faults[k as keyof typeof before.faults]]),
      ),
      answered503: clientOutcomes.answered503 - answered503,
    };
  }
}

/** The host's error log lines, to say why a call failed. */
const hostErrors = (): string =>
  host
    .output()
    .split('\n')
    .filter((l) => l.includes('"level":"error"'))
    .slice(-5)
    .join('\n');

const admins = new Map<string, string>();
/** The tenant's first admin, logged in (its one-time password changed on first use). */
async function tenantAdmin(tenant: string): Promise<string> {
  return login(tenant, 'admin', admins.get(tenant) ?? '');
}

async function login(tenant: string, username: string, initial: string): Promise<string> {
  const first = await call('POST', '/auth/login', '', { tenant, username, password: initial });
  await call('POST', '/auth/password', `Bearer ${String(first.json.accessToken)}`, {
    currentPassword: initial,
    newPassword: STRONG,
  });
  return `Bearer ${String((await call('POST', '/auth/login', '', { tenant, username, password: STRONG })).json.accessToken)}`;
}

/** Straight to Azurite, past the proxy: what is really stored. */
const direct = {
  table: (name: string) =>
    TableClient.fromConnectionString(azurite.connectionString, name, { allowInsecureConnection: true }),
  blobs: () => BlobServiceClient.fromConnectionString(azurite.connectionString),
};

async function newTenant(id: string, permissions: string): Promise<string> {
  const created = await adminAsync(host.dataDir, [
    'tenant',
    'create',
    '--id',
    id,
    '--name',
    id,
    '--admin-username',
    'admin',
    '--admin-email',
    `admin@${id}.example`,
  ]);
  admins.set(id, String((created.json?.admin as { initialPassword: string } | undefined)?.initialPassword));
  return `ApiKey ${String((await adminAsync(host.dataDir, ['integration', 'create', '--tenant', id, '--name', 'lis', '--permissions', permissions])).json?.apiKey)}`;
}

describe(`storage faults (${INTAKE_FAULT_RATE * 100}% of requests during intake, ${FAULT_RATE * 100}% otherwise: 503, 500, resets, lost responses, timeouts, slow answers)`, () => {
  beforeAll(async () => {
    azurite = await startAzurite();
    proxy = await startFaultProxy(azurite.ports, seededRandom(Number(process.env.LABVAULT_FAULT_SEED ?? 7)));
    host = await startHost({
      env: {
        AzureWebJobsStorage: proxy.connectionString,
        LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD,
        LABVAULT_DURABLE_LEASE_SECONDS: '3',
      },
    });
    operator = await login('operator', 'operator', OPERATOR_PASSWORD);
  });

  afterAll(async () => {
    await host?.kill();
    await proxy?.close();
    await azurite?.stop();
    recordFigures('faults', {
      ...figures,
      clients: { requests: clientOutcomes.requests, answered503: clientOutcomes.answered503 },
    });
  });

  it('intake: every order is stored once with its audit entry, the chain verifies, and no answer is a 5xx other than 503', async () => {
    const key = await newTenant('lab-faults', 'orders:create,orders:read,audit:read');
    const count = 600;
    const ids = await underFaults(
      'intake',
      () =>
        pool(count, 16, async (i) => {
          const reply = await call('POST', '/orders', key, exampleOrder({ externalId: `F-${i}` }), {
            'idempotency-key': `faults-${i}`,
          });
          expect(reply.status, reply.text).toBe(201);
          return String(reply.json.id);
        }),
      INTAKE_FAULT_RATE,
    );
    expect(new Set(ids).size).toBe(count);
    const orders = new Set<string>();
    const created = new Map<string, number>();
    for await (const row of direct.table('tenantdata').listEntities<{ event?: string; entityId?: string }>({
      queryOptions: { filter: "PartitionKey ge 'lab-faults~orders~' and PartitionKey lt 'lab-faults~orders~~'" },
    })) {
      if (row.rowKey?.startsWith('order~')) orders.add(row.rowKey.slice('order~'.length));
      if (row.event === 'order.create' && row.entityId) created.set(row.entityId, (created.get(row.entityId) ?? 0) + 1);
    }
    expect(orders).toEqual(new Set(ids));
    expect([...created.keys()].sort()).toEqual([...ids].sort());
    expect([...created.values()].every((n) => n === 1)).toBe(true);
    const verify = await call('GET', '/audit/verify', key);
    expect(verify.json).toMatchObject({ valid: true });
    expect(clientOutcomes.otherErrors, hostErrors()).toEqual([]);
  });

  it('images: every upload ends ready with its bytes stored, or rejected; none is left half-processed', async () => {
    const key = await newTenant('lab-faults-img', 'orders:create,images:upload,images:read');
    const jpeg = await photoJpeg(1600, 1200);
    const png = await plainPng();
    const uploads = [
      ...Array.from({ length: 10 }, () => ({ bytes: jpeg, type: 'image/jpeg' })),
      ...Array.from({ length: 4 }, () => ({ bytes: png, type: 'image/png' })),
      { bytes: Buffer.from('not an image at all'), type: 'image/jpeg' },
    ];
    const records = await underFaults('images', async () => {
      const started = await pool(uploads.length, 4, async (i) => {
        const order = await call('POST', '/orders', key, exampleOrder({ externalId: `FI-${i}` }), {
          'idempotency-key': `faults-img-${i}`,
        });
        const orderId = String(order.json.id);
        const upload = await call('POST', `/orders/${orderId}/specimens/S-0001/images`, key, {
          contentType: uploads[i]?.type,
          fileName: 'x',
        });
        expect(upload.status, upload.text).toBe(201);
        // The upload goes from the client to storage through the same faulty path: retried until stored.
        for (let attempt = 1; ; attempt++) {
          const put = await fetch(String(upload.json.uploadUrl), {
            method: 'PUT',
            headers: { 'x-ms-blob-type': 'BlockBlob' },
            body: uploads[i]?.bytes,
          }).catch(() => undefined);
          if (put?.status === 201) break;
          if (attempt > 20) throw new Error('upload never stored');
        }
        return { orderId, imageId: String(upload.json.imageId) };
      });
      return pool(started.length, 4, async (i) => {
        const { orderId, imageId } = started[i] ?? { orderId: '', imageId: '' };
        const list = await until(
          `image ${i}`,
          () => call('GET', `/orders/${orderId}/specimens/S-0001/images`, key),
          (r) => ((r.json.items as { status: string }[] | undefined) ?? []).some((x) => x.status !== 'pending'),
          SLOW,
        );
        return {
          orderId,
          record: ((list.json.items as Record<string, unknown>[]) ?? []).find((x) => x.imageId === imageId) ?? {},
        };
      });
    });
    expect(records.filter((r) => r.record.status === 'ready')).toHaveLength(14);
    expect(records.filter((r) => r.record.status === 'rejected').map((r) => r.record.reason)).toEqual([
      'unsupported-type',
    ]);
    for (const { orderId, record } of records.filter((r) => r.record.status === 'ready')) {
      const image = await httpCall(
        `${host.apiBaseUrl}/orders/${orderId}/specimens/S-0001/images/${String(record.imageId)}`,
        { headers: { authorization: key } },
      );
      expect(image.status).toBe(200);
      const bytes = image.body;
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(record.sha256);
      expect((await sharp(bytes).metadata()).width).toBeGreaterThan(0);
    }
    expect(clientOutcomes.otherErrors, hostErrors()).toEqual([]);
  });

  it('export: the orchestration completes and every file of the archive matches the manifest', async () => {
    const key = await newTenant('lab-faults-exp', 'orders:create,exports:start');
    await pool(200, 8, (i) =>
      call('POST', '/orders', key, exampleOrder({ externalId: `FE-${i}` }), { 'idempotency-key': `faults-exp-${i}` }),
    );
    const status = await underFaults('export', async () => {
      const started = await call('POST', '/exports', key, { format: 'ndjson' });
      expect(started.status, started.text).toBe(202);
      return until(
        'export',
        () => call('GET', `/exports/${String(started.json.id)}`, key),
        (r) => r.json.status === 'completed' || r.json.status === 'failed',
        SLOW,
      );
    });
    expect(status.json.status).toBe('completed');
    const download = status.json.download as { url: string; sha256: string };
    const zip = Buffer.from(await (await fetch(download.url)).arrayBuffer());
    expect(createHash('sha256').update(zip).digest('hex')).toBe(download.sha256);
    const files = await unzip(zip);
    const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? '{}') as {
      counts: Record<string, number>;
      files: { path: string; sha256: string; bytes: number }[];
    };
    for (const f of manifest.files)
      expect(
        createHash('sha256')
          .update(files.get(f.path) ?? Buffer.alloc(0))
          .digest('hex'),
        f.path,
      ).toBe(f.sha256);
    expect(manifest.counts.order).toBe(200);
    expect(clientOutcomes.otherErrors, hostErrors()).toEqual([]);
  });

  it('deletion: the tenant is deleted completely, with a certificate whose verification passed', async () => {
    const key = await newTenant('lab-faults-del', 'orders:create,images:upload');
    await pool(100, 8, (i) =>
      call('POST', '/orders', key, exampleOrder({ externalId: `FD-${i}` }), { 'idempotency-key': `faults-del-${i}` }),
    );
    const created = await call('POST', '/users', await tenantAdmin('lab-faults-del'), {
      username: 'deciding.admin',
      email: 'd@lab.example',
      roles: ['tenant-admin'],
    });
    const decider = await login('lab-faults-del', 'deciding.admin', String(created.json.initialPassword));
    const state = await underFaults('deletion', async () => {
      const terminated = await call('POST', '/tenants/lab-faults-del/termination', operator, {
        contractEndsAt: '2020-01-01T00:00:00Z',
      });
      expect(terminated.status, terminated.text).toBe(202);
      // The contract ended long ago, yet only the tenant's own admin can bring the deletion forward.
      const confirmed = await call('POST', '/tenants/lab-faults-del/deletion/confirmation', decider, {
        currentPassword: STRONG,
      });
      expect(confirmed.status, confirmed.text).toBe(202);
      return until(
        'deletion',
        () => call('GET', '/tenants/lab-faults-del/deletion', operator),
        (r) => r.json.status === 'completed',
        SLOW,
      );
    });
    const certificate = (state.json.certificate as { certificate: Record<string, unknown> }).certificate;
    expect(certificate).toMatchObject({ verification: { passed: true, remainingRows: 0, remainingBlobs: 0 } });
    let rows = 0;
    for await (const t of TableServiceClient.fromConnectionString(azurite.connectionString, {
      allowInsecureConnection: true,
    }).listTables()) {
      for await (const r of direct.table(t.name ?? '').listEntities())
        if (String(r.partitionKey).startsWith('lab-faults-del~')) rows++;
    }
    expect(rows).toBe(0);
    expect(clientOutcomes.otherErrors, hostErrors()).toEqual([]);
  });

  it('backup: the orchestration completes and the backup restores into an empty account with verified checksums', async () => {
    const output = await underFaults('backup', async () => {
      const started = await fetch(host.durableUrl(`orchestrators/tableBackup/backup-faults`), {
        method: 'POST',
        body: JSON.stringify({ backupId: '20261127-faults' }),
      });
      expect(started.status).toBe(202);
      return until(
        'backup',
        async () =>
          (await (await fetch(host.durableUrl(`instances/backup-faults`))).json()) as {
            runtimeStatus: string;
            output?: { tables: number; entities: number };
          },
        (s) => s.runtimeStatus === 'Completed' || s.runtimeStatus === 'Failed',
        SLOW,
      );
    });
    expect(output.runtimeStatus).toBe('Completed');
    const empty = await startAzurite();
    try {
      const restored = await adminAsync(host.dataDir, [
        'backup',
        'restore',
        '20261127-faults',
        '--target',
        empty.connectionString,
      ]);
      expect(restored.status, restored.stderr).toBe(0);
      const tables = (restored.json?.tables ?? []) as { table: string; entities: number; verified: boolean }[];
      expect(tables.length).toBe(output.output?.tables);
      expect(tables.every((t) => t.verified)).toBe(true);
      expect(tables.reduce((n, t) => n + t.entities, 0)).toBe(output.output?.entities);
    } finally {
      await empty.stop();
    }
  });
});
