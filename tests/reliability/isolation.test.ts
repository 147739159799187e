import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_OPERATIONS } from '../../lib/operations.js';
import { openApiPath } from '../../lib/http/openapi.js';
import type { Operation } from '../../lib/http/operation.js';
import { type Permission, PERMISSIONS } from '../../lib/identity/permissions.js';
import { exampleOrder } from '../support/fixtures.js';
import { plainPng } from '../support/images.js';
import { type RunningHost, startHost } from '../support/local-host.js';
import { callJson, recordFigures } from './support.js';

const BOOTSTRAP_PASSWORD = 'isolation-first-start-password-42';
const STRONG = 'a quiet meadow under autumn rain';
let host: RunningHost;
let adminA: string;
let adminB: string;
let keyB: string;
const KEY_B_PERMISSIONS: Permission[] = [
  'orders:create',
  'orders:read',
  'orders:update',
  'images:upload',
  'images:read',
  'exports:start',
  'audit:read',
];
/** Real identifiers of lab-a's records, by the path parameter that names them. */
const idsOfA: Record<string, string> = {};

const call = (method: string, path: string, auth: string, body?: unknown, headers?: Record<string, string>) =>
  callJson(host.apiBaseUrl, method, path, auth, body, headers);

async function firstLogin(tenant: string, username: string, initial: string): Promise<string> {
  const first = await call('POST', '/auth/login', '', { tenant, username, password: initial });
  await call('POST', '/auth/password', `Bearer ${String(first.json.accessToken)}`, {
    currentPassword: initial,
    newPassword: STRONG,
  });
  return `Bearer ${String((await call('POST', '/auth/login', '', { tenant, username, password: STRONG })).json.accessToken)}`;
}

/** Every row of lab-a (with its ETag) and every blob under lab-a/ (with its ETag): any change shows. */
async function snapshotOfA(): Promise<string[]> {
  const out: string[] = [];
  const table = TableClient.fromConnectionString(host.storageConnectionString, 'tenantdata', {
    allowInsecureConnection: true,
  });
  for await (const r of table.listEntities({
    queryOptions: { filter: "PartitionKey ge 'lab-a~' and PartitionKey lt 'lab-a~~'" },
  }))
    out.push(`row ${String(r.partitionKey)} ${String(r.rowKey)} ${String(r.etag)}`);
  const platform = TableClient.fromConnectionString(host.storageConnectionString, 'platform', {
    allowInsecureConnection: true,
  });
  for await (const r of platform.listEntities())
    if (JSON.stringify(r).includes('lab-a'))
      out.push(`platform ${String(r.partitionKey)} ${String(r.rowKey)} ${String(r.etag)}`);
  const blobs = BlobServiceClient.fromConnectionString(host.storageConnectionString);
  for await (const c of blobs.listContainers()) {
    for await (const b of blobs.getContainerClient(c.name).listBlobsFlat({ prefix: 'lab-a/' }))
      out.push(`blob ${c.name}/${b.name} ${String(b.properties.etag)}`);
  }
  return out.sort();
}

/** A path of `op` naming lab-a's records; undefined when the route names none of them. */
function foreignPath(op: Operation): string | undefined {
  const names = op.route.match(/\{(\w+)\}/g)?.map((m) => m.slice(1, -1)) ?? [];
  // Names are a tenant's own namespace (roles) and specimen ids are per order: not foreign ids.
  if (names.length === 0 || names.includes('name')) return undefined;
  const value = (name: string): string => {
    // The FHIR views name lab-a's order: its Task by the order id, a ServiceRequest by `{orderId}-{n}`.
    if (op.route.startsWith('fhir/R4/ServiceRequest/')) return `${idsOfA.orders ?? ''}-1`;
    if (op.route.startsWith('fhir/R4/Task/')) return idsOfA.orders ?? '';
    if (name === 'id') {
      const area = op.route.split('/')[0] ?? '';
      return idsOfA[area] ?? '0'.repeat(24);
    }
    return idsOfA[name] ?? '0'.repeat(24);
  };
  return openApiPath(op.route).replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(value(name)));
}

