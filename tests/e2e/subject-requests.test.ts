import { createHash } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call as callHost, person, type Reply, STRONG, tenantWithAdmin } from '../support/api.js';
import { exampleOrder } from '../support/fixtures.js';
import { jpegWithMetadata } from '../support/images.js';
import { type RunningHost, startHost } from '../support/local-host.js';
import { testServices } from '../support/services.js';
import { unzip } from '../support/zip.js';

// Data subjects' requests over HTTP on a tenant with many patients: the inventory, an access
// export of one subject, restriction, erasure confirmed by a second person after its window (with
// a signed certificate), and refusals under a declared duty to keep records and a legal hold.
const TENANT = 'lab-dsr';
const OPERATOR_PASSWORD = 'operator first password for the subject tests';
const SUBJECT = 'SUBJ-0001'; // erased
const RESTRICTED = 'SUBJ-0002';
const CANCELLED = 'SUBJ-0003';
const HELD = 'SUBJ-0004';
const FAILED = 'SUBJ-0007'; // erased after its erasure failed once
/** What a person sends to confirm an erasure or run it again: their password (every person's is STRONG). */
const CONFIRMED = { currentPassword: STRONG };
const OTHERS = Array.from({ length: 30 }, (_, i) => `PAT-${String(i).padStart(4, '0')}`);

let host: RunningHost;
let requester: string; // the tenant admin who takes the requests
let second: string; // a second admin, who confirms erasures
let third: string; // a third admin (for the race of two confirmations)
let selfUser: string; // a new account: its own profile only
let lis: string; // the LIS integration
let operator: string;
const ordersOf = new Map<string, string[]>();
const call = (method: string, path: string, auth: string, body?: unknown): Promise<Reply> =>
  callHost(host, method, path, auth, body);

async function order(patientId: string, n: number, tenantKey = lis): Promise<string> {
  const created = await call(
    'POST',
    '/orders',
    tenantKey,
    exampleOrder({ externalId: `EXT-${patientId}-${n}`, patient: { ...exampleOrder().patient, id: patientId } }),
  );
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = String(created.body.id);
  ordersOf.set(patientId, [...(ordersOf.get(patientId) ?? []), id]);
  return id;
}

