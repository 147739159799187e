import { createHash } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite } from '../../local-host/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { photoJpeg } from '../support/images.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';
import { unzip } from '../support/zip.js';
import { callJson, pool, recordFigures, seededRandom, until } from './support.js';

const OPERATOR_PASSWORD = 'crashes-first-start-password-42';
const STRONG = 'a quiet meadow under autumn rain';
const KILLS_PER_WORKFLOW = Number(process.env.LABVAULT_KILLS ?? 3);
const SEED = Number(process.env.LABVAULT_CRASH_SEED ?? 11);
const HOURS = (seconds: number) => String(seconds / 3600);
const env = {
  LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD,
  LABVAULT_DURABLE_LEASE_SECONDS: '2',
  // The breach clocks in seconds (12 h, 24 h and 47 h on Azure), so a whole breach runs within the test.
  LABVAULT_BREACH_REMINDER_HOURS: `${HOURS(4)},${HOURS(8)}`,
  LABVAULT_BREACH_ESCALATION_HOURS: HOURS(12),
  LABVAULT_BREACH_PROCESSOR_DEADLINE_HOURS: HOURS(20),
  LABVAULT_BREACH_ANALYSIS_REMINDER_HOURS: HOURS(30),
};

let host: RunningHost;
let dataDir: string;
let operator: string;
const random = seededRandom(SEED);
const kills: { workflow: string; afterMs: number }[] = [];

const call = (method: string, path: string, auth: string, body?: unknown, headers?: Record<string, string>) =>
  callJson(host.apiBaseUrl, method, path, auth, body, headers);

/** kill -9 of the host at random moments while `workflow` runs, each time followed by a restart. */
async function crashRepeatedly(workflow: string): Promise<void> {
  for (let k = 0; k < KILLS_PER_WORKFLOW; k++) {
    const afterMs = Math.round(150 + random() * 1500);
    await new Promise((r) => setTimeout(r, afterMs));
    await host.kill('SIGKILL');
    kills.push({ workflow, afterMs });
    host = await startHost({ dataDir, env });
  }
}

const tenantAdmins = new Map<string, string>();

