// A patient's erasure and the tenant's exports take turns on the tenant's export lock: an archive
// made while the patient is erased could keep their records after the erasure's certificate says
// they are gone. The erasure waits while an export runs; no tenant export starts while it erases.
import { beforeAll, describe, expect, it } from 'vitest';
import { DomainError } from '../../lib/errors.js';
import { useAzurite } from '../support/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

const azurite = useAzurite();
const TENANT = 'lab-erase-lock';
const PATIENT = 'ERASE-LOCK-1';
const meta = { actor: operatorActor, correlationId: 'erasure-and-exports' };
let now = new Date();
let s: TestServices;
let lastExport = '';

const startExport = () => s.exports.request(TENANT, 'ndjson', 'request', 'admin-1', meta);
const refusedAsConflict = async (work: Promise<unknown>) => {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  expect((error as DomainError).kind).toBe('conflict');
};

beforeAll(async () => {
  s = await testServices(azurite.connectionString, () => now);
  await s.tenants.create(TENANT, 'Erasure and exports', meta);
  const base = exampleOrder();
  await s.orders.create(TENANT, { ...base, externalId: 'EL-1', patient: { ...base.patient, id: PATIENT } }, meta);
});

describe("a patient's erasure and the tenant's exports", () => {
  it('wait for each other on the export lock, and the erasure gives it back when it ends', async () => {
    const running = await startExport();
    const requested = await s.subjects.requestErasure(TENANT, PATIENT, 'admin-1', meta);
    await s.subjects.confirmErasure(TENANT, requested.id, 'admin-2', meta);
    now = new Date(now.getTime() + 2 * 24 * 3600 * 1000); // past the cancellation window

    // An export runs: the erasure does not begin, and says when it looks again.
    const waiting = await s.subjects.beginErasure(TENANT, requested.id, meta);
    expect(waiting).toMatchObject({ proceed: false, status: 'scheduled' });
    expect(Date.parse((waiting as { executeAt: string }).executeAt)).toBeGreaterThan(now.getTime());
    expect((await s.subjects.get(TENANT, requested.id)).status).toBe('scheduled');

    // The export ends (here: fails); the erasure begins and holds the lock: no tenant export starts.
    await s.exports.fail(TENANT, running.id, 'ended for the test', meta);
    expect(await s.subjects.beginErasure(TENANT, requested.id, meta)).toEqual({ proceed: true });
    await refusedAsConflict(startExport());
    // A subject's own access export takes no lock and is not held up.
    await s.exports.request(TENANT, 'ndjson', 'subject-access', 'admin-1', meta, { subjectRef: 'another-subject' });

    const { orderIds, ...facts } = await s.subjects.erase(TENANT, requested.id, meta);
    expect(facts.orders).toBe(1);
    const verification = await s.subjects.verifyErasure(TENANT, requested.id, orderIds);
    await refusedAsConflict(startExport());
    const done = await s.subjects.certifyErasure(TENANT, requested.id, facts, verification, meta);
    expect(done.status).toBe('completed');

    // Ended: the tenant exports again.
    const again = await startExport();
    expect(again.status).toBe('pending');
    lastExport = again.id;
  });

  it('gives the lock back when an erasure that took it is cancelled before it began', async () => {
    await s.exports.fail(TENANT, lastExport, 'ended for the test', meta);
    const base = exampleOrder();
    await s.orders.create(
      TENANT,
      { ...base, externalId: 'EL-2', patient: { ...base.patient, id: 'ERASE-LOCK-2' } },
      meta,
    );
    const requested = await s.subjects.requestErasure(TENANT, 'ERASE-LOCK-2', 'admin-1', meta);
    await s.subjects.confirmErasure(TENANT, requested.id, 'admin-2', meta);
    now = new Date(now.getTime() + 2 * 24 * 3600 * 1000);
    // A try that took the lock and crashed before recording that the erasure began; then a cancel.
    expect(await s.exports.holdForErasure(TENANT, requested.id)).toBe('held');
    await refusedAsConflict(startExport());
    await s.subjects.cancelErasure(TENANT, requested.id, 'admin-2', meta);
    // The orchestration's retried first step finds it cancelled and gives the lock back.
    expect(await s.subjects.beginErasure(TENANT, requested.id, meta)).toEqual({ proceed: false, status: 'cancelled' });
    expect((await startExport()).status).toBe('pending');
  });
});
