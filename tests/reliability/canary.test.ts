import { TableClient, TableServiceClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import sharp from 'sharp';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreateOrderInput } from '../../lib/orders/schemas.js';
import { withJpegComment } from '../support/images.js';
import { type RunningHost, startHost } from '../support/local-host.js';
import { callJson, type JsonReply, recordFigures, until } from './support.js';

const BOOTSTRAP_PASSWORD = 'canary-first-start-password-42';
const STRONG = 'a quiet meadow under autumn rain';

/** Patient data nobody would write by chance: any sighting outside the tenant's own answers is a leak. */
const CANARY = {
  patientId: 'CANARY-PID-9137',
  firstName: 'Zyxwanda',
  lastName: 'Canarybird',
  birthDate: '1911-11-11',
  physician: 'Dr. Quillfeather Canary',
  clinical: 'canary clinical note 5521',
  externalId: 'CANARY-EXT-7731',
  bodySite: 'canary body site',
  fileName: 'canary-file-4412.jpg',
  exifPerson: 'Canary Exif Person',
};
const CANARY_VALUES = Object.values(CANARY);

let host: RunningHost;
let operator: string;
let admin: string;
let key: string;
const errorBodies: string[] = [];
let requests = 0;

async function call(
  method: string,
  path: string,
  auth: string,
  body?: unknown,
  headers?: Record<string, string>,
): Promise<JsonReply> {
  requests++;
  const reply = await callJson(host.apiBaseUrl, method, path, auth, body, headers);
  if (reply.status >= 400) errorBodies.push(reply.text);
  return reply;
}

async function firstLogin(tenant: string, username: string, initial: string): Promise<string> {
  const first = await call('POST', '/auth/login', '', { tenant, username, password: initial });
  await call('POST', '/auth/password', `Bearer ${String(first.json.accessToken)}`, {
    currentPassword: initial,
    newPassword: STRONG,
  });
  return `Bearer ${String((await call('POST', '/auth/login', '', { tenant, username, password: STRONG })).json.accessToken)}`;
}

function canaryOrder(n: number): CreateOrderInput {
  return {
    externalId: `${CANARY.externalId}-${n}`,
    patient: {
      id: CANARY.patientId,
      firstName: CANARY.firstName,
      lastName: CANARY.lastName,
      birthDate: CANARY.birthDate,
      sex: 'female',
    },
    orderingPhysician: { name: CANARY.physician, lanr: '123456601', bsnr: '031234500' },
    priority: 'urgent',
    clinicalInformation: CANARY.clinical,
    specimens: [{ id: 'S-0001', type: 'biopsy', bodySite: CANARY.bodySite, collectedAt: '2026-11-20T09:30:00Z' }],
    examinations: ['histology'],
  };
}

const sightings = (where: string, text: string): string[] =>
  CANARY_VALUES.filter((v) => text.includes(v) || text.toLowerCase().includes(v.toLowerCase())).map(
    (v) => `${where}: ${v}`,
  );

const scanned = { rowsScanned: 0, queueMessagesScanned: 0, blobsScanned: 0 };
/**
 * Every stored row, queue message and blob, raw. The export archives are left out: they are the
 * customer's own data, handed over on request (and deleted with the tenant).
 */
async function scanStorage(when: string): Promise<string[]> {
  const found: string[] = [];
  for await (const t of TableServiceClient.fromConnectionString(host.storageConnectionString, {
    allowInsecureConnection: true,
  }).listTables()) {
    for await (const row of TableClient.fromConnectionString(host.storageConnectionString, t.name ?? '', {
      allowInsecureConnection: true,
    }).listEntities()) {
      scanned.rowsScanned++;
      found.push(...sightings(`${when}: table ${t.name ?? ''}`, JSON.stringify(row)));
    }
  }
  const queues = QueueServiceClient.fromConnectionString(host.storageConnectionString);
  for await (const q of queues.listQueues()) {
    for (const m of (await queues.getQueueClient(q.name).peekMessages({ numberOfMessages: 32 })).peekedMessageItems) {
      scanned.queueMessagesScanned++;
      found.push(
        ...sightings(`${when}: queue ${q.name}`, Buffer.from(m.messageText, 'base64').toString() + m.messageText),
      );
    }
  }
  const blobService = BlobServiceClient.fromConnectionString(host.storageConnectionString);
  for await (const c of blobService.listContainers()) {
    if (c.name === 'exports') continue;
    for await (const b of blobService.getContainerClient(c.name).listBlobsFlat()) {
      scanned.blobsScanned++;
      found.push(
        ...sightings(
          `${when}: blob ${c.name}/${b.name}`,
          (await blobService.getContainerClient(c.name).getBlobClient(b.name).downloadToBuffer()).toString('latin1'),
        ),
      );
    }
  }
  return found;
}