/** A body each operation accepts, so a refusal is about the foreign id and not about the body. */
const VALID_BODIES: Record<string, unknown> = {
  updateUser: { name: 'Hijack' },
  updateOrder: { status: 'cancelled', cancellationReason: 'hijack' },
  createImageUpload: { contentType: 'image/png', fileName: 'x.png' },
  decideAccessRequest: { approve: true },
  objectToSubProcessorChange: { reason: 'hijack' },
  putRetentionBounds: {
    minOrdersDays: 3650,
    maxOrdersDays: 7300,
    minImagesDays: 30,
    maxImagesDays: 7300,
    minAfterContractEndDays: 30,
    maxAfterContractEndDays: 365,
  },
  terminateTenant: { contractEndsAt: '2020-01-01T00:00:00Z' },
  // lab-b's admin, with lab-b's right password: lab-a's deletion is still not theirs to confirm.
  confirmEarlyDeletion: { currentPassword: STRONG },
  // …nor lab-a's export archive theirs to take.
  createExportLink: { currentPassword: STRONG },
  downloadExportArchiveWithPassword: { currentPassword: STRONG },
  downloadSubjectAccessArchive: { currentPassword: STRONG },
  // …nor lab-a's patient's erasure theirs to confirm or run again.
  confirmSubjectErasure: { currentPassword: STRONG },
  retrySubjectErasure: { currentPassword: STRONG },
};

