import { createHash } from 'node:crypto';
import { BlobServiceClient } from '@azure/storage-blob';
import type { Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fhirProblems, fhirValidatorsRefuse } from '../support/fhir.js';
import { exampleOrder, PATIENT_STRINGS } from '../support/fixtures.js';
import { jpegWithMetadata } from '../support/images.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';
import { unzip } from '../support/zip.js';

const STRONG = 'a quiet meadow under autumn rain';
let host: RunningHost;
let adminAuth: string;
let apiKey: string;
const ids: { orders: string[]; readyImage?: string } = { orders: [] };

async function call(
  method: string,
  path: string,
  auth: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${host.apiBaseUrl}${path}`, {
    method,
    headers: { authorization: auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function runExport(
  format: 'ndjson' | 'fhir',
): Promise<{ files: Map<string, Buffer>; status: Record<string, unknown> }> {
  const started = await call('POST', '/exports', adminAuth, { format, currentPassword: STRONG });
  expect(started.status).toBe(202);
  const id = String(started.body.id);
  let status: Record<string, unknown> = {};
  for (let i = 0; i < 300; i++) {
    status = (await call('GET', `/exports/${id}`, adminAuth)).body;
    if (status.status === 'completed' || status.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(
    status.status,
    `${JSON.stringify(status)}\n${host
      .output()
      .split('\n')
      .filter((l) => /error|warn/.test(l))
      .slice(-8)
      .join('\n')}`,
  ).toBe('completed');
  const download = status.download as { sha256: string; bytes: number };
  const link = (await call('POST', `/exports/${id}/links`, adminAuth, { currentPassword: STRONG })).body as {
    url: string;
    expiresAt: string;
  };
  // Links for tenant users last at most 24 hours (LABVAULT_EXPORT_LINK_HOURS).
  expect(Date.parse(link.expiresAt) - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
  const zip = Buffer.from(await (await fetch(link.url)).arrayBuffer());
  expect(zip.length).toBe(download.bytes);
  expect(createHash('sha256').update(zip).digest('hex')).toBe(download.sha256);
  return { files: await unzip(zip), status };
}

const ndjson = (files: Map<string, Buffer>, prefix: string): Record<string, unknown>[] =>
  [...files.entries()]
    .filter(([name]) => name.startsWith(prefix) && name.endsWith('.ndjson'))
    .flatMap(([, data]) =>
      data
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );

describe('data export over HTTP', () => {
  beforeAll(async () => {
    host = await startHost();
    const tenant = admin(host.dataDir, [
      'tenant',
      'create',
      '--id',
      'lab-exp',
      '--name',
      'Export Lab',
      '--admin-username',
      'exp.admin',
      '--admin-email',
      'a@exp.example',
    ]);
    const initial = String((tenant.json?.admin as { initialPassword: string }).initialPassword);
    const first = await call('POST', '/auth/login', '', {
      tenant: 'lab-exp',
      username: 'exp.admin',
      password: initial,
    });
    await call('POST', '/auth/password', `Bearer ${String(first.body.accessToken)}`, {
      currentPassword: initial,
      newPassword: STRONG,
    });
    adminAuth = `Bearer ${String((await call('POST', '/auth/login', '', { tenant: 'lab-exp', username: 'exp.admin', password: STRONG })).body.accessToken)}`;
    apiKey = `ApiKey ${String((await call('POST', '/integrations', adminAuth, { name: 'LIS', permissions: ['orders:create', 'images:upload', 'images:read'], currentPassword: STRONG })).body.apiKey)}`;
    for (let i = 0; i < 3; i++) {
      const specimens =
        i === 0
          ? [exampleOrder().specimens[0], { id: 'S-0002', type: 'cytology', collectedAt: '2026-11-21T08:00:00Z' }]
          : exampleOrder().specimens;
      const order = await call(
        'POST',
        '/orders',
        apiKey,
        exampleOrder({
          externalId: `EXP-${i}`,
          specimens: specimens as never,
          patient: { ...exampleOrder().patient, id: `PAT-${i}` },
        }),
      );
      ids.orders.push(String(order.body.id));
    }
    for (const bytes of [await jpegWithMetadata(), Buffer.from('not an image')]) {
      const created = await call('POST', `/orders/${ids.orders[0]}/specimens/S-0001/images`, apiKey, {
        contentType: 'image/jpeg',
        fileName: 'x.jpg',
      });
      await fetch(String(created.body.uploadUrl), {
        method: 'PUT',
        headers: { 'x-ms-blob-type': 'BlockBlob' },
        body: bytes,
      });
      if (!ids.readyImage) ids.readyImage = String(created.body.imageId);
    }
    for (let i = 0; i < 100; i++) {
      const list = await call('GET', `/orders/${ids.orders[0]}/specimens/S-0001/images`, apiKey);
      if ((list.body.items as { status: string }[]).every((x) => x.status !== 'pending')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-noise', '--name', 'Noise']);
    const noiseKey = String(
      admin(host.dataDir, [
        'integration',
        'create',
        '--tenant',
        'lab-noise',
        '--name',
        'x',
        '--permissions',
        'orders:create',
      ]).json?.apiKey,
    );
    await call(
      'POST',
      '/orders',
      `ApiKey ${noiseKey}`,
      exampleOrder({
        externalId: 'NOISE-1',
        patient: { ...exampleOrder().patient, id: 'NOISE-PATIENT', lastName: 'Noisemaker' },
      }),
    );
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('hands over every record and image once, with a manifest whose counts and checksums match', async () => {
    const { files, status } = await runExport('ndjson');
    // Once the archive is recorded, its working copies (plain NDJSON of patient data) go; only the archive stays.
    const exportsContainer = BlobServiceClient.fromConnectionString(host.storageConnectionString).getContainerClient(
      'exports',
    );
    let stored: string[] = [];
    for (let i = 0; i < 100; i++) {
      stored = [];
      for await (const blob of exportsContainer.listBlobsFlat({ prefix: `lab-exp/${String(status.id)}/` }))
        stored.push(blob.name);
      if (stored.length === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(stored).toEqual([`lab-exp/${String(status.id)}/archive.zip`]);
    const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? '{}') as {
      tenant: string;
      schemaVersion: string;
      counts: Record<string, number>;
      files: { path: string; bytes: number; sha256: string }[];
      generator: { name: string };
      timeRange: { from: string; to: string };
    };
    expect(manifest).toMatchObject({ tenant: 'lab-exp', schemaVersion: '1.0', generator: { name: 'LabVault' } });
    expect(manifest.timeRange.from <= manifest.timeRange.to).toBe(true);
    for (const f of manifest.files) {
      const data = files.get(f.path);
      expect(data, f.path).toBeDefined();
      expect({
        path: f.path,
        bytes: data?.length,
        sha256: createHash('sha256')
          .update(data ?? Buffer.alloc(0))
          .digest('hex'),
      }).toEqual(f);
    }
    const orders = ndjson(files, 'orders/orders-');
    expect(orders.map((o) => o.id).sort()).toEqual([...ids.orders].sort());
    expect(orders.every((o) => (o.patient as { lastName: string }).lastName === 'Mustermann')).toBe(true);
    expect(ndjson(files, 'orders/specimens-')).toHaveLength(4);
    expect(manifest.counts).toMatchObject({ order: 3, specimen: 4, image: 2, 'image-file': 1 });
    const images = ndjson(files, 'images/images-');
    expect(images.map((i) => i.status).sort()).toEqual(['ready', 'rejected']);
    const fromApi = Buffer.from(
      await (
        await fetch(`${host.apiBaseUrl}/orders/${ids.orders[0]}/specimens/S-0001/images/${ids.readyImage}`, {
          headers: { authorization: apiKey },
        })
      ).arrayBuffer(),
    );
    expect(files.get(`images/${ids.readyImage}.jpg`)?.equals(fromApi)).toBe(true);
    const users = ndjson(files, 'accounts/users');
    expect(users.map((u) => u.username)).toContain('exp.admin');
    const everything = [...files.values()].map((b) => b.toString('latin1')).join('\n');
    for (const secret of [
      '$argon2id$',
      'lvk_lab-exp',
      'passwordHash',
      'keyHash',
      'NOISE-PATIENT',
      'Noisemaker',
      'lab-noise',
    ])
      expect(everything).not.toContain(secret);
    const audit = ndjson(files, 'audit/');
    expect(audit.length).toBeGreaterThan(5);
    expect(audit.every((e) => typeof e.hash === 'string' && typeof e.prevHash === 'string')).toBe(true);
    for (const type of ['order', 'specimen', 'image', 'user', 'role', 'integration', 'audit-entry'])
      expect(files.has(`schemas/${type}.schema.json`)).toBe(true);
  });

  it('keeps patient data out of the orchestration history and the logs', async () => {
    const instances = (await (await fetch(host.durableUrl(`instances/`))).json()) as { instanceId: string }[];
    const exportsRun = instances.filter((i) => i.instanceId.startsWith('export-'));
    expect(exportsRun.length).toBeGreaterThan(0);
    let histories = '';
    for (const i of exportsRun)
      histories += await (
        await fetch(host.durableUrl(`instances/${i.instanceId}?showHistory=true&showHistoryOutput=true&showInput=true`))
      ).text();
    for (const value of [...PATIENT_STRINGS, 'PAT-0', 'EXP-0']) expect(histories + host.output()).not.toContain(value);
  });

  it('refuses a second export while one runs, and audits request, completion and links', async () => {
    const first = await call('POST', '/exports', adminAuth, { format: 'ndjson', currentPassword: STRONG });
    const second = await call('POST', '/exports', adminAuth, { format: 'ndjson', currentPassword: STRONG });
    expect(first.status).toBe(202);
    expect(second.status).toBe(409);
    for (let i = 0; i < 300; i++) {
      if ((await call('GET', `/exports/${String(first.body.id)}`, adminAuth)).body.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(
      (await call('POST', `/exports/${String(first.body.id)}/links`, adminAuth, { currentPassword: STRONG })).status,
    ).toBe(201);
    const audit = await call('GET', `/audit?entity=${String(first.body.id)}&limit=100`, adminAuth);
    const events = (audit.body.items as { event: string }[]).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['export.request', 'export.complete', 'export.link']));
  });

  it('starts a person’s export only with their password: a stolen access token alone takes nothing', async () => {
    // Someone holding the admin's access token but not the password.
    const withoutPassword = await call('POST', '/exports', adminAuth, { format: 'ndjson' });
    expect(withoutPassword.status).toBe(400);
    expect(withoutPassword.body.errors).toEqual([
      { path: '/currentPassword', message: 'required when a person starts an export' },
    ]);
    const guessed = 'a guess at the admin password';
    const wrong = await call('POST', '/exports', adminAuth, { format: 'ndjson', currentPassword: guessed });
    expect(wrong.status).toBe(403);
    // Nothing was started or recorded as requested: no export runs (the next start is not 409), and the
    // audit trail holds the failed re-authentication, not an export request.
    const audit = await call('GET', '/audit?action=auth.reauthenticate&limit=100', adminAuth);
    expect((audit.body.items as { outcome: string }[]).some((e) => e.outcome === 'failure')).toBe(true);
    const requestsBefore = await call('GET', '/audit?action=export.request&limit=100', adminAuth);
    const started = await call('POST', '/exports', adminAuth, { format: 'ndjson', currentPassword: STRONG });
    expect(started.status).toBe(202);
    const requestsAfter = await call('GET', '/audit?action=export.request&limit=100', adminAuth);
    expect((requestsAfter.body.items as unknown[]).length).toBe((requestsBefore.body.items as unknown[]).length + 1);
    for (let i = 0; i < 300; i++) {
      if ((await call('GET', `/exports/${String(started.body.id)}`, adminAuth)).body.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // The password goes no further than its check: not into logs, nor the export's orchestration.
    const instance = await (
      await fetch(
        host.durableUrl(`instances/export-lab-exp-${String(started.body.id)}?showHistory=true&showInput=true`),
      )
    ).text();
    expect(instance).toContain(String(started.body.id));
    for (const secret of [STRONG, guessed]) expect(instance + host.output()).not.toContain(secret);
  });

  it('hands a person’s archive out only with their password: a stolen access token alone downloads nothing', async () => {
    const started = await call('POST', '/exports', adminAuth, { format: 'ndjson', currentPassword: STRONG });
    expect(started.status).toBe(202);
    const id = String(started.body.id);
    let status: Record<string, unknown> = {};
    for (let i = 0; i < 300 && status.status !== 'completed'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await call('GET', `/exports/${id}`, adminAuth)).body;
    }
    // The status shows a person the checksum, no link.
    const download = status.download as Record<string, unknown>;
    expect(Object.keys(download).sort()).toEqual(['bytes', 'sha256']);
    const handedOut = async () =>
      ((await call('GET', '/audit?action=export.link&limit=200', adminAuth)).body.items as unknown[]).length +
      ((await call('GET', '/audit?action=export.download&limit=200', adminAuth)).body.items as unknown[]).length;
    const before = await handedOut();

    // Someone holding the admin's access token but not the password.
    const noPassword = await call('POST', `/exports/${id}/links`, adminAuth);
    expect(noPassword.status).toBe(400);
    expect(noPassword.body.errors).toEqual([
      { path: '/currentPassword', message: 'required when a person takes a download link' },
    ]);
    const guessed = 'another guess at the admin password';
    expect((await call('POST', `/exports/${id}/links`, adminAuth, { currentPassword: guessed })).status).toBe(403);
    expect((await call('POST', `/exports/${id}/archive`, adminAuth, { currentPassword: guessed })).status).toBe(403);
    expect((await call('POST', `/exports/${id}/archive`, adminAuth, {})).status).toBe(400);
    const byToken = await fetch(`${host.apiBaseUrl}/exports/${id}/archive`, { headers: { authorization: adminAuth } });
    expect(byToken.status).toBe(403);
    expect(byToken.headers.get('content-type')).toMatch(/problem\+json/);
    // Another credential of the tenant with exports:start learns nothing about this archive (404).
    const exporter = await call('POST', '/integrations', adminAuth, {
      name: 'Archive',
      permissions: ['exports:start'],
      currentPassword: STRONG,
    });
    const exporterKey = `ApiKey ${String(exporter.body.apiKey)}`;
    expect((await call('POST', `/exports/${id}/archive`, exporterKey, { currentPassword: STRONG })).status).toBe(404);
    expect((await call('POST', `/exports/${id}/links`, exporterKey)).status).toBe(404);
    expect((await call('GET', `/exports/${id}`, exporterKey)).body.download).toBeUndefined();
    expect(await handedOut()).toBe(before);

    // With the password: a link, and the archive through the API, both the bytes the checksum names.
    const link = await call('POST', `/exports/${id}/links`, adminAuth, { currentPassword: STRONG });
    expect(link.status).toBe(201);
    const viaLink = Buffer.from(await (await fetch(String(link.body.url))).arrayBuffer());
    expect(createHash('sha256').update(viaLink).digest('hex')).toBe(download.sha256);
    const viaApi = await fetch(`${host.apiBaseUrl}/exports/${id}/archive`, {
      method: 'POST',
      headers: { authorization: adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ currentPassword: STRONG }),
    });
    expect(viaApi.status).toBe(200);
    expect(viaApi.headers.get('etag')).toBe(`"${String(download.sha256)}"`);
    expect(
      createHash('sha256')
        .update(Buffer.from(await viaApi.arrayBuffer()))
        .digest('hex'),
    ).toBe(download.sha256);
    expect(await handedOut()).toBe(before + 2);
    expect(host.output()).not.toContain(guessed);

    // An API key is a credential of its own: its export's status carries the link, GET serves the
    // archive, and the password route is not its way in.
    const keyExport = await call('POST', '/exports', exporterKey, { format: 'ndjson' });
    expect(keyExport.status).toBe(202);
    let keyStatus: Record<string, unknown> = {};
    for (let i = 0; i < 300 && keyStatus.status !== 'completed'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      keyStatus = (await call('GET', `/exports/${String(keyExport.body.id)}`, exporterKey)).body;
    }
    const keyDownload = keyStatus.download as { url: string; sha256: string };
    const fromLink = Buffer.from(await (await fetch(keyDownload.url)).arrayBuffer());
    expect(createHash('sha256').update(fromLink).digest('hex')).toBe(keyDownload.sha256);
    const keyArchive = `${host.apiBaseUrl}/exports/${String(keyExport.body.id)}/archive`;
    expect((await fetch(keyArchive, { headers: { authorization: exporterKey } })).status).toBe(200);
    expect(
      (await call('POST', `/exports/${String(keyExport.body.id)}/archive`, exporterKey, { currentPassword: STRONG }))
        .status,
    ).toBe(403);
  });

  it('a person holding only exports:start: fifty starts at once make one export, and nothing else opens to them', async () => {
    expect((await call('PUT', '/roles/exporter', adminAuth, { permissions: ['exports:start'] })).status).toBe(201);
    const created = await call('POST', '/users', adminAuth, {
      username: 'exp.exporter',
      email: 'exporter@exp.example',
      roles: ['exporter'],
    });
    expect(created.status).toBe(201);
    const first = await call('POST', '/auth/login', '', {
      tenant: 'lab-exp',
      username: 'exp.exporter',
      password: String(created.body.initialPassword),
    });
    await call('POST', '/auth/password', `Bearer ${String(first.body.accessToken)}`, {
      currentPassword: String(created.body.initialPassword),
      newPassword: STRONG,
    });
    const exporter = `Bearer ${String((await call('POST', '/auth/login', '', { tenant: 'lab-exp', username: 'exp.exporter', password: STRONG })).body.accessToken)}`;
    const before = ((await call('GET', '/audit?action=export.request&limit=200', adminAuth)).body.items as unknown[])
      .length;
    const answers = await Promise.all(
      Array.from({ length: 50 }, () =>
        call('POST', '/exports', exporter, { format: 'ndjson', currentPassword: STRONG }),
      ),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    // The others: an export is running (409), or over the person's budget or password throttle (429).
    expect(statuses.filter((s) => s !== 202 && s !== 409 && s !== 429)).toEqual([]);
    const after = ((await call('GET', '/audit?action=export.request&limit=200', adminAuth)).body.items as unknown[])
      .length;
    expect(after).toBe(before + 1);
    const id = String(answers.find((a) => a.status === 202)?.body.id);
    for (let i = 0; i < 300; i++) {
      if ((await call('GET', `/exports/${id}`, exporter)).body.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await call('POST', `/exports/${id}/links`, exporter, { currentPassword: STRONG })).status).toBe(201);
    // One admin permission reaches one duty: not the orders, the audit trail, users, roles or keys.
    for (const [method, path, body] of [
      ['GET', '/orders?limit=1', undefined],
      ['GET', '/audit?limit=1', undefined],
      ['GET', '/users', undefined],
      ['PUT', '/roles/exporter', { permissions: ['exports:start', 'orders:read'] }],
      ['POST', '/integrations', { name: 'mine', permissions: ['exports:start'], currentPassword: STRONG }],
    ] as const)
      expect((await call(method, path, exporter, body)).status, `${method} ${path}`).toBe(403);

    // The token's thief guessing the password through the archive routes, fifty at once: each guess is
    // counted like a login attempt, none yields a link or the archive, and the next guess waits (429).
    const links = async () =>
      ((await call('GET', `/audit?action=export.link&entity=${id}&limit=200`, adminAuth)).body.items as unknown[])
        .length;
    const linksBefore = await links();
    const guesses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call('POST', `/exports/${id}/${i % 2 ? 'links' : 'archive'}`, exporter, { currentPassword: `guess ${i}` }),
      ),
    );
    expect(guesses.map((g) => g.status).filter((s) => s !== 403 && s !== 429)).toEqual([]);
    expect((await call('POST', `/exports/${id}/links`, exporter, { currentPassword: 'one more guess' })).status).toBe(
      429,
    );
    expect(await links()).toBe(linksBefore);
  });

  it('writes FHIR R4 Bulk Data NDJSON that two validators accept, with one resource per identity and one concept per code', async () => {
    // The same patient in six orders (spread over the shards), one with three examinations, one cancelled with its reason.
    const same = { ...exampleOrder().patient, id: 'PAT-SAME' };
    const sameIds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const order = await call(
        'POST',
        '/orders',
        apiKey,
        exampleOrder({
          externalId: `SAME-${i}`,
          patient: same,
          examinations: i === 0 ? ['histology', 'immunohistochemistry', 'molecular-pathology'] : ['histology'],
        }),
      );
      sameIds.push(String(order.body.id));
    }
    const toCancel = await call('GET', `/orders/${sameIds[1]}`, adminAuth);
    const etag =
      (await fetch(`${host.apiBaseUrl}/orders/${sameIds[1]}`, { headers: { authorization: adminAuth } })).headers.get(
        'etag',
      ) ?? '';
    expect(toCancel.status).toBe(200);
    const cancelled = await fetch(`${host.apiBaseUrl}/orders/${sameIds[1]}`, {
      method: 'PATCH',
      headers: { authorization: adminAuth, 'content-type': 'application/json', 'if-match': etag },
      body: JSON.stringify({ status: 'cancelled', cancellationReason: 'duplicate order' }),
    });
    expect(cancelled.status).toBe(200);

    const { files } = await runExport('fhir');
    const byFile = [...files.entries()]
      .filter(([n]) => n.endsWith('.ndjson'))
      .map(([name, d]) => ({
        name,
        resources: d
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Resource & Record<string, unknown>),
      }));
    const resources = byFile.flatMap((f) => f.resources);
    const types = new Set(resources.map((r) => r.resourceType));
    for (const t of [
      'Patient',
      'Practitioner',
      'Organization',
      'PractitionerRole',
      'ServiceRequest',
      'Task',
      'Specimen',
      'Media',
      'AuditEvent',
    ])
      expect(types.has(t as Resource['resourceType']), t).toBe(true);

    // One resource per identity in the whole export, whatever the shard.
    const keys = resources.map((r) => `${r.resourceType}/${String(r.id)}`);
    expect(keys.length).toBe(new Set(keys).size);
    const patients = resources.filter((r) => r.resourceType === 'Patient') as unknown as {
      identifier: { value: string }[];
    }[];
    expect(patients.filter((p) => p.identifier[0]?.value === 'PAT-SAME')).toHaveLength(1);
    expect(resources.filter((r) => r.resourceType === 'Practitioner')).toHaveLength(1);
    const organizations = resources.filter((r) => r.resourceType === 'Organization') as unknown as {
      identifier: { system: string; value: string }[];
    }[];
    expect(organizations).toEqual([
      expect.objectContaining({
        identifier: [
          { system: 'https://fhir.kbv.de/NamingSystem/KBV_NS_Base_BSNR', value: exampleOrder().orderingPhysician.bsnr },
        ],
      }),
    ]);
    // One concept per CodeableConcept: one ServiceRequest per examination, sharing the order as requisition.
    const requests = resources.filter((r) => r.resourceType === 'ServiceRequest') as unknown as {
      id: string;
      code: { coding: unknown[] };
      requisition: { value: string };
    }[];
    expect(requests.every((r) => r.code.coding.length === 1)).toBe(true);
    expect(
      requests
        .filter((r) => r.requisition.value === sameIds[0])
        .map((r) => r.id)
        .sort(),
    ).toEqual([1, 2, 3].map((n) => `${sameIds[0]}-${n}`));
    // A cancelled order keeps its reason (Task.statusReason).
    const task = resources.find((r) => r.resourceType === 'Task' && r.id === sameIds[1]) as unknown as {
      status: string;
      statusReason: { text: string };
    };
    expect(task).toMatchObject({ status: 'cancelled', statusReason: { text: 'duplicate order' } });

    // The manifest counts what the archive holds, type by type, and nothing else.
    const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? '{}') as {
      counts: Record<string, number>;
      files: { path: string }[];
    };
    const counted: Record<string, number> = {};
    for (const r of resources) counted[r.resourceType] = (counted[r.resourceType] ?? 0) + 1;
    counted['image-file'] = [...files.keys()].filter((n) => n.startsWith('images/')).length;
    expect(manifest.counts).toEqual(counted);
    expect(manifest.files.map((f) => f.path).sort()).toEqual(
      [...files.keys()].filter((n) => n !== 'manifest.json').sort(),
    );

    // Two validators nobody here wrote: Medplum's and the FHIR R4 JSON schema (ajv).
    expect(fhirValidatorsRefuse()).toBe(true);
    const invalid = fhirProblems(resources as unknown as Record<string, unknown>[]);
    expect(invalid).toEqual([]);
  }, 180_000);
});

describe('export across a kill -9 of the host', () => {
  it('completes after a restart with a correct archive', async () => {
    const env = { LABVAULT_DURABLE_LEASE_SECONDS: '3' };
    let h = await startHost({ env });
    try {
      admin(h.dataDir, ['tenant', 'create', '--id', 'lab-crash', '--name', 'Crash Lab']);
      const key = `ApiKey ${String(admin(h.dataDir, ['integration', 'create', '--tenant', 'lab-crash', '--name', 'x', '--permissions', 'orders:create,exports:start']).json?.apiKey)}`;
      const post = (path: string, body: unknown) =>
        fetch(`${h.apiBaseUrl}${path}`, {
          method: 'POST',
          headers: { authorization: key, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      for (let i = 0; i < 60; i++) await post('/orders', exampleOrder({ externalId: `CR-${i}` }));
      const started = (await (await post('/exports', { format: 'ndjson' })).json()) as { id: string };
      await new Promise((r) => setTimeout(r, 400));
      const dataDir = h.dataDir;
      await h.kill('SIGKILL');
      h = await startHost({ dataDir, env });
      let status: Record<string, unknown> = {};
      for (let i = 0; i < 300; i++) {
        status = (await (
          await fetch(`${h.apiBaseUrl}/exports/${started.id}`, { headers: { authorization: key } })
        ).json()) as Record<string, unknown>;
        if (status.status === 'completed' || status.status === 'failed') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(status.status).toBe('completed');
      const download = status.download as { url: string; sha256: string };
      const zip = Buffer.from(await (await fetch(download.url)).arrayBuffer());
      expect(createHash('sha256').update(zip).digest('hex')).toBe(download.sha256);
      const files = await unzip(zip);
      const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? '{}') as {
        counts: Record<string, number>;
        files: { path: string; sha256: string }[];
      };
      expect(manifest.counts.order).toBe(60);
      for (const f of manifest.files)
        expect(
          createHash('sha256')
            .update(files.get(f.path) ?? Buffer.alloc(0))
            .digest('hex'),
        ).toBe(f.sha256);
      expect(new Set(ndjson(files, 'orders/orders-').map((o) => o.externalId)).size).toBe(60);
    } finally {
      await h.kill();
    }
  });
});