async function uploadImage(orderId: string): Promise<string> {
  const created = await call('POST', `/orders/${orderId}/specimens/S-0001/images`, lis, {
    contentType: 'image/jpeg',
    fileName: 'slide.jpg',
  });
  expect(created.status).toBe(201);
  await fetch(String(created.body.uploadUrl), {
    method: 'PUT',
    headers: { 'x-ms-blob-type': 'BlockBlob' },
    body: await jpegWithMetadata(),
  });
  for (let i = 0; i < 150; i++) {
    const list = await call('GET', `/orders/${orderId}/specimens/S-0001/images`, lis);
    const items = list.body.items as { id: string; status: string }[];
    if (items.length > 0 && items.every((x) => x.status === 'ready')) return String(created.body.imageId);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('image not processed');
}

/** A person of the tenant with these roles, signed in (the admin creates the account). */
async function newPerson(username: string, roles: string[]): Promise<string> {
  const user = await call('POST', '/users', requester, { username, email: `${username}@dsr.example`, roles });
  expect(user.status, JSON.stringify(user.body)).toBe(201);
  return person(host, TENANT, username, String(user.body.initialPassword));
}

async function waitFor(id: string, statuses: string[], timeoutMs = 40_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await call('GET', `/subject-requests/${id}`, requester);
    if (statuses.includes(String(got.body.status))) return got.body;
    if (Date.now() > deadline) throw new Error(`request ${id} stayed ${JSON.stringify(got.body)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Every domain row of the tenant's order partitions and every image blob: its ETag and the order it belongs to. */
async function snapshot(): Promise<Map<string, { etag: string; order: string }>> {
  const table = TableClient.fromConnectionString(host.storageConnectionString, 'tenantdata', {
    allowInsecureConnection: true,
  });
  const state = new Map<string, { etag: string; order: string }>();
  for await (const row of table.listEntities<Record<string, unknown>>({
    queryOptions: { filter: `PartitionKey ge '${TENANT}~orders~' and PartitionKey lt '${TENANT}~orders~~'` },
  })) {
    const key = String(row.rowKey);
    if (key.startsWith('audit~') || key.startsWith('head')) continue; // appended, never changed
    state.set(`${String(row.partitionKey)}/${key}`, {
      etag: String(row.etag),
      order: String(row.orderId ?? row.id ?? ''),
    });
  }
  const blobs = BlobServiceClient.fromConnectionString(host.storageConnectionString).getContainerClient(
    'specimen-images',
  );
  for await (const blob of blobs.listBlobsFlat({ prefix: `${TENANT}/` }))
    state.set(`blob/${blob.name}`, { etag: String(blob.properties.etag), order: blob.name.split('/')[1] ?? '' });
  return state;
}

describe('data subject requests over HTTP', () => {
  beforeAll(async () => {
    host = await startHost({
      env: { LABVAULT_SUBJECT_ERASURE_DELAY_SECONDS: '3', LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD },
    });
    requester = await tenantWithAdmin(host, TENANT, 'dsr.admin');
    second = await newPerson('dsr.second', ['tenant-admin']);
    third = await newPerson('dsr.third', ['tenant-admin']);
    selfUser = await newPerson('dsr.self', ['self']);
    const key = await call('POST', '/integrations', requester, {
      name: 'LIS',
      permissions: ['orders:create', 'orders:read', 'orders:update', 'images:upload', 'images:read'],
      currentPassword: STRONG,
    });
    lis = `ApiKey ${String(key.body.apiKey)}`;
    const first = await call('POST', '/auth/login', '', {
      tenant: 'operator',
      username: 'operator',
      password: OPERATOR_PASSWORD,
    });
    await call('POST', '/auth/password', `Bearer ${String(first.body.accessToken)}`, {
      currentPassword: OPERATOR_PASSWORD,
      newPassword: STRONG,
    });
    operator = `Bearer ${String((await call('POST', '/auth/login', '', { tenant: 'operator', username: 'operator', password: STRONG })).body.accessToken)}`;

    for (const patient of OTHERS) await order(patient, 1);
    for (let n = 1; n <= 3; n++) await order(SUBJECT, n);
    for (let n = 1; n <= 2; n++) await order(RESTRICTED, n);
    await order(CANCELLED, 1);
    await order(HELD, 1);
    await uploadImage(ordersOf.get(SUBJECT)![0]!);
    await uploadImage(ordersOf.get(OTHERS[0]!)![0]!);
  }, 180_000);

  afterAll(async () => {
    await host?.kill();
  });

  it('finds everything about one subject by pseudonym, and only for those allowed', async () => {
    const found = await call('POST', '/subject-requests/search', requester, { patientId: SUBJECT });
    expect(found.status, JSON.stringify(found.body)).toBe(200);
    const orders = found.body.orders as { id: string; restricted: boolean }[];
    expect(orders.map((o) => o.id).sort()).toEqual([...ordersOf.get(SUBJECT)!].sort());
    expect((found.body.images as unknown[]).length).toBe(1);
    const audit = found.body.auditEntries as { total: number; latest: { event: string }[] };
    expect(audit.total).toBeGreaterThanOrEqual(4); // three order.create, the image's entries
    expect(audit.latest.map((e) => e.event)).toContain('order.create');
    // References only: no name, birth date or identifier of the subject in the answer.
    for (const value of [SUBJECT, 'Erika', 'Mustermann', '1964-08-12'])
      expect(JSON.stringify(found.body)).not.toContain(value);

    const nobody = await call('POST', '/subject-requests/search', requester, { patientId: 'NOBODY-1' });
    expect(nobody.body).toMatchObject({ orders: [], images: [], auditEntries: { total: 0 } });
    // A new account, an integration, an operator without a grant: refused.
    expect((await call('POST', '/subject-requests/search', selfUser, { patientId: SUBJECT })).status).toBe(403);
    expect((await call('POST', '/subject-requests/search', lis, { patientId: SUBJECT })).status).toBe(403);
    expect([403, 404]).toContain(
      (await call('POST', '/subject-requests/search', operator, { patientId: SUBJECT })).status,
    );
    // The identifier goes in bodies, never in URLs; bad input is a 400 and records nothing.
    expect((await call('POST', '/subject-requests/search', requester, { patientId: '' })).status).toBe(400);
    expect((await call('POST', '/subject-requests', requester, { type: 'forget', patientId: SUBJECT })).status).toBe(
      400,
    );
  });

  it("exports exactly one subject's records, with a manifest and a checksum", async () => {
    const started = await call('POST', '/subject-requests', requester, {
      type: 'access',
      patientId: SUBJECT,
      format: 'ndjson',
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body).toMatchObject({ type: 'access', status: 'running' });
    const done = await waitFor(String(started.body.id), ['completed', 'failed'], 60_000);
    expect(done.status).toBe('completed');
    const exported = await call('GET', `/exports/${String(done.exportId)}`, requester);
    expect(exported.body).toMatchObject({ status: 'completed', purpose: 'subject-access' });
    const download = exported.body.download as { sha256: string };
    const link = await call('POST', `/exports/${String(done.exportId)}/links`, requester, {
      currentPassword: STRONG,
    });
    expect(link.status, JSON.stringify(link.body)).toBe(201);
    const zip = Buffer.from(await (await fetch(String(link.body.url))).arrayBuffer());
    expect(createHash('sha256').update(zip).digest('hex')).toBe(download.sha256);
    const files = await unzip(zip);
    const lines = (prefix: string) =>
      [...files.entries()]
        .filter(([name]) => name.startsWith(prefix) && name.endsWith('.ndjson'))
        .flatMap(([, data]) => data.toString('utf8').split('\n').filter(Boolean))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const orders = lines('orders/orders-');
    expect(orders.map((o) => o.id).sort()).toEqual([...ordersOf.get(SUBJECT)!].sort());
    expect(new Set(orders.map((o) => (o.patient as { id: string }).id))).toEqual(new Set([SUBJECT]));
    expect(lines('images/').length).toBe(1);
    expect([...files.keys()].some((name) => name.startsWith('images/') && name.endsWith('.jpg'))).toBe(true);
    // Audit entries about the subject only; no account or settings of the tenant.
    const entries = lines('audit/');
    expect(entries.length).toBeGreaterThan(0);
    expect(new Set(entries.map((e) => e.patientRef)).size).toBe(1);
    expect([...files.keys()].some((name) => name.startsWith('accounts/'))).toBe(false);
    const manifest = JSON.parse(files.get('manifest.json')!.toString('utf8')) as Record<string, unknown>;
    expect(JSON.stringify(manifest)).toContain('orders/orders-');
  });

  it("restricts a subject's processing: read-only, out of listings, until lifted", async () => {
    const [first] = ordersOf.get(RESTRICTED)!;
    const restricted = await call('POST', '/subject-requests', requester, {
      type: 'restriction',
      patientId: RESTRICTED,
    });
    expect(restricted.status, JSON.stringify(restricted.body)).toBe(201);
    expect(restricted.body).toMatchObject({ status: 'active', evidence: { orders: 2 } });
    expect(
      (await call('POST', '/subject-requests', requester, { type: 'restriction', patientId: RESTRICTED })).status,
    ).toBe(409);

    // An order the lab sends while the restriction stands is taken (201) and restricted with the others.
    const arrived = await order(RESTRICTED, 3);
    expect((await call('POST', '/orders/search', lis, { patientId: RESTRICTED })).body.items).toEqual([]);
    expect(
      (
        await call('POST', `/orders/${arrived}/specimens/S-0001/images`, lis, {
          contentType: 'image/jpeg',
          fileName: 'y.jpg',
        })
      ).status,
    ).toBe(409);
    const all = await call('GET', '/orders?limit=200', lis);
    expect((all.body.items as { id: string }[]).map((o) => o.id)).not.toContain(first);
    const read = await fetch(`${host.apiBaseUrl}/orders/${first}`, { headers: { authorization: lis } });
    expect(read.status).toBe(200); // stored and readable (e.g. for legal claims)
    const change = await fetch(`${host.apiBaseUrl}/orders/${first}`, {
      method: 'PATCH',
      headers: { authorization: lis, 'content-type': 'application/json', 'if-match': read.headers.get('etag') ?? '' },
      body: JSON.stringify({ status: 'in-progress' }),
    });
    expect(change.status).toBe(409);
    expect(((await change.json()) as { detail: string }).detail).toContain('Art. 18');
    const upload = await call('POST', `/orders/${first}/specimens/S-0001/images`, lis, {
      contentType: 'image/jpeg',
      fileName: 'x.jpg',
    });
    expect(upload.status).toBe(409);

    const lifted = await call('POST', `/subject-requests/${String(restricted.body.id)}/lift`, requester);
    expect(lifted.body).toMatchObject({ status: 'lifted', evidence: { orders: 2, ordersReleased: 3 } });
    expect((await call('POST', '/orders/search', lis, { patientId: RESTRICTED })).body.items).toHaveLength(3);
    const again = await fetch(`${host.apiBaseUrl}/orders/${first}`, { headers: { authorization: lis } });
    const changed = await fetch(`${host.apiBaseUrl}/orders/${first}`, {
      method: 'PATCH',
      headers: { authorization: lis, 'content-type': 'application/json', 'if-match': again.headers.get('etag') ?? '' },
      body: JSON.stringify({ status: 'in-progress' }),
    });
    expect(changed.status).toBe(200);
    expect((await call('POST', `/subject-requests/${String(restricted.body.id)}/lift`, requester)).status).toBe(409);
  });

  it("refuses an erasure under the tenant's declared duty to keep records, and says why", async () => {
    const policy = { imagesDays: 3650, ordersDays: 3650, afterContractEndDays: 30 };
    expect(
      (await call('PUT', '/retention', requester, { ...policy, legalDuty: { days: 3650, basis: '§630f(3) BGB' } }))
        .status,
    ).toBe(200);
    const before = await snapshot();
    const refused = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: SUBJECT });
    expect(refused.status).toBe(409);
    expect(String(refused.body.detail)).toContain('§630f(3) BGB');
    expect(await snapshot()).toEqual(before);
    const log = (await call('GET', '/subject-requests', requester)).body.items as {
      type: string;
      status: string;
      refusal?: string;
    }[];
    expect(log.find((r) => r.type === 'erasure')).toMatchObject({
      status: 'refused',
      refusal: expect.stringContaining('§630f'),
    });
    expect((await call('PUT', '/retention', requester, policy)).status).toBe(200);
  });

  it('erases one subject after a second person confirms and the window passes; nothing else changes', async () => {
    // A tenant-wide export held at the time: it holds the subject's records too.
    const tenantExport = await call('POST', '/exports', requester, { format: 'ndjson', currentPassword: STRONG });
    expect(tenantExport.status).toBe(202);
    for (let i = 0; i < 300; i++) {
      if ((await call('GET', `/exports/${String(tenantExport.body.id)}`, requester)).body.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const before = await snapshot();
    const requested = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: SUBJECT });
    expect(requested.status, JSON.stringify(requested.body)).toBe(202);
    expect(requested.body.status).toBe('awaiting-confirmation');
    const id = String(requested.body.id);
    // Not at one person's word: the requester cannot confirm; a new account cannot either.
    expect((await call('POST', `/subject-requests/${id}/confirmation`, requester, CONFIRMED)).status).toBe(403);
    expect((await call('POST', `/subject-requests/${id}/confirmation`, selfUser, CONFIRMED)).status).toBe(403);
    expect(
      (await call('POST', '/subject-requests/000000000000000000000000/confirmation', second, CONFIRMED)).status,
    ).toBe(404);
    // A stolen access token alone confirms nothing: no password 400, a wrong one 403; still waiting.
    expect((await call('POST', `/subject-requests/${id}/confirmation`, second)).status).toBe(415); // no body
    expect((await call('POST', `/subject-requests/${id}/confirmation`, second, {})).status).toBe(400);
    expect(
      (await call('POST', `/subject-requests/${id}/confirmation`, second, { currentPassword: 'guess' })).status,
    ).toBe(403);
    expect((await call('GET', `/subject-requests/${id}`, requester)).body.status).toBe('awaiting-confirmation');
    // Two confirmations at once: exactly one wins.
    const confirmations = await Promise.all([
      call('POST', `/subject-requests/${id}/confirmation`, second, CONFIRMED),
      call('POST', `/subject-requests/${id}/confirmation`, third, CONFIRMED),
    ]);
    expect(confirmations.map((c) => c.status).sort()).toEqual([202, 409]);
    const scheduled = confirmations.find((c) => c.status === 202)!.body;
    expect(Date.parse(String(scheduled.executeAt)) - Date.now()).toBeGreaterThan(0);
    // Within the window nothing is gone yet.
    expect(
      ((await call('POST', '/subject-requests/search', requester, { patientId: SUBJECT })).body.orders as unknown[])
        .length,
    ).toBe(3);

    const done = await waitFor(id, ['completed', 'refused', 'cancelled'], 60_000);
    expect(done.status).toBe('completed');
    const signed = done.certificate as { certificate: Record<string, unknown>; jws: string };
    const jwks = (await call('GET', '/deletion-certificates/keys', '')).body as unknown as JSONWebKeySet;
    const verified = await compactVerify(signed.jws, createLocalJWKSet(jwks));
    expect(verified.protectedHeader.typ).toBe('labvault-subject-erasure-certificate+jws');
    expect(JSON.parse(new TextDecoder().decode(verified.payload))).toEqual(signed.certificate);
    expect(signed.certificate).toMatchObject({
      request: id,
      // The earlier access archive and the tenant's export archive.
      deleted: { orders: 3, images: 1, exportArchives: 2 },
      verification: { remainingOrders: 0, remainingImages: 0, remainingBlobs: 0, passed: true },
    });
    expect(JSON.stringify(signed)).not.toContain(SUBJECT);
    expect((await call('GET', `/exports/${String(tenantExport.body.id)}`, requester)).body.status).toBe('expired');

    // Gone: the orders, the image blobs (with versions), the earlier access archive.
    const after = await call('POST', '/subject-requests/search', requester, { patientId: SUBJECT });
    expect(after.body).toMatchObject({ orders: [], images: [] });
    for (const orderId of ordersOf.get(SUBJECT)!)
      expect((await call('GET', `/orders/${orderId}`, lis)).status).toBe(404);
    const blobs = BlobServiceClient.fromConnectionString(host.storageConnectionString);
    for (const container of ['specimen-images', 'specimen-uploads', 'quarantine'])
      for (const orderId of ordersOf.get(SUBJECT)!)
        for await (const blob of blobs
          .getContainerClient(container)
          .listBlobsFlat({ prefix: `${TENANT}/${orderId}/`, includeVersions: true }))
          throw new Error(`left behind: ${container}/${blob.name}`);
    const access = (
      (await call('GET', '/subject-requests', requester)).body.items as { type: string; exportId?: string }[]
    ).find((r) => r.type === 'access')!;
    expect((await call('GET', `/exports/${String(access.exportId)}`, requester)).body.status).toBe('expired');

    // Every other patient's rows and blobs are untouched, down to the ETag.
    const now = await snapshot();
    const erased = new Set(ordersOf.get(SUBJECT)!);
    const untouched = [...before].filter(([, row]) => !erased.has(row.order));
    expect(untouched.length).toBeGreaterThan(OTHERS.length * 3);
    for (const [key, row] of untouched) expect(now.get(key)?.etag, key).toBe(row.etag);
    for (const [key, row] of before) if (erased.has(row.order)) expect(now.has(key), key).toBe(false);
    // The audit chain still verifies, and the log names the subject only by pseudonym.
    const verify = await call('GET', '/audit/verify', requester);
    expect(verify.body.valid).toBe(true);
    expect(host.output()).not.toContain(SUBJECT);
  });

  it('runs an erasure that failed for good again, once, at the word and password of one allowed person; the tenant may export meanwhile', async () => {
    const orderId = await order(FAILED, 1);
    const requested = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: FAILED });
    const id = String(requested.body.id);
    expect((await call('POST', `/subject-requests/${id}/confirmation`, second, CONFIRMED)).status).toBe(202);
    expect((await call('POST', `/subject-requests/${id}/retry`, requester, CONFIRMED)).status).toBe(409); // not failed
    // What the orchestration's last step does when storage fails past every retry (its replay test
    // in tests/unit/durable-replay.test.ts drives it there): the request says so, the lock is free.
    const services = await testServices(host.storageConnectionString, undefined, host.dataDir);
    await services.subjects.failErasure(TENANT, id, {
      actor: { type: 'system', id: 'subject-erasure' },
      correlationId: 'subject-erasure-e2e',
    });
    expect((await call('POST', '/exports', requester, { format: 'ndjson', currentPassword: STRONG })).status).toBe(202);
    await new Promise((r) => setTimeout(r, 3500)); // past the window: the orchestration finds it failed
    expect((await call('GET', `/subject-requests/${id}`, requester)).body).toMatchObject({
      status: 'failed',
      failedAt: expect.any(String),
    });
    expect((await call('GET', `/orders/${orderId}`, lis)).status).toBe(200);

    // Refused: a stolen token without the password or with a wrong one, an operator acting alone, a
    // person holding one unrelated admin permission, a new account, an integration, an unknown id,
    // another kind of request.
    const userManagers = await call('PUT', '/roles/user-manager', requester, { permissions: ['users:manage'] });
    expect(userManagers.status).toBeLessThan(300);
    const userManager = await newPerson('dsr.users', ['user-manager']);
    expect((await call('POST', `/subject-requests/${id}/retry`, second)).status).toBe(415); // no body
    expect((await call('POST', `/subject-requests/${id}/retry`, second, {})).status).toBe(400);
    expect((await call('POST', `/subject-requests/${id}/retry`, second, { currentPassword: 'guess' })).status).toBe(
      403,
    );
    expect([403, 404]).toContain((await call('POST', `/subject-requests/${id}/retry`, operator, CONFIRMED)).status);
    expect((await call('POST', `/subject-requests/${id}/retry`, userManager, CONFIRMED)).status).toBe(403);
    expect((await call('GET', `/subject-requests/${id}`, requester)).body.status).toBe('failed');
    const restriction = (
      (await call('GET', '/subject-requests', requester)).body.items as { id: string; type: string }[]
    ).find((r) => r.type === 'restriction')!;
    for (const [path, auth, status] of [
      [`/subject-requests/${id}/retry`, selfUser, 403],
      [`/subject-requests/${id}/retry`, lis, 403],
      ['/subject-requests/000000000000000000000000/retry', requester, 404],
      [`/subject-requests/${restriction.id}/retry`, requester, 404],
    ] as const)
      expect((await call('POST', path, auth, CONFIRMED)).status, `${path} ${status}`).toBe(status);

    // Fifty at once: one runs it again (no new confirmation: two persons decided), the rest 409.
    const retries = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call('POST', `/subject-requests/${id}/retry`, i % 2 ? second : third, CONFIRMED),
      ),
    );
    const statuses = retries.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s !== 202 && s !== 409 && s !== 429)).toEqual([]);
    expect(retries.find((r) => r.status === 202)!.body).toMatchObject({ status: 'scheduled' });
    const done = await waitFor(id, ['completed', 'failed'], 60_000);
    expect(done).toMatchObject({
      status: 'completed',
      retriedBy: expect.any(String),
      // The archive the tenant made while it stood failed held the patient's order: taken too.
      evidence: { orders: 1, exportArchives: 1 },
    });
    expect((await call('GET', `/orders/${orderId}`, lis)).status).toBe(404);
    const audited = (await call('GET', `/audit?entity=${id}&limit=200`, requester)).body.items as {
      event: string;
      entity: { id: string };
    }[];
    const events = audited.filter((e) => e.entity.id === id).map((e) => e.event);
    expect(events.filter((e) => e === 'subject-request.fail')).toHaveLength(1);
    expect(events.filter((e) => e === 'subject-request.retry')).toHaveLength(1);
    // Both erasures of this tenant are kept beside the backups for a restore (the TOM report says so).
    const toms = await call('GET', '/compliance/toms', requester);
    expect(toms.body).toMatchObject({ backups: { erasuresRecordedForRestore: 2 } });
  });

  it("gives the tenant's export lock back when its holder's run has ended without finishing, and not while it goes", async () => {
    const system = { actor: { type: 'system' as const, id: 'lock-e2e' }, correlationId: 'lock-e2e' };
    const startExport = (by = requester) => call('POST', '/exports', by, { format: 'ndjson', currentPassword: STRONG });
    const exportEnded = async (id: string) => {
      for (let i = 0; i < 300; i++) {
        const status = (await call('GET', `/exports/${id}`, requester)).body.status;
        if (status !== 'pending' && status !== 'running') return status;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`export ${id} did not end`);
    };
    // An export recorded whose run was never started (the host stopped in between): within the
    // minute its start may still come (409); after it, the next export ends it `failed` and runs.
    const now = await testServices(host.storageConnectionString, undefined, host.dataDir);
    const fresh = await now.exports.request(TENANT, 'ndjson', 'request', 'lost-start', system);
    expect((await startExport()).status).toBe(409);
    await now.exports.abandon(TENANT, fresh.id, system);
    const earlier = await testServices(
      host.storageConnectionString,
      () => new Date(Date.now() - 120_000),
      host.dataDir,
    );
    const lost = await earlier.exports.request(TENANT, 'ndjson', 'request', 'lost-start', system);
    // Fifty at once (by another admin, whose hourly budget of starts they spend): the lock is given
    // back once and one export starts; the rest 409 (or 429).
    const starts = await Promise.all(Array.from({ length: 50 }, () => startExport(third)));
    expect(starts.filter((r) => r.status === 202)).toHaveLength(1);
    expect(starts.filter((r) => r.status !== 202 && r.status !== 409 && r.status !== 429)).toEqual([]);
    const next = starts.find((r) => r.status === 202)!;
    expect((await call('GET', `/exports/${lost.id}`, requester)).body.status).toBe('failed');
    expect(await exportEnded(String(next.body.id))).toBe('completed');
    const failures = (await call('GET', `/audit?entity=${lost.id}&limit=50`, requester)).body.items as {
      event: string;
    }[];
    expect(failures.filter((e) => e.event === 'export.fail')).toHaveLength(1);

    // An erasure whose window ends while such an export holds the lock does not wait for it for
    // ever: its first step asks the runtime, ends that export and begins.
    const waiting = 'SUBJ-0010';
    const waitingOrder = await order(waiting, 1);
    const stuck = await earlier.exports.request(TENANT, 'ndjson', 'request', 'lost-start', system);
    const erasure = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: waiting });
    const erasureId = String(erasure.body.id);
    expect((await call('POST', `/subject-requests/${erasureId}/confirmation`, second, CONFIRMED)).status).toBe(202);
    expect(await waitFor(erasureId, ['completed', 'failed'], 60_000)).toMatchObject({ status: 'completed' });
    expect((await call('GET', `/exports/${stuck.id}`, requester)).body.status).toBe('failed');
    expect((await call('GET', `/orders/${waitingOrder}`, lis)).status).toBe(404);

    // An erasure holding the lock whose run has ended (its failure step failed for good too, or its
    // instance was purged): the next export marks it failed, and it can be run again.
    const deadRun = 'SUBJ-0008';
    const deadOrder = await order(deadRun, 1);
    const later = await testServices(
      host.storageConnectionString,
      () => new Date(Date.now() + 86_400_000),
      host.dataDir,
    );
    const dead = await now.subjects.requestErasure(TENANT, deadRun, 'lock-e2e-a', system);
    await now.subjects.confirmErasure(TENANT, dead.id, 'lock-e2e-b', system);
    expect(await later.subjects.beginErasure(TENANT, dead.id, system)).toEqual({ proceed: true });
    const afterDead = await startExport();
    expect(afterDead.status, JSON.stringify(afterDead.body)).toBe(202);
    expect((await call('GET', `/subject-requests/${dead.id}`, requester)).body.status).toBe('failed');
    expect(await exportEnded(String(afterDead.body.id))).toBe('completed');
    expect((await call('POST', `/subject-requests/${dead.id}/retry`, second, CONFIRMED)).status).toBe(202);
    expect(await waitFor(dead.id, ['completed', 'failed'], 60_000)).toMatchObject({ status: 'completed' });
    expect((await call('GET', `/orders/${deadOrder}`, lis)).status).toBe(404);

    // An erasure whose run still goes keeps the lock: 409 until it has finished. (Its instance is
    // suspended while the test looks, so its 3-second window cannot end the run first.)
    const liveRun = 'SUBJ-0009';
    await order(liveRun, 1);
    const live = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: liveRun });
    const liveId = String(live.body.id);
    expect((await call('POST', `/subject-requests/${liveId}/confirmation`, second, CONFIRMED)).status).toBe(202);
    const instance = `instances/subject-erasure-${TENANT}-${liveId}`;
    expect((await fetch(host.durableUrl(`${instance}/suspend?reason=test`), { method: 'POST' })).status).toBe(202);
    expect(await later.subjects.beginErasure(TENANT, liveId, system)).toEqual({ proceed: true });
    expect((await startExport()).status).toBe(409);
    expect((await call('GET', `/subject-requests/${liveId}`, requester)).body.status).toBe('erasing');
    expect((await fetch(host.durableUrl(`${instance}/resume?reason=test`), { method: 'POST' })).status).toBe(202);
    expect(await waitFor(liveId, ['completed', 'failed'], 60_000)).toMatchObject({ status: 'completed' });
    const afterLive = await startExport();
    expect(afterLive.status).toBe(202);
    expect(await exportEnded(String(afterLive.body.id))).toBe('completed');
  });

  it('cancels an erasure within its window, and a legal hold placed meanwhile stops another', async () => {
    const cancelled = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: CANCELLED });
    const cancelId = String(cancelled.body.id);
    expect((await call('POST', `/subject-requests/${cancelId}/confirmation`, second, CONFIRMED)).status).toBe(202);
    const held = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: HELD });
    const heldId = String(held.body.id);
    expect((await call('POST', `/subject-requests/${heldId}/confirmation`, second, CONFIRMED)).status).toBe(202);

    expect((await call('POST', `/subject-requests/${cancelId}/cancellation`, third)).body).toMatchObject({
      status: 'cancelled',
    });
    expect((await call('POST', `/tenants/${TENANT}/legal-hold`, operator)).status).toBe(204);
    const stopped = await waitFor(heldId, ['refused', 'completed'], 30_000);
    expect(stopped).toMatchObject({ status: 'refused', refusal: expect.stringContaining('legal hold') });
    await new Promise((r) => setTimeout(r, 3500)); // past the cancelled one's window
    for (const patient of [CANCELLED, HELD])
      expect(
        ((await call('POST', '/subject-requests/search', requester, { patientId: patient })).body.orders as unknown[])
          .length,
      ).toBe(1);
    expect((await call('POST', `/subject-requests/${cancelId}/cancellation`, third)).status).toBe(409);
    // While the hold stands, a new erasure is refused at once.
    const refused = await call('POST', '/subject-requests', requester, { type: 'erasure', patientId: HELD });
    expect(refused.status).toBe(409);
    expect(String(refused.body.detail)).toContain('legal hold');
  });

  it('keeps a request log with types, due dates a month after receipt, statuses and evidence', async () => {
    const log = (await call('GET', '/subject-requests', requester)).body.items as Record<string, string>[];
    expect(log.map((r) => r.type).sort()).toEqual(
      [
        'access',
        'erasure',
        'erasure',
        'erasure',
        'erasure',
        'erasure',
        'erasure',
        'erasure',
        'erasure',
        'erasure',
        'restriction',
      ].sort(),
    );
    for (const r of log) {
      const days = (Date.parse(r.dueAt!) - Date.parse(r.receivedAt!)) / 86_400_000;
      expect(days).toBeGreaterThanOrEqual(28);
      expect(days).toBeLessThanOrEqual(31);
    }
    expect(log.map((r) => r.status).sort()).toEqual(
      [
        'cancelled',
        'completed',
        'completed',
        'completed',
        'completed',
        'completed',
        'completed',
        'lifted',
        'refused',
        'refused',
        'refused',
      ].sort(),
    );
    expect((await call('GET', '/subject-requests', selfUser)).status).toBe(403);
    expect((await call('GET', '/subject-requests/000000000000000000000000', requester)).status).toBe(404);
    expect((await call('GET', '/subject-requests/zz', requester)).status).toBe(404);
  });

  it('lets a person with only subject-requests:manage handle requests and nothing else; fifty restrictions at once leave one in force', async () => {
    const BURST = 'SUBJ-0005';
    await order(BURST, 1);
    await order(BURST, 2);
    const role = await call('PUT', '/roles/dsr-officer', requester, { permissions: ['subject-requests:manage'] });
    expect(role.status, JSON.stringify(role.body)).toBeLessThan(300);
    const officer = await newPerson('dsr.officer', ['dsr-officer']);
    // One admin permission: the subject routes, and none of the tenant's other administration or data.
    expect((await call('POST', '/subject-requests/search', officer, { patientId: BURST })).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/users', { username: 'dsr.extra', email: 'x@dsr.example', roles: ['tenant-admin'] }],
      ['PUT', '/roles/dsr-officer', { permissions: ['subject-requests:manage', 'users:manage'] }],
      ['GET', '/integrations', undefined],
      ['GET', '/audit', undefined],
      ['POST', '/exports', { purpose: 'contract-end' }],
      ['POST', '/orders/search', { patientId: BURST }],
    ] as const)
      expect((await call(method, path, officer, body)).status, `${method} ${path}`).toBe(403);

    // Fifty at once: storage lets exactly one record the restriction; the rest are told it stands
    // (409) or to come back (429, the officer's budget under contention). None is half-recorded.
    const replies = await Promise.all(
      Array.from({ length: 50 }, () =>
        call('POST', '/subject-requests', officer, { type: 'restriction', patientId: BURST }),
      ),
    );
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s !== 201 && s !== 409 && s !== 429)).toEqual([]);
    const winner = replies.find((r) => r.status === 201)!.body;
    expect(winner).toMatchObject({ type: 'restriction', status: 'active', evidence: { orders: 2 } });
    const log = (await call('GET', '/subject-requests', requester)).body.items as {
      id: string;
      type: string;
      status: string;
    }[];
    expect(log.filter((r) => r.type === 'restriction' && r.status === 'active').map((r) => r.id)).toEqual([winner.id]);
    expect((await call('POST', '/orders/search', lis, { patientId: BURST })).body.items).toEqual([]);

    // Lifted once, the subject is free again, and a new restriction can be recorded after it.
    const lifts = await Promise.all([
      call('POST', `/subject-requests/${String(winner.id)}/lift`, officer),
      call('POST', `/subject-requests/${String(winner.id)}/lift`, requester),
    ]);
    expect(lifts.map((l) => l.status).sort()).toEqual([200, 409]);
    expect((await call('POST', '/orders/search', lis, { patientId: BURST })).body.items).toHaveLength(2);
    const again = await call('POST', '/subject-requests', officer, { type: 'restriction', patientId: BURST });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect((await call('POST', `/subject-requests/${String(again.body.id)}/lift`, officer)).status).toBe(200);
  });

  it('lets the person who took an access request, holding only subject-requests:manage, take its archive with their password', async () => {
    const PATIENT = 'SUBJ-0006';
    await order(PATIENT, 1);
    await order(PATIENT, 2);
    await call('PUT', '/roles/dsr-officer', requester, { permissions: ['subject-requests:manage'] });
    const officer = await newPerson('dsr.access', ['dsr-officer']);
    const started = await call('POST', '/subject-requests', officer, {
      type: 'access',
      patientId: PATIENT,
      format: 'ndjson',
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const id = String(started.body.id);
    const done = await waitFor(id, ['completed', 'failed'], 60_000);
    expect(done.status).toBe('completed');
    const archive = (await call('GET', `/subject-requests/${id}`, officer)).body.archive as {
      sha256: string;
      bytes: number;
    };
    expect(archive.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The exports routes are not this duty's (no exports:start): the subject's archive comes from here.
    expect((await call('GET', `/exports/${String(done.exportId)}`, officer)).status).toBe(403);
    const take = (auth: string, body: unknown) =>
      fetch(`${host.apiBaseUrl}/subject-requests/${id}/archive`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    // A stolen token alone, a guessed password, another admin with the right password: nothing.
    expect((await take(officer, {})).status).toBe(400);
    const guessed = 'a guess at the officer password';
    expect((await take(officer, { currentPassword: guessed })).status).toBe(403);
    expect((await take(second, { currentPassword: STRONG })).status).toBe(404);
    expect((await take(lis, { currentPassword: STRONG })).status).toBe(403);
    const downloadsBefore = (
      (await call('GET', `/audit?action=export.download&entity=${String(done.exportId)}&limit=50`, requester)).body
        .items as unknown[]
    ).length;
    expect(downloadsBefore).toBe(0);

    const taken = await take(officer, { currentPassword: STRONG });
    expect(taken.status).toBe(200);
    expect(taken.headers.get('content-type')).toBe('application/zip');
    const zip = Buffer.from(await taken.arrayBuffer());
    expect(zip.length).toBe(archive.bytes);
    expect(createHash('sha256').update(zip).digest('hex')).toBe(archive.sha256);
    const files = await unzip(zip);
    const orders = [...files.entries()]
      .filter(([name]) => name.startsWith('orders/orders-') && name.endsWith('.ndjson'))
      .flatMap(([, data]) => data.toString('utf8').split('\n').filter(Boolean))
      .map((l) => JSON.parse(l) as { patient: { id: string } });
    expect(orders.map((o) => o.patient.id)).toEqual([PATIENT, PATIENT]);
    const downloads = (
      await call('GET', `/audit?action=export.download&entity=${String(done.exportId)}&limit=50`, requester)
    ).body.items as unknown[];
    expect(downloads).toHaveLength(1);
    expect(host.output()).not.toContain(guessed);
  });
});
