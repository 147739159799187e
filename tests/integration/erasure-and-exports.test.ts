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
const refusedAs = async (kind: DomainError['kind'], work: Promise<unknown>) => {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  expect((error as DomainError).kind).toBe(kind);
};
const refusedAsConflict = (work: Promise<unknown>) => refusedAs('conflict', work);

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
    lastExport = (await startExport()).id;
    expect((await s.exports.get(TENANT, lastExport)).status).toBe('pending');
  });

  it('keeps the cancellation window of an erasure that failed before it began, when it is run again', async () => {
    const requested = await s.subjects.requestErasure(TENANT, 'ERASE-LOCK-4', 'admin-1', meta);
    const scheduled = await s.subjects.confirmErasure(TENANT, requested.id, 'admin-2', meta);
    expect(Date.parse(scheduled.executeAt ?? '')).toBeGreaterThan(now.getTime());
    // The run's first step failed for good at once (storage down when it was confirmed).
    expect(await s.subjects.failErasure(TENANT, requested.id, meta)).toMatchObject({ status: 'failed' });
    const retried = await s.subjects.retryErasure(TENANT, requested.id, 'admin-3', meta);
    expect(retried).toMatchObject({ status: 'scheduled', executeAt: scheduled.executeAt });
    expect(await s.subjects.beginErasure(TENANT, requested.id, meta)).toMatchObject({
      proceed: false,
      executeAt: scheduled.executeAt,
    });
    // Still cancellable within it.
    expect((await s.subjects.cancelErasure(TENANT, requested.id, 'admin-2', meta)).status).toBe('cancelled');
  });

  it('gives the lock back when an erasure fails for good, and a retry waits for the export begun meanwhile and finishes', async () => {
    await s.exports.fail(TENANT, lastExport, 'ended for the test', meta);
    const base = exampleOrder();
    const orderIds: string[] = [];
    for (const externalId of ['EL-3a', 'EL-3b']) {
      const created = await s.orders.create(
        TENANT,
        { ...base, externalId, patient: { ...base.patient, id: 'ERASE-LOCK-3' } },
        meta,
      );
      orderIds.push(created.order.id);
    }
    const requested = await s.subjects.requestErasure(TENANT, 'ERASE-LOCK-3', 'admin-1', meta);
    await s.subjects.confirmErasure(TENANT, requested.id, 'admin-2', meta);
    now = new Date(now.getTime() + 2 * 24 * 3600 * 1000);
    expect(await s.subjects.beginErasure(TENANT, requested.id, meta)).toEqual({ proceed: true });
    // Half done: one of the patient's two orders is gone when storage fails past every retry.
    await s.orders.deleteOrder(TENANT, orderIds[0] as string, meta, 'subject-erasure');
    await refusedAs('conflict', startExport());
    const failed = await s.subjects.failErasure(TENANT, requested.id, meta);
    expect(failed).toMatchObject({ status: 'failed', failedAt: now.toISOString() });
    await refusedAs('conflict', s.subjects.cancelErasure(TENANT, requested.id, 'admin-2', meta));

    // The tenant is not blocked: its export starts. A retry resumes the erasure, which waits for it.
    const meanwhile = await startExport();
    // A legal hold placed since refuses the retry and changes nothing.
    await s.deletion.setLegalHold(TENANT, true, meta);
    await refusedAs('conflict', s.subjects.retryErasure(TENANT, requested.id, 'admin-3', meta));
    expect((await s.subjects.get(TENANT, requested.id)).status).toBe('failed');
    await s.deletion.setLegalHold(TENANT, false, meta);
    await refusedAs('not-found', s.subjects.retryErasure(TENANT, 'f'.repeat(24), 'admin-3', meta));
    const retried = await s.subjects.retryErasure(TENANT, requested.id, 'admin-3', meta);
    expect(retried).toMatchObject({ status: 'erasing', retriedBy: 'admin-3' });
    await refusedAs('conflict', s.subjects.retryErasure(TENANT, requested.id, 'admin-3', meta)); // not failed now
    await refusedAs('conflict', s.subjects.cancelErasure(TENANT, requested.id, 'admin-2', meta)); // begun: too late
    expect(await s.subjects.beginErasure(TENANT, requested.id, meta)).toMatchObject({
      proceed: false,
      status: 'erasing',
    });

    await s.exports.fail(TENANT, meanwhile.id, 'ended for the test', meta);
    expect(await s.subjects.beginErasure(TENANT, requested.id, meta)).toEqual({ proceed: true });
    await refusedAs('conflict', startExport());
    const { orderIds: erased, ...facts } = await s.subjects.erase(TENANT, requested.id, meta);
    expect(facts.orders).toBe(1); // the other one went in the failed run
    expect(erased).toContain(orderIds[1]);
    const verification = await s.subjects.verifyErasure(TENANT, requested.id, orderIds);
    expect(verification).toMatchObject({ remainingOrders: 0, remainingImages: 0, remainingBlobs: 0 });
    const done = await s.subjects.certifyErasure(TENANT, requested.id, facts, verification, meta);
    expect(done.status).toBe('completed');
    expect((await startExport()).status).toBe('pending');
  });
});
