import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder, PATIENT_STRINGS } from '../support/fixtures.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let keyA: string;
let keyB: string;
let readOnlyKey: string;

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function api(
  path: string,
  init: {
    method?: string;
    key?: string | null;
    body?: unknown;
    raw?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.key !== null) headers.authorization = `ApiKey ${init.key ?? keyA}`;
  let body: string | Buffer | undefined = init.raw;
  if (init.body !== undefined) body = JSON.stringify(init.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(`${host.apiBaseUrl}${path}`, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

/** Counts order rows and audit entries of a tenant straight from Azurite. */
async function storedCounts(tenant: string): Promise<{ orders: number; audit: number }> {
  const table = TableClient.fromConnectionString(host.storageConnectionString, 'tenantdata', {
    allowInsecureConnection: true,
  });
  let orders = 0;
  let audit = 0;
  for await (const row of table.listEntities({
    queryOptions: { filter: `PartitionKey ge '${tenant}~orders' and PartitionKey lt '${tenant}~orders~~'` },
  })) {
    if (row.rowKey?.startsWith('order~')) orders++;
    if (row.rowKey?.startsWith('audit~0')) audit++;
  }
  return { orders, audit };
}

describe('order intake over HTTP through the local host', () => {
  beforeAll(async () => {
    host = await startHost();
    const tenant = admin(host.dataDir, ['tenant', 'create', '--id', 'lab-e2e', '--name', 'Lab E2E']);
    expect(tenant.status).toBe(0);
    expect(tenant.json).toMatchObject({ id: 'lab-e2e', name: 'Lab E2E' });
    expect(tenant.stdout.trim().split('\n')).toHaveLength(1);
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-other', '--name', 'Other Lab']);
    const integration = admin(host.dataDir, [
      'integration',
      'create',
      '--tenant',
      'lab-e2e',
      '--name',
      'LIS',
      '--permissions',
      'orders:create,orders:read,orders:update,audit:read',
    ]);
    expect(integration.json).toMatchObject({
      tenant: 'lab-e2e',
      permissions: ['audit:read', 'orders:create', 'orders:read', 'orders:update'],
    });
    keyA = String(integration.json?.apiKey);
    keyB = String(
      admin(host.dataDir, [
        'integration',
        'create',
        '--tenant',
        'lab-other',
        '--name',
        'LIS',
        '--permissions',
        'orders:create,orders:read',
      ]).json?.apiKey,
    );
    readOnlyKey = String(
      admin(host.dataDir, [
        'integration',
        'create',
        '--tenant',
        'lab-e2e',
        '--name',
        'viewer',
        '--permissions',
        'orders:read',
      ]).json?.apiKey,
    );
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('serves health and a valid OpenAPI document without credentials', async () => {
    expect(await api('/health', { key: null })).toMatchObject({ status: 200, body: { status: 'ok', storage: 'ok' } });
    const doc = await api('/openapi.json', { key: null });
    expect(doc.body.openapi).toBe('3.1.0');
  });

  it('takes the SPEC example order, reads it back, lists it and audits it', async () => {
    const created = await api('/orders', { body: exampleOrder(), headers: { 'x-correlation-id': 'e2e-1' } });
    expect(created.status).toBe(201);
    expect(created.headers.get('x-correlation-id')).toBe('e2e-1');
    expect(created.headers.get('location')).toBe(`/api/orders/${String(created.body.id)}`);
    expect(created.headers.get('etag')).toBeTruthy();
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.body).toMatchObject({ ...exampleOrder(), status: 'received' });

    const read = await api(`/orders/${String(created.body.id)}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);

    const byPatient = await api('/orders/search', { body: { patientId: 'A123456789' } });
    expect(byPatient.status).toBe(200);
    expect((byPatient.body.items as { id: string }[]).map((o) => o.id)).toEqual([created.body.id]);

    const patched = await api(`/orders/${String(created.body.id)}`, {
      method: 'PATCH',
      body: { status: 'in-progress' },
      headers: { 'if-match': read.headers.get('etag') ?? '' },
    });
    expect(patched).toMatchObject({ status: 200, body: { status: 'in-progress' } });
    expect(
      (await api(`/orders/${String(created.body.id)}`, { method: 'PATCH', body: { status: 'completed' } })).status,
    ).toBe(428);

    const audit = await api('/audit?limit=100');
    const events = (audit.body.items as { event: string }[]).map((e) => e.event);
    expect(events).toEqual(
      expect.arrayContaining([
        'tenant.create',
        'integration.create',
        'order.create',
        'order.read',
        'order.list',
        'order.update',
      ]),
    );
    expect(JSON.stringify(audit.body)).not.toContain('Mustermann');
    expect(await api('/audit/verify')).toMatchObject({ status: 200, body: { valid: true } });
  });

  it('replays an Idempotency-Key retry and refuses the key with another body', async () => {
    const order = exampleOrder({ externalId: 'E2E-IDEM' });
    const first = await api('/orders', { body: order, headers: { 'idempotency-key': 'idem-1' } });
    const second = await api('/orders', { body: order, headers: { 'idempotency-key': 'idem-1' } });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.id).toBe(first.body.id);
    expect(
      (await api('/orders', { body: { ...order, priority: 'urgent' }, headers: { 'idempotency-key': 'idem-1' } }))
        .status,
    ).toBe(409);
    expect((await api('/orders', { body: order })).status).toBe(409);
  });

  it('answers every bad input with a 4xx problem and stores nothing', async () => {
    const before = await storedCounts('lab-e2e');
    const valid = exampleOrder({ externalId: 'E2E-BAD' });
    const cases: [string, Parameters<typeof api>[1], number][] = [
      ['malformed JSON', { raw: '{"externalId": ' }, 400],
      ['wrong types', { body: { ...valid, priority: 7, specimens: 'S-1' } }, 400],
      ['missing fields', { body: { externalId: 'X' } }, 400],
      ['unknown field', { body: { ...valid, isAdmin: true } }, 400],
      ['a 2 MiB body', { raw: JSON.stringify({ ...valid, clinicalInformation: 'x'.repeat(2 * 1024 * 1024) }) }, 413],
      ['__proto__ key', { raw: JSON.stringify(valid).replace('{', '{"__proto__":{"polluted":true},') }, 400],
      [
        'constructor key',
        { raw: JSON.stringify(valid).replace('"patient":{', '"patient":{"constructor":{"prototype":{"x":1}},') },
        400,
      ],
      ['control characters', { body: { ...valid, patient: { ...valid.patient, lastName: 'Muster\u0000mann' } } }, 400],
      ['2026-02-30', { body: { ...valid, patient: { ...valid.patient, birthDate: '2026-02-30' } } }, 400],
      ['a huge string', { body: { ...valid, externalId: 'x'.repeat(500_000) } }, 400],
      ['not JSON', { raw: 'externalId=1', headers: { 'content-type': 'text/plain' } }, 415],
      ['no key', { key: null, body: valid }, 401],
      ['a made-up key', { key: 'lvk_lab-e2e_0000000000000000_' + '0'.repeat(64), body: valid }, 401],
      ['a read-only key', { key: readOnlyKey, body: valid }, 403],
    ];
    for (const [label, init, status] of cases) {
      const reply = await api('/orders', init);
      expect({ label, status: reply.status }).toEqual({ label, status });
      expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(reply.body).toMatchObject({
        status,
        type: expect.any(String),
        title: expect.any(String),
        detail: expect.any(String),
      });
      expect(JSON.stringify(reply.body)).not.toMatch(/at .*\.ts:\d+/);
    }
    expect(await storedCounts('lab-e2e')).toEqual(before);
    expect((await api('/orders?externalId=E2E-BAD')).body.items).toEqual([]);
  });

  it("answers another tenant's order id with 404 and malformed ids with 404", async () => {
    const foreign = await api('/orders', { key: keyB, body: exampleOrder({ externalId: 'OTHER-1' }) });
    expect(foreign.status).toBe(201);
    expect((await api(`/orders/${String(foreign.body.id)}`)).status).toBe(404);
    expect(
      (
        await api(`/orders/${String(foreign.body.id)}`, {
          method: 'PATCH',
          body: { status: 'cancelled' },
          headers: { 'if-match': '*' },
        })
      ).status,
    ).toBe(404);
    expect((await api('/orders/not-an-id')).status).toBe(404);
    expect((await api('/orders?externalId=OTHER-1')).body.items).toEqual([]);
  });

  it('finds orders by patient id only from a body: POST /orders/search, pages bound to it; a patient id in a URL is a 400 that does not echo it', async () => {
    const patientId = 'SEARCH-PATIENT-7';
    for (let i = 0; i < 3; i++) {
      const created = await api('/orders', {
        body: exampleOrder({ externalId: `SEARCH-${i}`, patient: { ...exampleOrder().patient, id: patientId } }),
      });
      expect(created.status).toBe(201);
    }
    // Another tenant's order for the same patient id stays in that tenant.
    const foreign = await api('/orders', {
      key: keyB,
      body: exampleOrder({ externalId: 'SEARCH-OTHER', patient: { ...exampleOrder().patient, id: patientId } }),
    });
    expect(foreign.status).toBe(201);

    const first = await api('/orders/search', { body: { patientId, limit: 2 } });
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(2);
    expect(typeof first.body.continuationToken).toBe('string');
    const second = await api('/orders/search', {
      body: { patientId, limit: 2, continuationToken: first.body.continuationToken },
    });
    expect(second.status).toBe(200);
    const ids = [...(first.body.items as { id: string }[]), ...(second.body.items as { id: string }[])].map(
      (o) => o.id,
    );
    expect(new Set(ids).size).toBe(3);
    expect(ids).not.toContain(foreign.body.id);
    // The token is bound to tenant, route and filters: not reusable for another patient, nor on GET /orders.
    expect(
      (
        await api('/orders/search', {
          body: { patientId: 'A123456789', continuationToken: first.body.continuationToken },
        })
      ).status,
    ).toBe(400);
    expect(
      (await api(`/orders?continuationToken=${encodeURIComponent(String(first.body.continuationToken))}`)).status,
    ).toBe(400);
    // Another tenant's search finds only its own order; a key without orders:read is refused.
    const theirs = await api('/orders/search', { key: keyB, body: { patientId } });
    expect((theirs.body.items as { id: string }[]).map((o) => o.id)).toEqual([foreign.body.id]);
    const noRead = admin(host.dataDir, [
      'integration',
      'create',
      '--tenant',
      'lab-e2e',
      '--name',
      'submit-only',
      '--permissions',
      'orders:create',
    ]);
    expect((await api('/orders/search', { key: String(noRead.json?.apiKey), body: { patientId } })).status).toBe(403);
    expect((await api('/orders/search', { key: null, body: { patientId } })).status).toBe(401);

    // In a URL the patient id is refused, with the way to search instead, and not echoed back.
    const inUrl = await api(`/orders?patientId=${patientId}`);
    expect(inUrl.status).toBe(400);
    expect(inUrl.headers.get('content-type')).toContain('application/problem+json');
    expect(JSON.stringify(inUrl.body)).toContain('POST /api/orders/search');
    expect(JSON.stringify(inUrl.body)).not.toContain(patientId);
    // Bad bodies: unknown fields, a string limit, a blank id.
    for (const body of [{ patientId, extra: 1 }, { patientId, limit: '2' }, { patientId: ' ' }, { limit: 500 }])
      expect((await api('/orders/search', { body })).status).toBe(400);
    // Neither the searches nor the refused URL put the id into the host's logs.
    expect(host.output()).toContain('"operation":"searchOrders"');
    expect(host.output()).not.toContain(patientId);
  });

  it('stops a revoked key at once', async () => {
    const created = admin(host.dataDir, [
      'integration',
      'create',
      '--tenant',
      'lab-e2e',
      '--name',
      'temp',
      '--permissions',
      'orders:read',
    ]);
    const key = String(created.json?.apiKey);
    expect((await api('/orders', { key })).status).toBe(200);
    expect(
      admin(host.dataDir, ['integration', 'revoke', '--tenant', 'lab-e2e', '--id', String(created.json?.id)]).status,
    ).toBe(0);
    expect((await api('/orders', { key })).status).toBe(401);
  });

  it('prints no patient data in any log line', () => {
    const output = host.output();
    expect(output).toContain('"event":"request"');
    for (const value of PATIENT_STRINGS) expect(output).not.toContain(value);
  });
});
