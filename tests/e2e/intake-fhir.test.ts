/* eslint-disable @typescript-eslint/no-explicit-any -- the golden Bundle and the answers are walked by path in assertions */
// FHIR R4 intake over HTTP against a local host: the golden Bundle of docs/examples becomes one
// order (readable as JSON and as FHIR), a resent Bundle stores nothing new, and every broken
// Bundle is refused with an OperationOutcome naming the element, storing nothing.
import { readFileSync } from 'node:fs';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fhirProblems } from '../support/fhir.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let key: string;
let readOnlyKey: string;
const TENANT = 'lab-fhir';
const golden = (): Record<string, any> => JSON.parse(readFileSync('docs/examples/order.fhir.json', 'utf8'));

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, any>;
}

async function send(
  path: string,
  init: {
    body?: unknown;
    raw?: string;
    contentType?: string;
    auth?: string | null;
    headers?: Record<string, string>;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.auth !== null) headers.authorization = init.auth ?? `ApiKey ${key}`;
  const body = init.raw ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined);
  if (body !== undefined) headers['content-type'] = init.contentType ?? 'application/fhir+json';
  const response = await fetch(`${host.apiBaseUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

async function orderRows(): Promise<number> {
  const table = TableClient.fromConnectionString(host.storageConnectionString, 'tenantdata', {
    allowInsecureConnection: true,
  });
  let rows = 0;
  for await (const row of table.listEntities({
    queryOptions: { filter: `PartitionKey ge '${TENANT}~orders' and PartitionKey lt '${TENANT}~orders~~'` },
  }))
    if (row.rowKey?.startsWith('order~')) rows++;
  return rows;
}

/** An OperationOutcome whose error issues name these FHIRPath expressions. */
function expectOutcome(answer: Answer, status: number, expressions: string[] = []): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
  expect(answer.body.resourceType).toBe('OperationOutcome');
  expect(fhirProblems([answer.body])).toEqual([]);
  const named = (answer.body.issue as { expression?: string[] }[]).flatMap((i) => i.expression ?? []);
  for (const expression of expressions) expect(named).toContain(expression);
}

beforeAll(async () => {
  host = await startHost();
  admin(host.dataDir, ['tenant', 'create', '--id', TENANT, '--name', 'Lab FHIR']);
  key = String(
    admin(host.dataDir, [
      'integration',
      'create',
      '--tenant',
      TENANT,
      '--name',
      'his',
      '--permissions',
      'orders:create,orders:read,exports:start',
    ]).json?.apiKey,
  );
  readOnlyKey = String(
    admin(host.dataDir, ['integration', 'create', '--tenant', TENANT, '--name', 'ro', '--permissions', 'orders:read'])
      .json?.apiKey,
  );
});
afterAll(async () => {
  await host?.kill();
});

describe('FHIR R4 intake', () => {
  let orderId: string;
  let locations: string[];

  it('turns the golden transaction Bundle into one order and answers a valid transaction-response', async () => {
    const answer = await send('/fhir/R4', { body: golden() });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ resourceType: 'Bundle', type: 'transaction-response' });
    expect(fhirProblems([answer.body])).toEqual([]);
    const entries = answer.body.entry as { response: { status: string; location?: string } }[];
    expect(entries).toHaveLength(golden().entry.length);
    locations = entries.map((e) => e.response.location ?? '');
    expect(entries.every((e) => e.response.status === '201 Created')).toBe(true);
    // Entries answer in the request's order: Patient, Practitioner, Organization, PractitionerRole, 2 × ServiceRequest, 2 × Specimen, Task.
    expect(locations.map((l) => l.split('/')[0])).toEqual([
      'Patient',
      'Practitioner',
      'Organization',
      'PractitionerRole',
      'ServiceRequest',
      'ServiceRequest',
      'Specimen',
      'Specimen',
      'Task',
    ]);
    orderId = String(locations[8]?.split('/')[1]);
    expect(orderId).toMatch(/^[0-9a-f]{32}$/);
    // The MII Pathologie profiles are recognised (and never required).
    expect(JSON.stringify(entries[0])).toContain('MII Pathologie ServiceRequest');
  });

  it('stores what the Bundle says: readable through the JSON API', async () => {
    const order = (await send(`/orders/${orderId}`)).body;
    expect(order).toMatchObject({
      externalId: 'KHN-2026-004711',
      patient: {
        id: 'P-0081542',
        firstName: 'Jürgen Ömer',
        lastName: 'Größmann',
        birthDate: '1957-02-28',
        sex: 'male',
      },
      orderingPhysician: { name: 'Dr. med. Bärbel Schäfer', lanr: '838382201', bsnr: '021234567' },
      priority: 'urgent',
      examinations: ['726007', 'helicobacter-immunohistochemistry'],
      status: 'received',
    });
    expect(order.clinicalInformation).toContain('Ulkus im Magenantrum');
    expect(order.specimens).toEqual([
      {
        id: 'S-4711-A',
        type: '122610009',
        bodySite: 'Magenantrum',
        collectedAt: '2026-11-26T09:40:00+01:00',
        fixative: '434162003',
      },
      {
        id: 'S-4711-B',
        type: 'biopsie',
        bodySite: 'Magenkorpus, große Kurvatur',
        collectedAt: '2026-11-26T09:44:00+01:00',
      },
    ]);
  });

  it('reads the order back as FHIR: ServiceRequest by id and by placer number, the Task with its status', async () => {
    const request = await send(`/fhir/R4/${locations[4]}`, { auth: `ApiKey ${readOnlyKey}` });
    expect(request.status).toBe(200);
    expect(request.body).toMatchObject({ resourceType: 'ServiceRequest', status: 'active', priority: 'urgent' });
    const search = await send('/fhir/R4/ServiceRequest?identifier=urn:labvault:external-id|KHN-2026-004711');
    expect(search.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 2 });
    const task = await send(`/fhir/R4/Task/${orderId}`);
    expect(task.body).toMatchObject({ resourceType: 'Task', status: 'requested' });
    expect(fhirProblems([request.body, search.body, task.body])).toEqual([]);
    expect((await send('/fhir/R4/ServiceRequest?identifier=urn:other|KHN-2026-004711')).body.total).toBe(0);
    expectOutcome(await send(`/fhir/R4/Task/${'0'.repeat(32)}`), 404);
  });

  it('answers a resent Bundle with the first result and stores nothing new; other content under its id is a 409', async () => {
    const before = await orderRows();
    const again = await send('/fhir/R4', { body: golden() });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((again.body.entry as { response: { location: string } }[]).map((e) => e.response.location)).toEqual(
      locations,
    );
    const changed = golden();
    changed.entry[4].resource.priority = 'stat';
    expectOutcome(await send('/fhir/R4', { body: changed }), 409);
    expect(await orderRows()).toBe(before);
  });

  it('refuses broken Bundles with an OperationOutcome at the element, and stores nothing', async () => {
    const before = await orderRows();
    const fresh = () => {
      const bundle = golden();
      bundle.id = `b-${Math.random().toString(36).slice(2)}`;
      delete bundle.identifier;
      bundle.entry[4].resource.identifier[0].value = `KHN-${Math.random().toString(36).slice(2)}`;
      bundle.entry[5].resource.identifier[0].value = bundle.entry[4].resource.identifier[0].value;
      return bundle;
    };
    const badDate = fresh();
    badDate.entry[0].resource.birthDate = '1957-13-01';
    expectOutcome(await send('/fhir/R4', { body: badDate }), 400, ['Bundle.entry[0].resource.birthDate']);
    const noCollection = fresh();
    delete noCollection.entry[6].resource.collection.collectedDateTime;
    expectOutcome(await send('/fhir/R4', { body: noCollection }), 422, [
      'Bundle.entry[6].resource.collection.collectedDateTime',
    ]);
    const future = fresh();
    future.entry[0].resource.birthDate = '2999-01-01';
    expectOutcome(await send('/fhir/R4', { body: future }), 422, ['Bundle.entry[0].resource.birthDate']);
    const twoOrders = fresh();
    twoOrders.entry[5].resource.identifier[0].value = 'OTHER-1';
    expectOutcome(await send('/fhir/R4', { body: twoOrders }), 422);
    const dangling = fresh();
    dangling.entry[4].resource.subject.reference = 'urn:uuid:00000000-0000-0000-0000-000000000000';
    expectOutcome(await send('/fhir/R4', { body: dangling }), 422, ['Bundle.entry[4].resource.subject']);
    const batch = fresh();
    batch.type = 'batch';
    expectOutcome(await send('/fhir/R4', { body: batch }), 400, ['Bundle.type']);
    const put = fresh();
    put.entry[0].request = { method: 'PUT', url: 'Patient?identifier=x' };
    expectOutcome(await send('/fhir/R4', { body: put }), 422, ['Bundle.entry[0].request.method']);
    expectOutcome(await send('/fhir/R4', { body: { resourceType: 'Patient' } }), 400);
    expectOutcome(
      await send('/fhir/R4', { raw: '{"resourceType":"Bundle",', contentType: 'application/fhir+json' }),
      400,
    );
    expectOutcome(await send('/fhir/R4', { raw: 'MSH|^~\\&|', contentType: 'text/plain' }), 415);
    expect(await orderRows()).toBe(before);
  });

  it('refuses callers without the permission, and without credentials, in the same form', async () => {
    expectOutcome(await send('/fhir/R4', { body: golden(), auth: `ApiKey ${readOnlyKey}` }), 403);
    expectOutcome(await send('/fhir/R4', { body: golden(), auth: null }), 401);
    expectOutcome(await send(`/fhir/R4/Task/${orderId}`, { auth: 'ApiKey lvk_lab-fhir_forged' }), 401);
  });

  it('publishes a CapabilityStatement', async () => {
    const statement = await send('/fhir/R4/metadata', { auth: null });
    expect(statement.body).toMatchObject({ resourceType: 'CapabilityStatement', fhirVersion: '4.0.1' });
    expect(fhirProblems([statement.body])).toEqual([]);
  });

  it('round trip: the order that came in as FHIR leaves in the FHIR export with the same content', async () => {
    const started = await send('/exports', { body: { format: 'fhir' }, contentType: 'application/json' });
    expect(started.status).toBe(202);
    let status: Record<string, any> = {};
    for (let i = 0; i < 120 && status.status !== 'completed'; i++) {
      await new Promise((r) => setTimeout(r, 500));
      status = (await send(`/exports/${String(started.body.id)}`)).body;
    }
    expect(status.status).toBe('completed');
    const archive = Buffer.from(await (await fetch(String(status.download.url))).arrayBuffer());
    const { default: yauzl } = await import('yauzl');
    const files = await new Promise<Map<string, string>>((resolve, reject) => {
      const out = new Map<string, string>();
      yauzl.fromBuffer(archive, { lazyEntries: true }, (error, zip) => {
        if (error || !zip) return reject(error);
        zip.on('entry', (entry: { fileName: string }) =>
          zip.openReadStream(entry as never, (e, stream) => {
            if (e || !stream) return reject(e);
            const chunks: Buffer[] = [];
            stream.on('data', (c: Buffer) => chunks.push(c));
            stream.on('end', () => {
              out.set(entry.fileName, Buffer.concat(chunks).toString('utf8'));
              zip.readEntry();
            });
          }),
        );
        zip.on('end', () => resolve(out));
        zip.readEntry();
      });
    });
    const resources = [...files.entries()]
      .filter(([name]) => name.endsWith('.ndjson') && !name.startsWith('AuditEvent'))
      .flatMap(([, text]) =>
        text
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line)),
      );
    const exported = resources.filter((r) => r.resourceType === 'ServiceRequest');
    expect(exported).toHaveLength(2);
    expect(exported.every((r) => r.identifier[0].value === 'KHN-2026-004711')).toBe(true);
    const patient = resources.find((r) => r.resourceType === 'Patient');
    expect(patient.name[0]).toEqual({ family: 'Größmann', given: ['Jürgen Ömer'] });
    expect(
      resources
        .filter((r) => r.resourceType === 'Specimen')
        .map((r) => r.identifier[0].value)
        .sort(),
    ).toEqual(['S-4711-A', 'S-4711-B']);
    // What the read API answered is what the export holds.
    const readBack = await send(`/fhir/R4/${locations[4]}`);
    expect(exported.find((r) => r.id === readBack.body.id)).toEqual(readBack.body);
  });
});
