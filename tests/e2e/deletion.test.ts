import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { compactVerify, createLocalJWKSet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { plainPng } from '../support/images.js';
import { call as api, person as login, STRONG } from '../support/api.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

const env = { LABVAULT_OPERATOR_INITIAL_PASSWORD: 'first-start-only-password-42', LABVAULT_DURABLE_LEASE_SECONDS: '3' };
let host: RunningHost;
let operator: string;
let secondOperator: string;
const DAY = 24 * 3600 * 1000;
const YEAR = 365 * DAY;

const call = (method: string, path: string, auth: string, body?: unknown) => api(host, method, path, auth, body);
const person = (tenant: string, username: string, initial: string) => login(host, tenant, username, initial);

/** A tenant with an admin, an integration key, orders and an image. */
async function seed(tenant: string, orders = 3): Promise<{ adminAuth: string; key: string }> {
  const created = await call('POST', '/tenants', operator, {
    id: tenant,
    name: tenant,
    admin: { username: 'admin', email: `a@${tenant}.example` },
  });
  const adminAuth = await person(
    tenant,
    'admin',
    String((created.body.admin as { initialPassword: string }).initialPassword),
  );
  const key = `ApiKey ${String((await call('POST', '/integrations', adminAuth, { name: 'LIS', permissions: ['orders:create', 'orders:read', 'images:upload'], currentPassword: STRONG })).body.apiKey)}`;
  let first = '';
  for (let i = 0; i < orders; i++) {
    const o = await call('POST', '/orders', key, exampleOrder({ externalId: `${tenant}-${i}` }));
    first ||= String(o.body.id);
  }
  const u = await call('POST', `/orders/${first}/specimens/S-0001/images`, key, {
    contentType: 'image/png',
    fileName: 'x.png',
  });
  await fetch(String(u.body.uploadUrl), {
    method: 'PUT',
    headers: { 'x-ms-blob-type': 'BlockBlob' },
    body: await plainPng(),
  });
  return { adminAuth, key };
}

async function deletionOf(
  tenant: string,
  until: (s: Record<string, unknown>) => boolean,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = (await call('GET', `/tenants/${tenant}/deletion`, operator)).body;
    if (until(state)) return state;
    if (Date.now() > deadline) throw new Error(`deletion of ${tenant}: ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function leftovers(tenant: string): Promise<{ rows: number; blobs: number }> {
  let rows = 0;
  let blobs = 0;
  const tables = [];
  const service = (await import('@azure/data-tables')).TableServiceClient.fromConnectionString(
    host.storageConnectionString,
    { allowInsecureConnection: true },
  );
  for await (const t of service.listTables()) tables.push(t.name ?? '');
  for (const name of tables) {
    for await (const r of TableClient.fromConnectionString(host.storageConnectionString, name, {
      allowInsecureConnection: true,
    }).listEntities()) {
      if (String(r.partitionKey).startsWith(`${tenant}~`)) rows++;
    }
  }
  const blobService = BlobServiceClient.fromConnectionString(host.storageConnectionString);
  for await (const c of blobService.listContainers())
    for await (const _ of blobService.getContainerClient(c.name).listBlobsFlat({ prefix: `${tenant}/` })) blobs++;
  return { rows, blobs };
}

const pastContractEnd = () => ({ contractEndsAt: new Date(Date.now() - YEAR).toISOString() });

describe('termination and deletion at contract end, over HTTP', () => {
  beforeAll(async () => {
    host = await startHost({ env });
    operator = await person('operator', 'operator', env.LABVAULT_OPERATOR_INITIAL_PASSWORD);
    const second = await call('POST', '/operators', operator, {
      username: 'ops.second',
      email: 'second@vendor.example',
      roles: ['operator'],
    });
    secondOperator = await person('operator', 'ops.second', String(second.body.initialPassword));
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('never deletes earlier than the notice period, however far in the past the contract ended; the tenant is told at once and can export', async () => {
    const { adminAuth } = await seed('lab-notice', 1);
    const before = Date.now();
    const terminated = await call('POST', '/tenants/lab-notice/termination', operator, pastContractEnd());
    expect(terminated.status).toBe(202);
    const deleteAt = Date.parse(String(terminated.body.deleteAt));
    expect(deleteAt).toBe(Date.parse(String(terminated.body.noticeEndsAt)));
    expect(deleteAt).toBeGreaterThanOrEqual(before + 30 * DAY - 1000);
    // The notice is there the moment the termination is recorded.
    const notices = (await call('GET', '/notices', adminAuth)).body.items as { kind: string; text: string }[];
    expect(notices.map((n) => n.kind)).toEqual(['scheduled']);
    expect(notices[0]?.text).toContain(new Date(deleteAt).toISOString());
    await new Promise((r) => setTimeout(r, 1500));
    expect((await call('GET', '/tenants/lab-notice/deletion', operator)).body).toMatchObject({ status: 'scheduled' });
    expect((await leftovers('lab-notice')).rows).toBeGreaterThan(0);
    // The export window is open.
    expect((await call('POST', '/exports', adminAuth, { format: 'ndjson', currentPassword: STRONG })).status).toBe(202);
    // A second termination cannot move the date.
    expect((await call('POST', '/tenants/lab-notice/termination', operator, pastContractEnd())).status).toBe(409);
  });

  it('lets only the tenant’s own admin, with the password, confirm early deletion; then it runs at once and is certified', async () => {
    const { adminAuth, key } = await seed('lab-end');
    await seed('lab-keep', 1);
    const keepAdmin = await call('POST', '/auth/login', '', {
      tenant: 'lab-keep',
      username: 'admin',
      password: STRONG,
    });
    const otherAdmin = `Bearer ${String(keepAdmin.body.accessToken)}`;
    expect((await call('POST', '/tenants/lab-end/termination', operator, pastContractEnd())).status).toBe(202);
    const confirmation = '/tenants/lab-end/deletion/confirmation';
    // The operator alone cannot shorten the window, with or without a staff grant.
    expect((await call('POST', confirmation, operator, { currentPassword: STRONG })).status).toBe(404);
    const request = await call('POST', '/access-requests', operator, {
      tenant: 'lab-end',
      reason: 'help with the export',
      minutes: 30,
      permissions: ['retention:manage'],
    });
    await call('POST', `/access-requests/${String(request.body.id)}/approval`, adminAuth, { approve: true });
    const withGrant = await api(host, 'POST', confirmation, operator, { currentPassword: STRONG });
    expect(withGrant.status).toBe(404);
    const grantCall = await fetch(`${host.apiBaseUrl}${confirmation}`, {
      method: 'POST',
      headers: { authorization: operator, 'x-labvault-tenant': 'lab-end', 'content-type': 'application/json' },
      body: JSON.stringify({ currentPassword: STRONG }),
    });
    expect(grantCall.status).toBe(404);
    // Another tenant's admin, an admin without the password, or with a wrong one: refused.
    expect((await call('POST', confirmation, otherAdmin, { currentPassword: STRONG })).status).toBe(404);
    expect((await call('POST', confirmation, adminAuth, {})).status).toBe(400);
    expect((await call('POST', confirmation, adminAuth, { currentPassword: 'not the password at all' })).status).toBe(
      403,
    );
    // A user with retention:manage who is not a tenant admin: refused.
    await call('PUT', '/roles/retention-keeper', adminAuth, { permissions: ['retention:manage', 'profile:read'] });
    const keeper = await call('POST', '/users', adminAuth, {
      username: 'keeper',
      email: 'k@lab-end.example',
      roles: ['retention-keeper'],
    });
    const keeperAuth = await person('lab-end', 'keeper', String(keeper.body.initialPassword));
    expect((await call('POST', confirmation, keeperAuth, { currentPassword: STRONG })).status).toBe(403);
    expect((await call('GET', '/tenants/lab-end/deletion', operator)).body.status).toBe('scheduled');

    const confirmed = await call('POST', confirmation, adminAuth, { currentPassword: STRONG });
    expect(confirmed.status).toBe(202);
    const done = await deletionOf('lab-end', (s) => s.status === 'completed');
    expect(done).toMatchObject({ confirmedAt: expect.any(String) });
    const { certificate, jws } = done.certificate as { certificate: Record<string, unknown>; jws: string };
    expect(certificate).toMatchObject({
      tenant: 'lab-end',
      verification: { passed: true, remainingRows: 0, remainingBlobs: 0 },
    });
    expect((certificate.keysDestroyed as unknown[]).length).toBe(2);
    const jwks = createLocalJWKSet((await call('GET', '/deletion-certificates/keys', '')).body as never);
    expect(JSON.parse(new TextDecoder().decode((await compactVerify(jws, jwks)).payload))).toEqual(certificate);
    expect(await leftovers('lab-end')).toEqual({ rows: 0, blobs: 0 });
    expect(
      (await call('POST', '/auth/login', '', { tenant: 'lab-end', username: 'admin', password: STRONG })).status,
    ).toBe(401);
    expect((await call('GET', '/orders', key)).status).toBe(401);
    expect((await call('GET', '/orders?limit=5', (await seedKey('lab-keep')) ?? '')).status).toBe(200);
    // Too late to withdraw a completed deletion.
    expect((await call('DELETE', '/tenants/lab-end/termination', operator)).status).toBe(409);
  });

  it('withdraws a termination before deletion starts: the orchestration ends, the tenant is told, nothing is deleted', async () => {
    const { adminAuth } = await seed('lab-stay', 2);
    expect((await call('POST', '/tenants/lab-stay/termination', operator, pastContractEnd())).status).toBe(202);
    const rowsBefore = (await leftovers('lab-stay')).rows;
    expect((await call('DELETE', '/tenants/lab-stay/termination', operator)).status).toBe(204);
    expect((await call('GET', '/tenants/lab-stay/deletion', operator)).body).toMatchObject({
      status: 'withdrawn',
      withdrawnAt: expect.any(String),
    });
    const notices = (await call('GET', '/notices', adminAuth)).body.items as { kind: string; text: string }[];
    expect(notices.map((n) => n.kind)).toEqual(['withdrawn']);
    expect(
      (await call('POST', '/tenants/lab-stay/deletion/confirmation', adminAuth, { currentPassword: STRONG })).status,
    ).toBe(409);
    expect((await call('DELETE', '/tenants/lab-stay/termination', operator)).status).toBe(404);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await leftovers('lab-stay')).rows).toBeGreaterThanOrEqual(rowsBefore);
    const audit = (await call('GET', '/audit?action=tenant.termination.withdrawn', adminAuth)).body.items as unknown[];
    expect(audit).toHaveLength(1);
    // A new termination after the withdrawal starts a fresh notice period.
    expect((await call('POST', '/tenants/lab-stay/termination', operator, pastContractEnd())).status).toBe(202);
    expect((await call('GET', '/tenants/lab-stay/deletion', operator)).body.status).toBe('scheduled');
  });

  it('holds deletion under a legal hold; lifting it needs a second operator, never the requester', async () => {
    const { adminAuth } = await seed('lab-hold', 1);
    expect((await call('POST', '/tenants/lab-hold/legal-hold', operator)).status).toBe(204);
    await call('POST', '/tenants/lab-hold/termination', operator, pastContractEnd());
    expect(
      (await call('POST', '/tenants/lab-hold/deletion/confirmation', adminAuth, { currentPassword: STRONG })).status,
    ).toBe(409);
    expect((await call('GET', '/tenants/lab-hold/deletion', operator)).body).toMatchObject({
      status: 'on-hold',
      legalHold: true,
    });
    const lifecycleOf = async (tenant: string) =>
      ((await call('GET', '/tenants', operator)).body.items as { id: string; lifecycle: unknown }[]).find(
        (t) => t.id === tenant,
      )?.lifecycle;
    expect(await lifecycleOf('lab-hold')).toMatchObject({
      status: 'on-hold',
      legalHold: true,
      deleteAt: expect.any(String),
    });
    // The tenant list is the vendor's: a tenant's own admin does not see the others.
    expect((await call('GET', '/tenants', adminAuth)).status).toBe(403);
    const lift = await call('DELETE', '/tenants/lab-hold/legal-hold?reason=court%20released%20the%20hold', operator);
    expect(lift.status).toBe(202);
    expect(lift.body).toMatchObject({ kind: 'legal-hold.lift', status: 'pending', target: 'lab-hold' });
    const approval = `/approvals/${String(lift.body.id)}/decision`;
    // The requester cannot approve; a tenant admin cannot either; the hold stands meanwhile.
    expect((await call('POST', approval, operator, { approve: true })).status).toBe(403);
    expect((await call('POST', approval, adminAuth, { approve: true })).status).toBe(403);
    expect((await call('GET', '/tenants/lab-hold/deletion', operator)).body).toMatchObject({ legalHold: true });
    const decided = await call('POST', approval, secondOperator, { approve: true });
    expect(decided.body).toMatchObject({ status: 'executed', decidedBy: expect.any(String) });
    expect((await call('POST', approval, secondOperator, { approve: true })).status).toBe(409);
    expect((await call('GET', '/tenants/lab-hold/deletion', operator)).body).toMatchObject({
      status: 'scheduled',
      legalHold: false,
    });
    // Still the notice period: only the tenant's admin brings it forward.
    expect(
      (await call('POST', '/tenants/lab-hold/deletion/confirmation', adminAuth, { currentPassword: STRONG })).status,
    ).toBe(202);
    await deletionOf('lab-hold', (s) => s.status === 'completed');
    expect(await leftovers('lab-hold')).toEqual({ rows: 0, blobs: 0 });
    expect(await lifecycleOf('lab-hold')).toMatchObject({ status: 'completed', legalHold: false });
  });

  it('applies raised retention bounds at once, and lowered ones only with a second operator', async () => {
    await seed('lab-bounds', 1);
    const bounds = {
      minOrdersDays: 3650,
      maxOrdersDays: 36500,
      minImagesDays: 30,
      maxImagesDays: 36500,
      minAfterContractEndDays: 30,
      maxAfterContractEndDays: 3650,
    };
    expect((await call('PUT', '/tenants/lab-bounds/retention-bounds', operator, bounds)).status).toBe(200);
    const lowered = await call('PUT', '/tenants/lab-bounds/retention-bounds', operator, {
      ...bounds,
      minOrdersDays: 30,
    });
    expect(lowered.status).toBe(202);
    expect(
      (await call('POST', `/approvals/${String(lowered.body.id)}/decision`, secondOperator, { approve: false })).body,
    ).toMatchObject({ status: 'denied' });
    const again = await call('PUT', '/tenants/lab-bounds/retention-bounds', operator, { ...bounds, minOrdersDays: 30 });
    expect(
      (await call('POST', `/approvals/${String(again.body.id)}/decision`, secondOperator, { approve: true })).body,
    ).toMatchObject({ status: 'executed' });
    const pending = (await call('GET', '/approvals?status=executed', operator)).body.items as { id: string }[];
    expect(pending.map((a) => a.id)).toContain(String(again.body.id));
  });

  it('deletes a backup and purges an orchestration only with a second operator', async () => {
    const started = await call('POST', '/backups', operator);
    expect(started.status).toBe(202);
    const backupId = String(started.body.backupId);
    const deadline = Date.now() + 30_000;
    while (
      !((await call('GET', '/backups', operator)).body.items as { backupId: string }[]).some(
        (b) => b.backupId === backupId,
      )
    ) {
      if (Date.now() > deadline) throw new Error('backup did not finish');
      await new Promise((r) => setTimeout(r, 300));
    }
    const asked = await call('DELETE', `/backups/${backupId}`, operator);
    expect(asked.status).toBe(202);
    expect(
      ((await call('GET', '/backups', operator)).body.items as { backupId: string }[]).map((b) => b.backupId),
    ).toContain(backupId);
    expect(
      (await call('POST', `/approvals/${String(asked.body.id)}/decision`, operator, { approve: true })).status,
    ).toBe(403);
    expect(
      (await call('POST', `/approvals/${String(asked.body.id)}/decision`, secondOperator, { approve: true })).body,
    ).toMatchObject({ status: 'executed' });
    expect(
      ((await call('GET', '/backups', operator)).body.items as { backupId: string }[]).map((b) => b.backupId),
    ).not.toContain(backupId);

    const instance = `backup-${backupId}`;
    expect(
      (
        (await call('GET', '/orchestrations?runtimeStatus=Completed', operator)).body.items as { instanceId: string }[]
      ).map((o) => o.instanceId),
    ).toContain(instance);
    const purge = await call('DELETE', `/orchestrations/${instance}`, operator);
    expect(purge.status).toBe(202);
    expect(
      (await call('POST', `/approvals/${String(purge.body.id)}/decision`, secondOperator, { approve: true })).body,
    ).toMatchObject({ status: 'executed' });
    expect(
      ((await call('GET', '/orchestrations', operator)).body.items as { instanceId: string }[]).map(
        (o) => o.instanceId,
      ),
    ).not.toContain(instance);
  });

  it('starts one retention run per tenant and day: a second sweep is refused', async () => {
    const id = `retention-lab-keep-${new Date().toISOString().slice(0, 10)}`;
    const body = JSON.stringify({ tenant: 'lab-keep', asOf: new Date().toISOString() });
    const first = await fetch(host.durableUrl(`orchestrators/retentionRun/${id}`), { method: 'POST', body });
    expect(first.status).toBe(202);
    const second = await fetch(host.durableUrl(`orchestrators/retentionRun/${id}`), { method: 'POST', body });
    expect([409, 202]).toContain(second.status); // 202 only when the first had finished already
  });

  it('completes a deletion after kill -9 of the host mid-way', async () => {
    const { adminAuth } = await seed('lab-crash', 40);
    await call('POST', '/tenants/lab-crash/termination', operator, pastContractEnd());
    await call('POST', '/tenants/lab-crash/deletion/confirmation', adminAuth, { currentPassword: STRONG });
    await new Promise((r) => setTimeout(r, 300));
    const dataDir = host.dataDir;
    await host.kill('SIGKILL');
    host = await startHost({ dataDir, env });
    operator = `Bearer ${String((await call('POST', '/auth/login', '', { tenant: 'operator', username: 'operator', password: STRONG })).body.accessToken)}`;
    const done = await deletionOf('lab-crash', (s) => s.status === 'completed', 90_000);
    expect(
      (done.certificate as { certificate: { verification: { passed: boolean } } }).certificate.verification.passed,
    ).toBe(true);
    expect(await leftovers('lab-crash')).toEqual({ rows: 0, blobs: 0 });
  });
});

const keys = new Map<string, string>();
async function seedKey(tenant: string): Promise<string | undefined> {
  if (keys.has(tenant)) return keys.get(tenant);
  const key = admin(host.dataDir, [
    'integration',
    'create',
    '--tenant',
    tenant,
    '--name',
    'probe',
    '--permissions',
    'orders:read',
  ]).json?.apiKey;
  const value = key ? `ApiKey ${String(key)}` : undefined;
  if (value) keys.set(tenant, value);
  return value;
}