describe("isolation: another tenant's identifiers in paths, queries and bodies, for every route of the OpenAPI document", () => {
  beforeAll(async () => {
    host = await startHost({ env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: BOOTSTRAP_PASSWORD } });
    const operator = await firstLogin('operator', 'operator', BOOTSTRAP_PASSWORD);
    const tenantA = await call('POST', '/tenants', operator, {
      id: 'lab-a',
      name: 'Lab A',
      admin: { username: 'admin.a', email: 'a@lab-a.example' },
    });
    const tenantB = await call('POST', '/tenants', operator, {
      id: 'lab-b',
      name: 'Lab B',
      admin: { username: 'admin.b', email: 'b@lab-b.example' },
    });
    adminA = await firstLogin(
      'lab-a',
      'admin.a',
      String((tenantA.json.admin as { initialPassword: string }).initialPassword),
    );
    adminB = await firstLogin(
      'lab-b',
      'admin.b',
      String((tenantB.json.admin as { initialPassword: string }).initialPassword),
    );
    const keyA = `ApiKey ${String((await call('POST', '/integrations', adminA, { name: 'LIS A', permissions: ['orders:create', 'orders:read', 'images:upload', 'images:read', 'exports:start'], currentPassword: STRONG })).json.apiKey)}`;
    const integrationB = await call('POST', '/integrations', adminB, {
      name: 'LIS B',
      permissions: KEY_B_PERMISSIONS,
      currentPassword: STRONG,
    });
    keyB = `ApiKey ${String(integrationB.json.apiKey)}`;
    idsOfA.integrations = String(
      ((await call('GET', '/integrations', adminA)).json.items as { id: string }[] | undefined)?.[0]?.id,
    );
    idsOfA.users = String(
      (await call('POST', '/users', adminA, { username: 'nora.a', email: 'nora@lab-a.example', name: 'Nora A' })).json
        .id,
    );
    const order = await call(
      'POST',
      '/orders',
      keyA,
      exampleOrder({ externalId: 'ISO-A-1', patient: { ...exampleOrder().patient, id: 'ISO-PATIENT-A' } }),
    );
    idsOfA.orders = String(order.json.id);
    idsOfA.specimenId = 'S-0001';
    const upload = await call('POST', `/orders/${idsOfA.orders}/specimens/S-0001/images`, keyA, {
      contentType: 'image/png',
      fileName: 'a.png',
    });
    idsOfA.imageId = String(upload.json.imageId);
    await fetch(String(upload.json.uploadUrl), {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob' },
      body: await plainPng(),
    });
    idsOfA.exports = String((await call('POST', '/exports', keyA, { format: 'ndjson' })).json.id);
    const ops = await call('POST', '/operators', operator, {
      username: 'ops.iso',
      email: 'ops@vendor.example',
      roles: ['operator'],
    });
    const opsAuth = await firstLogin('operator', 'ops.iso', String(ops.json.initialPassword));
    idsOfA['access-requests'] = String(
      (
        await call('POST', '/access-requests', opsAuth, {
          tenant: 'lab-a',
          reason: 'ticket 1',
          minutes: 30,
          permissions: ['orders:read'],
        })
      ).json.id,
    );
    idsOfA.tenants = 'lab-a';
    // A data-subject request of lab-a (an erasure awaiting its second person: it changes nothing).
    idsOfA['subject-requests'] = String(
      (await call('POST', '/subject-requests', adminA, { type: 'erasure', patientId: 'ISO-NOBODY-A' })).json.id,
    );
    // Let the image and the export finish, so the snapshot is of a tenant at rest.
    for (let i = 0; i < 100; i++) {
      const image = await call('GET', `/orders/${idsOfA.orders}/specimens/S-0001/images`, keyA);
      const exported = await call('GET', `/exports/${idsOfA.exports}`, keyA);
      if (
        (image.json.items as { status: string }[] | undefined)?.[0]?.status === 'ready' &&
        exported.json.status === 'completed'
      )
        break;
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  afterAll(async () => {
    await host?.kill();
  });

  it("answers every route that names lab-a's records with a refusal when lab-b calls it, and lab-a does not change", async () => {
    const before = await snapshotOfA();
    const refusals: Record<string, number> = {};
    const leaks: string[] = [];
    let calls = 0;
    for (const op of ALL_OPERATIONS) {
      const path = foreignPath(op);
      if (!path || op.id === 'logout') continue;
      for (const caller of [
        { auth: adminB, permissions: PERMISSIONS },
        { auth: keyB, permissions: KEY_B_PERMISSIONS },
      ]) {
        // With the permission, lab-a's record does not exist for lab-b (404); without it, 403 comes first.
        const access = op.access;
        const expected =
          typeof access === 'object' && 'permission' in access
            ? caller.permissions.includes(access.permission)
              ? 404
              : 403
            : 403;
        const reply = await call(op.method, path, caller.auth, op.body ? (VALID_BODIES[op.id] ?? {}) : undefined, {
          'if-match': '"0x8D000000000000"',
        });
        calls++;
        refusals[reply.status] = (refusals[reply.status] ?? 0) + 1;
        if (reply.status !== expected)
          leaks.push(`${op.id} ${op.method} ${path}: ${reply.status}, expected ${expected}`);
      }
    }
    expect(leaks).toEqual([]);
    expect(await snapshotOfA()).toEqual(before);
    recordFigures('isolation', { routesWithForeignIds: calls / 2, calls, answers: refusals });
  });

  it("finds nothing of lab-a through lab-b's queries, and lab-a's values in lab-b's bodies stay lab-b's", async () => {
    const before = await snapshotOfA();
    const queries = [
      `/orders?externalId=ISO-A-1`,
      `/audit?entity=${idsOfA.orders ?? ''}`,
      `/audit?actor=${idsOfA.users ?? ''}`,
      `/users`,
      `/integrations`,
      `/notices`,
      `/breach-notifications`,
      `/access-requests`,
    ];
    for (const q of queries) {
      const reply = await call('GET', q, adminB);
      expect(reply.status, q).toBeLessThan(500);
      for (const id of Object.values(idsOfA).filter((v) => v.length > 8))
        expect(reply.text, `${q} shows ${id}`).not.toContain(id);
      expect(reply.text).not.toContain('ISO-A-1');
      expect(reply.text).not.toContain('lab-a');
    }
    // The search by patient id takes it in the body.
    const search = await call('POST', '/orders/search', adminB, { patientId: 'ISO-PATIENT-A' });
    expect(search.status).toBeLessThan(500);
    for (const id of Object.values(idsOfA).filter((v) => v.length > 8)) expect(search.text).not.toContain(id);
    // lab-a's external id and patient id in lab-b's order: a new order of lab-b, no conflict with lab-a.
    const own = await call(
      'POST',
      '/orders',
      keyB,
      exampleOrder({ externalId: 'ISO-A-1', patient: { ...exampleOrder().patient, id: 'ISO-PATIENT-A' } }),
    );
    expect(own.status).toBe(201);
    expect(own.json.id).not.toBe(idsOfA.orders);
    expect(
      ((await call('GET', '/orders?externalId=ISO-A-1', keyB)).json.items as { id: string }[]).map((o) => o.id),
    ).toEqual([own.json.id]);
    expect(
      ((await call('POST', '/orders/search', keyB, { patientId: 'ISO-PATIENT-A' })).json.items as { id: string }[]).map(
        (o) => o.id,
      ),
    ).toEqual([own.json.id]);
    // lab-a's ids inside bodies: an access request or role naming lab-a's things gives lab-b nothing of lab-a.
    expect((await call('POST', '/users', adminB, { username: 'admin.a', email: 'x@lab-b.example' })).status).toBe(201);
    expect((await call('PATCH', '/me', adminB, { name: 'lab-a admin' })).status).toBe(200);
    expect(await snapshotOfA()).toEqual(before);
  });
});