async function seedTenant(id: string, orders: number): Promise<string> {
  const created = admin(dataDir, [
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
  const initial = String((created.json?.admin as { initialPassword: string }).initialPassword);
  const first = await call('POST', '/auth/login', '', { tenant: id, username: 'admin', password: initial });
  await call('POST', '/auth/password', `Bearer ${String(first.json.accessToken)}`, {
    currentPassword: initial,
    newPassword: STRONG,
  });
  tenantAdmins.set(
    id,
    `Bearer ${String((await call('POST', '/auth/login', '', { tenant: id, username: 'admin', password: STRONG })).json.accessToken)}`,
  );
  const key = `ApiKey ${String(admin(dataDir, ['integration', 'create', '--tenant', id, '--name', 'lis', '--permissions', 'orders:create,images:upload,images:read,exports:start']).json?.apiKey)}`;
  await pool(orders, 8, async (i) => {
    const reply = await call(
      'POST',
      '/orders',
      key,
      exampleOrder({ externalId: `C-${i}`, patient: { ...exampleOrder().patient, id: `CP-${i}` } }),
    );
    expect(reply.status).toBe(201);
  });
  return key;
}

async function exportOf(key: string, disturbed: boolean): Promise<Map<string, Buffer>> {
  const started = await call('POST', '/exports', key, { format: 'ndjson' });
  expect(started.status, started.text).toBe(202);
  if (disturbed) await crashRepeatedly('export');
  const status = await until(
    'export',
    () => call('GET', `/exports/${String(started.json.id)}`, key),
    (r) => r.json.status === 'completed' || r.json.status === 'failed',
  );
  expect(status.json.status).toBe('completed');
  const download = status.json.download as { url: string; sha256: string };
  const zip = Buffer.from(await (await fetch(download.url)).arrayBuffer());
  expect(createHash('sha256').update(zip).digest('hex')).toBe(download.sha256);
  return unzip(zip);
}

/** The archive's business content, without what differs between two tenants by design (ids, times). */
function exportContent(files: Map<string, Buffer>): { counts: Record<string, number>; orders: unknown[] } {
  const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? '{}') as {
    counts: Record<string, number>;
    files: { path: string; sha256: string }[];
  };
  for (const f of manifest.files)
    expect(
      createHash('sha256')
        .update(files.get(f.path) ?? Buffer.alloc(0))
        .digest('hex'),
      f.path,
    ).toBe(f.sha256);
  const orders = [...files.entries()]
    .filter(([name]) => name.startsWith('orders/orders-'))
    .flatMap(([, data]) =>
      data
        .toString()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    )
    .map(({ id: _id, createdAt: _c, updatedAt: _u, ...rest }) => rest)
    .sort((a, b) => String(a.externalId).localeCompare(String(b.externalId)));
  const { 'audit-entry': _audit, user: _user, integration: _integration, ...counts } = manifest.counts;
  return { counts, orders };
}

async function deletionOf(tenant: string, disturbed: boolean): Promise<Record<string, unknown>> {
  const terminated = await call('POST', `/tenants/${tenant}/termination`, operator, {
    contractEndsAt: '2020-01-01T00:00:00Z',
  });
  expect(terminated.status, terminated.text).toBe(202);
  // Only the tenant's admin brings deletion forward from the end of the notice period.
  const confirmed = await call('POST', `/tenants/${tenant}/deletion/confirmation`, tenantAdmins.get(tenant) ?? '', {
    currentPassword: STRONG,
  });
  expect(confirmed.status, confirmed.text).toBe(202);
  if (disturbed) await crashRepeatedly('deletion');
  const state = await until(
    'deletion',
    () => call('GET', `/tenants/${tenant}/deletion`, operator),
    (r) => r.json.status === 'completed',
  );
  return (state.json.certificate as { certificate: Record<string, unknown> }).certificate;
}

describe(`crashes: kill -9 of the local host ${KILLS_PER_WORKFLOW} times at random moments of each workflow`, () => {
  beforeAll(async () => {
    host = await startHost({ env });
    dataDir = host.dataDir;
    const first = await call('POST', '/auth/login', '', {
      tenant: 'operator',
      username: 'operator',
      password: OPERATOR_PASSWORD,
    });
    await call('POST', '/auth/password', `Bearer ${String(first.json.accessToken)}`, {
      currentPassword: OPERATOR_PASSWORD,
      newPassword: STRONG,
    });
    operator = `Bearer ${String((await call('POST', '/auth/login', '', { tenant: 'operator', username: 'operator', password: STRONG })).json.accessToken)}`;
  });

  afterAll(async () => {
    await host?.kill();
    recordFigures('crashes', {
      seed: SEED,
      killsPerWorkflow: KILLS_PER_WORKFLOW,
      kills: kills.length,
      killedAfterMs: kills,
    });
  });

  it('export: the archive after crashes holds what an undisturbed export of the same data holds', async () => {
    const [keyA, keyB] = [await seedTenant('crash-exp-a', 300), await seedTenant('crash-exp-b', 300)];
    const undisturbed = exportContent(await exportOf(keyA, false));
    const disturbed = exportContent(await exportOf(keyB, true));
    expect(disturbed.counts).toEqual(undisturbed.counts);
    expect(disturbed.orders).toEqual(undisturbed.orders);
    expect(disturbed.orders).toHaveLength(300);
  });

  it('images: every upload ends ready, with the same bytes as without crashes', async () => {
    const key = await seedTenant('crash-img', 0);
    const jpeg = await photoJpeg(2400, 1800);
    const upload = async (i: number) => {
      const order = await call('POST', '/orders', key, exampleOrder({ externalId: `CI-${i}` }));
      const orderId = String(order.json.id);
      const u = await call('POST', `/orders/${orderId}/specimens/S-0001/images`, key, {
        contentType: 'image/jpeg',
        fileName: 'x.jpg',
      });
      const put = await fetch(String(u.json.uploadUrl), {
        method: 'PUT',
        headers: { 'x-ms-blob-type': 'BlockBlob' },
        body: jpeg,
      });
      expect(put.status).toBe(201);
      return { orderId, imageId: String(u.json.imageId) };
    };
    const ready = async ({ orderId }: { orderId: string }) => {
      const list = await until(
        'image',
        () => call('GET', `/orders/${orderId}/specimens/S-0001/images`, key),
        (r) => ((r.json.items as { status: string }[] | undefined) ?? []).some((x) => x.status !== 'pending'),
      );
      return ((list.json.items as Record<string, unknown>[] | undefined) ?? [])[0] ?? {};
    };
    const reference = await ready(await upload(0));
    expect(reference.status).toBe('ready');
    const uploads = await pool(12, 4, (i) => upload(i + 1));
    await crashRepeatedly('images');
    const records = await pool(uploads.length, 4, (i) => ready(uploads[i] ?? { orderId: '' }));
    expect(records.map((r) => r.status)).toEqual(uploads.map(() => 'ready'));
    expect(new Set(records.map((r) => r.sha256))).toEqual(new Set([reference.sha256]));
  });

  it('deletion: the certificate after crashes counts what an undisturbed deletion of the same data counts, and nothing is left', async () => {
    await seedTenant('crash-del-a', 150);
    await seedTenant('crash-del-b', 150);
    const undisturbed = await deletionOf('crash-del-a', false);
    const disturbed = await deletionOf('crash-del-b', true);
    expect(disturbed.verification).toMatchObject({ passed: true, remainingRows: 0, remainingBlobs: 0 });
    const { audit: auditA, ...rowsA } = (undisturbed.deleted as { rowsByKind: Record<string, number> }).rowsByKind;
    const { audit: auditB, ...rowsB } = (disturbed.deleted as { rowsByKind: Record<string, number> }).rowsByKind;
    expect(rowsB).toEqual(rowsA);
    // A step cut off by a kill may audit its attempt again; it never loses an entry.
    expect(auditB ?? 0).toBeGreaterThanOrEqual(auditA ?? 0);
    expect((disturbed.keysDestroyed as unknown[]).length).toBe((undisturbed.keysDestroyed as unknown[]).length);
  });

  it('backup: completes across crashes and restores the tenant rows it saw', async () => {
    const key = await seedTenant('crash-bak', 200);
    expect(key).toMatch(/^ApiKey /);
    const started = await fetch(host.durableUrl(`orchestrators/tableBackup/backup-crash`), {
      method: 'POST',
      body: JSON.stringify({ backupId: '20261127-crash' }),
    });
    expect(started.status).toBe(202);
    await crashRepeatedly('backup');
    const status = await until(
      'backup',
      async () =>
        (await (await fetch(host.durableUrl(`instances/backup-crash`))).json()) as {
          runtimeStatus: string;
          output?: { tables: number; entities: number };
        },
      (s) => s.runtimeStatus === 'Completed' || s.runtimeStatus === 'Failed',
    );
    expect(status.runtimeStatus).toBe('Completed');
    const empty = await startAzurite();
    try {
      const restored = admin(dataDir, ['backup', 'restore', '20261127-crash', '--target', empty.connectionString]);
      expect(restored.status, restored.stderr).toBe(0);
      expect(((restored.json?.tables ?? []) as { verified: boolean }[]).every((t) => t.verified)).toBe(true);
      const keysOf = async (connectionString: string) => {
        const keys: string[] = [];
        const filter = "PartitionKey ge 'crash-bak~' and PartitionKey lt 'crash-bak~~'";
        for await (const r of TableClient.fromConnectionString(connectionString, 'tenantdata', {
          allowInsecureConnection: true,
        }).listEntities({ queryOptions: { filter, select: ['PartitionKey', 'RowKey'] } }))
          keys.push(`${String(r.partitionKey)}|${String(r.rowKey)}`);
        return keys.sort();
      };
      // The tenant did not change after seeding, so the copy holds exactly its rows.
      expect(await keysOf(empty.connectionString)).toEqual(await keysOf(host.storageConnectionString));
    } finally {
      await empty.stop();
    }
  });
  it('breach: every affected tenant is notified once, reminded twice and escalated once, as without crashes', async () => {
    const admins: Record<string, string> = {};
    for (const tenant of ['crash-br-a', 'crash-br-b']) {
      const created = admin(dataDir, [
        'tenant',
        'create',
        '--id',
        tenant,
        '--name',
        tenant,
        '--admin-username',
        'admin',
        '--admin-email',
        `a@${tenant}.example`,
      ]);
      const initial = String((created.json?.admin as { initialPassword: string }).initialPassword);
      const first = await call('POST', '/auth/login', '', { tenant, username: 'admin', password: initial });
      await call('POST', '/auth/password', `Bearer ${String(first.json.accessToken)}`, {
        currentPassword: initial,
        newPassword: STRONG,
      });
      admins[tenant] =
        `Bearer ${String((await call('POST', '/auth/login', '', { tenant, username: 'admin', password: STRONG })).json.accessToken)}`;
    }
    const reported = await call('POST', '/breaches', operator, {
      detectedAt: new Date().toISOString(),
      description: 'Backup share reachable from the internet',
      tenants: ['crash-br-a', 'crash-br-b'],
      nature: ['confidentiality'],
      dataCategories: ['health data'],
      likelyConsequences: 'Possible disclosure of lab orders',
      measures: 'Share closed',
      keysExposed: false,
    });
    expect(reported.status, reported.text).toBe(202);
    const id = String(reported.json.id);
    await crashRepeatedly('breach');
    const breach = await until(
      'breach escalation',
      async () => (await call('GET', `/breaches/${id}`, operator)).json,
      (b) =>
        ((b.timeline as { event: string }[] | undefined) ?? []).filter((e) => e.event === 'escalation').length >= 2,
      { timeoutMs: 90_000 },
    );
    await new Promise((r) => setTimeout(r, 3000)); // a duplicate would show by now
    const timeline =
      ((await call('GET', `/breaches/${id}`, operator)).json.timeline as
        { event: string; tenant?: string }[] | undefined) ?? (breach.timeline as { event: string; tenant?: string }[]);
    for (const tenant of ['crash-br-a', 'crash-br-b']) {
      const events = timeline.filter((e) => e.tenant === tenant).map((e) => e.event);
      expect({
        tenant,
        notified: events.filter((e) => e === 'notified').length,
        reminders: events.filter((e) => e === 'reminder').length,
        escalations: events.filter((e) => e === 'escalation').length,
      }).toEqual({ tenant, notified: 1, reminders: 2, escalations: 1 });
      const notices = (
        (await call('GET', '/breach-notifications', admins[tenant] ?? '')).json.items as {
          breachId: string;
          sequence: number;
          reminders: number;
        }[]
      ).filter((n) => n.breachId === id);
      expect(notices.map((n) => ({ sequence: n.sequence, reminders: n.reminders }))).toEqual([
        { sequence: 1, reminders: 2 },
      ]);
    }
  });
});
