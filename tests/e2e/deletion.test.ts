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
const YEAR = 365 * 24 * 3600 * 1000;


const call = (method: string, path: string, auth: string, body?: unknown) => api(host, method, path, auth, body);
const person = (tenant: string, username: string, initial: string) => login(host, tenant, username, initial);

/** A tenant with an admin, an integration key, orders and an image. */
async function seed(tenant: string, orders = 3): Promise<{ adminAuth: string; key: string }> {
  const created = await call('POST', '/tenants', operator, { id: tenant, name: tenant, admin: { username: 'admin', email: `a@${tenant}.example` } });
  const adminAuth = await person(tenant, 'admin', String((created.body.admin as { initialPassword: string }).initialPassword));
  const key = `ApiKey ${String((await call('POST', '/integrations', adminAuth, { name: 'LIS', permissions: ['orders:create', 'orders:read', 'images:upload'] })).body.apiKey)}`;
  let first = '';
  for (let i = 0; i < orders; i++) {
    const o = await call('POST', '/orders', key, exampleOrder({ externalId: `${tenant}-${i}` }));
    first ||= String(o.body.id);
  }
  const u = await call('POST', `/orders/${first}/specimens/S-0001/images`, key, { contentType: 'image/png', fileName: 'x.png' });
  await fetch(String(u.body.uploadUrl), { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: await plainPng() });
  return { adminAuth, key };
}

async function deletionOf(tenant: string, until: (s: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown>> {
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
  const service = (await import('@azure/data-tables')).TableServiceClient.fromConnectionString(host.storageConnectionString, { allowInsecureConnection: true });
  for await (const t of service.listTables()) tables.push(t.name ?? '');
  for (const name of tables) {
    for await (const r of TableClient.fromConnectionString(host.storageConnectionString, name, { allowInsecureConnection: true }).listEntities()) {
      if (String(r.partitionKey).startsWith(`${tenant}~`)) rows++;
    }
  }
  const blobService = BlobServiceClient.fromConnectionString(host.storageConnectionString);
  for await (const c of blobService.listContainers()) for await (const _ of blobService.getContainerClient(c.name).listBlobsFlat({ prefix: `${tenant}/` })) blobs++;
  return { rows, blobs };
}

describe('timed deletion at contract end, over HTTP', () => {
  beforeAll(async () => {
    host = await startHost({ env });
    operator = await person('operator', 'operator', env.LABVAULT_OPERATOR_INITIAL_PASSWORD);
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('deletes a tenant whose contract ended long ago at once, with the notice, a signed certificate, an empty scan and dead credentials', async () => {
    const { key } = await seed('lab-end');
    await seed('lab-keep', 1);
    const terminated = await call('POST', '/tenants/lab-end/termination', operator, { contractEndsAt: new Date(Date.now() - YEAR).toISOString() });
    expect(terminated.status).toBe(202);
    const done = await deletionOf('lab-end', (s) => s.status === 'completed');
    const { certificate, jws } = done.certificate as { certificate: Record<string, unknown>; jws: string };
    expect(certificate).toMatchObject({ tenant: 'lab-end', verification: { passed: true, remainingRows: 0, remainingBlobs: 0 } });
    expect((certificate.keysDestroyed as unknown[]).length).toBe(2);
    const jwks = createLocalJWKSet((await call('GET', '/deletion-certificates/keys', '')).body as never);
    expect(JSON.parse(new TextDecoder().decode((await compactVerify(jws, jwks)).payload))).toEqual(certificate);
    expect(await leftovers('lab-end')).toEqual({ rows: 0, blobs: 0 });
    expect((await call('POST', '/auth/login', '', { tenant: 'lab-end', username: 'admin', password: STRONG })).status).toBe(401);
    expect((await call('GET', '/orders', key)).status).toBe(401);
    // The notice went out first, without waiting.
    const root = host.apiBaseUrl.replace(/\/api$/, '');
    const history = await (await fetch(`${root}/runtime/webhooks/durabletask/instances/deletion-lab-end?showHistory=true`)).text();
    expect(history).toContain('deletionNotice');
    expect((await call('GET', '/orders?limit=5', (await seedKey('lab-keep')) ?? '')).status).toBe(200);
  });

  it('waits while a legal hold stands and deletes once it is lifted', async () => {
    await seed('lab-hold', 1);
    expect((await call('POST', '/tenants/lab-hold/legal-hold', operator)).status).toBe(204);
    await call('POST', '/tenants/lab-hold/termination', operator, { contractEndsAt: new Date(Date.now() - YEAR).toISOString() });
    await new Promise((r) => setTimeout(r, 2500));
    expect((await call('GET', '/tenants/lab-hold/deletion', operator)).body).toMatchObject({ status: 'on-hold', legalHold: true });
    expect((await leftovers('lab-hold')).rows).toBeGreaterThan(0);
    expect((await call('DELETE', '/tenants/lab-hold/legal-hold', operator)).status).toBe(204);
    await deletionOf('lab-hold', (s) => s.status === 'completed');
    expect(await leftovers('lab-hold')).toEqual({ rows: 0, blobs: 0 });
  });

  it('starts one retention run per tenant and day: a second sweep is refused', async () => {
    const root = host.apiBaseUrl.replace(/\/api$/, '');
    const id = `retention-lab-keep-${new Date().toISOString().slice(0, 10)}`;
    const body = JSON.stringify({ tenant: 'lab-keep', asOf: new Date().toISOString() });
    const first = await fetch(`${root}/runtime/webhooks/durabletask/orchestrators/retentionRun/${id}`, { method: 'POST', body });
    expect(first.status).toBe(202);
    const second = await fetch(`${root}/runtime/webhooks/durabletask/orchestrators/retentionRun/${id}`, { method: 'POST', body });
    expect([409, 202]).toContain(second.status); // 202 only when the first had finished already
  });

  it('completes a deletion after kill -9 of the host mid-way', async () => {
    await seed('lab-crash', 40);
    await call('POST', '/tenants/lab-crash/termination', operator, { contractEndsAt: new Date(Date.now() - YEAR).toISOString() });
    await new Promise((r) => setTimeout(r, 300));
    const dataDir = host.dataDir;
    await host.kill('SIGKILL');
    host = await startHost({ dataDir, env });
    operator = `Bearer ${String((await call('POST', '/auth/login', '', { tenant: 'operator', username: 'operator', password: STRONG })).body.accessToken)}`;
    const done = await deletionOf('lab-crash', (s) => s.status === 'completed', 90_000);
    expect((done.certificate as { certificate: { verification: { passed: boolean } } }).certificate.verification.passed).toBe(true);
    expect(await leftovers('lab-crash')).toEqual({ rows: 0, blobs: 0 });
  });
});

const keys = new Map<string, string>();
async function seedKey(tenant: string): Promise<string | undefined> {
  if (keys.has(tenant)) return keys.get(tenant);
  const key = admin(host.dataDir, ['integration', 'create', '--tenant', tenant, '--name', 'probe', '--permissions', 'orders:read']).json?.apiKey;
  const value = key ? `ApiKey ${String(key)}` : undefined;
  if (value) keys.set(tenant, value);
  return value;
}