// Everything the host exports as telemetry, received on loopback and searched like its logs.
const telemetry: string[] = [];
let receiver: Server;

describe('canary patient data through every workflow, looked for everywhere it must not be', () => {
  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        telemetry.push(body);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    host = await startHost({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
        LABVAULT_OPERATOR_INITIAL_PASSWORD: BOOTSTRAP_PASSWORD,
        LABVAULT_BREACH_REMINDER_HOURS: '0.0005,0.001',
        LABVAULT_DURABLE_LEASE_SECONDS: '3',
      },
    });
    operator = await firstLogin('operator', 'operator', BOOTSTRAP_PASSWORD);
    const tenant = await call('POST', '/tenants', operator, {
      id: 'lab-canary',
      name: 'Canary Lab',
      admin: { username: 'admin', email: 'admin@canary.example' },
    });
    admin = await firstLogin(
      'lab-canary',
      'admin',
      String((tenant.json.admin as { initialPassword: string }).initialPassword),
    );
    key = `ApiKey ${String((await call('POST', '/integrations', admin, { name: 'LIS', permissions: ['orders:create', 'orders:read', 'orders:update', 'images:upload', 'images:read', 'exports:start', 'audit:read'], currentPassword: STRONG })).json.apiKey)}`;
  });

  afterAll(async () => {
    await host?.kill();
    receiver?.close();
  });

  it('keeps the canaries out of logs, error bodies, orchestration histories, queues and every stored byte outside the encrypted fields', async () => {
    // Intake, reads, listings by patient, updates, and refusals that carry the canaries in their input.
    const ids: string[] = [];
    for (let n = 0; n < 5; n++)
      ids.push(
        String((await call('POST', '/orders', key, canaryOrder(n), { 'idempotency-key': `canary-${n}` })).json.id),
      );
    await call('POST', '/orders', key, canaryOrder(0), { 'idempotency-key': 'canary-0' }); // replay
    expect((await call('POST', '/orders', key, canaryOrder(0))).status).toBe(409);
    expect(
      (
        await call('POST', '/orders', key, {
          ...canaryOrder(9),
          patient: { ...canaryOrder(9).patient, birthDate: `${CANARY.birthDate}x` },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call(
          'POST',
          '/orders',
          key,
          `{"externalId":"${CANARY.externalId}","patient":${JSON.stringify(CANARY.lastName)}`,
        )
      ).status,
    ).toBe(400);
    expect((await call('POST', '/orders', key, { ...canaryOrder(10), unexpected: CANARY.clinical })).status).toBe(400);
    // A patient id in a URL is refused (it would stay in request logs); the search takes it in the body.
    expect((await call('GET', `/orders?patientId=${encodeURIComponent(CANARY.patientId)}`, key)).status).toBe(400);
    expect((await call('POST', '/orders/search', key, { patientId: CANARY.patientId })).status).toBe(200);
    expect(
      (await call('GET', `/orders?externalId=${encodeURIComponent(CANARY.lastName)}${'x'.repeat(100)}`, key)).status,
    ).toBeLessThan(500);
    await call(
      'PATCH',
      `/orders/${ids[0] ?? ''}`,
      key,
      { status: 'cancelled', cancellationReason: CANARY.clinical },
      { 'if-match': '"stale"' },
    );
    // Control: the tenant's own answer carries the canaries, so the search below can see them.
    expect(
      sightings('control', (await call('GET', `/orders/${ids[1] ?? ''}`, key)).text).length,
    ).toBeGreaterThanOrEqual(6);

    // Images: one with the canary in EXIF, comment and file name; one rejected with the canary in its bytes.
    const photo = withJpegComment(
      await sharp({ create: { width: 320, height: 240, channels: 3, background: '#c33' } })
        .jpeg()
        .withExif({ IFD0: { ImageDescription: CANARY.exifPerson, Artist: CANARY.lastName } })
        .toBuffer(),
      `${CANARY.firstName} ${CANARY.lastName}`,
    );
    for (const bytes of [photo, Buffer.from(`not an image: ${CANARY.lastName}`)]) {
      const upload = await call('POST', `/orders/${ids[1] ?? ''}/specimens/S-0001/images`, key, {
        contentType: 'image/jpeg',
        fileName: CANARY.fileName,
      });
      await fetch(String(upload.json.uploadUrl), {
        method: 'PUT',
        headers: { 'x-ms-blob-type': 'BlockBlob' },
        body: bytes,
      });
    }
    await until(
      'images',
      async () =>
        (
          (await call('GET', `/orders/${ids[1] ?? ''}/specimens/S-0001/images`, key)).json.items as { status: string }[]
        ).every((i) => i.status !== 'pending'),
      (done) => done,
    );

    // Exports in both formats, a breach with its notification, then the tenant's deletion.
    for (const format of ['ndjson', 'fhir']) {
      const started = await call('POST', '/exports', key, { format });
      await until(
        `export ${format}`,
        async () => (await call('GET', `/exports/${String(started.json.id)}`, key)).json.status === 'completed',
        (done) => done,
      );
    }
    const integrationId = String(((await call('GET', '/integrations', admin)).json.items as { id: string }[])[0]?.id);
    const breach = await call('POST', '/breaches', operator, {
      detectedAt: new Date().toISOString(),
      description: 'Integration key found in a public repository',
      suspectedPrincipal: integrationId,
      window: { from: new Date(Date.now() - 3600_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() },
      dataCategories: ['health data'],
      likelyConsequences: 'Reading of orders',
      measures: 'Key revoked',
    });
    expect(breach.status).toBe(202);
    await until(
      'breach notification',
      async () =>
        (((await call('GET', '/breach-notifications', admin)).json.items as unknown[] | undefined) ?? []).length > 0,
      (done) => done,
    );
    await new Promise((r) => setTimeout(r, 4000)); // the reminders (2 s, 4 s) run through the watcher
    await call('POST', `/breaches/${String(breach.json.id)}/analysis`, operator, {
      rootCause: 'r',
      measures: 'm',
      closed: true,
    });
    const found: string[] = await scanStorage('before deletion');
    expect(
      (await call('POST', '/tenants/lab-canary/termination', operator, { contractEndsAt: '2020-01-01T00:00:00Z' }))
        .status,
    ).toBe(202);
    expect(
      (await call('POST', '/tenants/lab-canary/deletion/confirmation', admin, { currentPassword: STRONG })).status,
    ).toBe(202);
    await until(
      'deletion',
      async () => (await call('GET', '/tenants/lab-canary/deletion', operator)).json.status === 'completed',
      (done) => done,
    );

    // Every line the host printed: logs, telemetry, warnings.
    found.push(...sightings('host output', host.output()));
    // Every span exported over OTLP (the batch goes out within a second).
    await new Promise((r) => setTimeout(r, 2000));
    expect(telemetry.length).toBeGreaterThan(0);
    for (const body of telemetry) found.push(...sightings('telemetry', body));
    // Every error body any of the calls above received.
    for (const body of errorBodies) found.push(...sightings('error body', body));
    // Every orchestration's history, input, output and custom status.
    const instances = (await (await fetch(host.durableUrl(`instances/`))).json()) as { instanceId: string }[];
    for (const { instanceId } of instances) {
      found.push(
        ...sightings(
          `orchestration ${instanceId}`,
          await (
            await fetch(
              host.durableUrl(`instances/${instanceId}?showHistory=true&showHistoryOutput=true&showInput=true`),
            )
          ).text(),
        ),
      );
    }
    found.push(...(await scanStorage('after deletion')));
    expect(found).toEqual([]);
    expect(instances.length).toBeGreaterThanOrEqual(4);
    recordFigures('canary', {
      canaryValues: CANARY_VALUES.length,
      requests,
      errorBodies: errorBodies.length,
      logBytes: host.output().length,
      telemetryBytes: telemetry.reduce((n, b) => n + b.length, 0),
      orchestrations: instances.length,
      ...scanned,
    });
  });
});
