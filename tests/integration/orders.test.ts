import { beforeAll, describe, expect, it } from 'vitest';
import type { RequestMeta } from '../../lib/orders/orders.js';
import { TABLES } from '../../lib/storage/clients.js';
import { useAzurite } from '../support/azurite.js';
import { problemOf } from '../support/problems.js';
import { exampleOrder, PATIENT_STRINGS } from '../support/fixtures.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

const azurite = useAzurite();
let s: TestServices;
const meta: RequestMeta = { actor: { type: 'integration', id: 'lis-1' }, correlationId: 'test' };

async function allRawEntities(): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const name of Object.values(TABLES)) {
    for await (const row of s.storage.table(name).listEntities()) rows.push(row);
  }
  return rows;
}

describe('orders', () => {
  beforeAll(async () => {
    s = await testServices(azurite.connectionString);
    await s.tenants.create('lab-a', 'Lab A', { actor: operatorActor, correlationId: 'setup' });
    await s.tenants.create('lab-b', 'Lab B', { actor: operatorActor, correlationId: 'setup' });
  });

  it('stores an order and reads it back as sent', async () => {
    const created = await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-1' }), meta);
    expect(created.order).toMatchObject({ ...exampleOrder({ externalId: 'EXT-1' }), status: 'received' });
    expect(created.order.id).toMatch(/^[0-9a-f]{32}$/);
    expect(created.etag).toMatch(/^W\//);
    const read = await s.orders.get('lab-a', created.order.id, meta);
    expect(read.order).toEqual(created.order);
  });

  it('keeps no patient or physician data in plaintext in any table', async () => {
    await s.orders.create('lab-a', exampleOrder(), meta);
    const raw = JSON.stringify(await allRawEntities());
    for (const value of PATIENT_STRINGS) expect(raw).not.toContain(value);
    expect(raw).not.toContain('Dr. med.');
  });

  it('answers an unknown or another tenant’s order id with 404', async () => {
    const created = await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-ISO' }), meta);
    expect((await problemOf(s.orders.get('lab-b', created.order.id, meta))).status).toBe(404);
    expect((await problemOf(s.orders.get('lab-a', '0'.repeat(32), meta))).status).toBe(404);
  });

  it('refuses a second order with the same externalId (409), per tenant only', async () => {
    await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-DUP' }), meta);
    expect((await problemOf(s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-DUP' }), meta))).status).toBe(409);
    await expect(s.orders.create('lab-b', exampleOrder({ externalId: 'EXT-DUP' }), meta)).resolves.toBeDefined();
  });

  it('answers a retried Idempotency-Key with the first order, and 409 for another body', async () => {
    const first = await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-IDEM' }), meta, 'key-1');
    const again = await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-IDEM' }), meta, 'key-1');
    expect(again.replayed).toBe(true);
    expect(again.order).toEqual(first.order);
    expect(
      (await problemOf(s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-OTHER' }), meta, 'key-1'))).status,
    ).toBe(409);
  });

  it('creates exactly one order when the same request races itself', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-RACE' }), meta, 'race-key'),
      ),
    );
    const ids = new Set(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.order.id] : [])));
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(ids.size).toBe(1);
    const page = await s.orders.list('lab-a', { externalId: 'EXT-RACE', limit: 50 }, meta);
    expect(page.items).toHaveLength(1);
  });

  it('finds orders by patient id through the pseudonym, and only in the caller’s tenant', async () => {
    const patient = { ...exampleOrder().patient, id: 'P-LOOKUP-1' };
    await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-P1', patient }), meta);
    await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-P2', patient }), meta);
    await s.orders.create('lab-b', exampleOrder({ externalId: 'EXT-P3', patient }), meta);
    const page = await s.orders.list('lab-a', { patientId: 'p-lookup-1', limit: 50 }, meta);
    expect(page.items.map((o) => o.externalId).sort()).toEqual(['EXT-P1', 'EXT-P2']);
  });

  it('pages through every order with continuation tokens, without repeats', async () => {
    await s.tenants.create('lab-paging', 'Paging', { actor: operatorActor, correlationId: 'setup' });
    for (let i = 0; i < 23; i++) await s.orders.create('lab-paging', exampleOrder({ externalId: `PG-${i}` }), meta);
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await s.orders.list('lab-paging', { limit: 5, ...(token ? { continuation: token } : {}) }, meta);
      expect(page.items.length).toBeLessThanOrEqual(5);
      seen.push(...page.items.map((o) => o.externalId));
      token = page.continuation;
    } while (token);
    expect(seen.sort()).toEqual(Array.from({ length: 23 }, (_, i) => `PG-${i}`).sort());
  });

  it('changes status only along allowed transitions, under If-Match', async () => {
    const created = await s.orders.create('lab-a', exampleOrder({ externalId: 'EXT-PATCH' }), meta);
    const started = await s.orders.update(
      'lab-a',
      created.order.id,
      { status: 'in-progress' },
      (v) => v === created.etag,
      meta,
    );
    expect(started.order.status).toBe('in-progress');
    expect(
      (
        await problemOf(
          s.orders.update('lab-a', created.order.id, { status: 'completed' }, (v) => v === created.etag, meta),
        )
      ).status,
    ).toBe(412);
    const cancelled = await s.orders.update(
      'lab-a',
      created.order.id,
      { status: 'cancelled', cancellationReason: 'duplicate order' },
      (v) => v === started.etag,
      meta,
    );
    expect(cancelled.order).toMatchObject({ status: 'cancelled', cancellationReason: 'duplicate order' });
    expect(
      (
        await problemOf(
          s.orders.update('lab-a', created.order.id, { status: 'in-progress' }, (v) => v === cancelled.etag, meta),
        )
      ).status,
    ).toBe(422);
    expect(
      (
        await problemOf(
          s.orders.update('lab-b', created.order.id, { status: 'completed' }, (v) => v === cancelled.etag, meta),
        )
      ).status,
    ).toBe(404);
  });

  it('audits every create, read and update with ids and pseudonyms only, and the chain verifies', async () => {
    await s.tenants.create('lab-audit', 'Audit', { actor: operatorActor, correlationId: 'setup' });
    const created = await s.orders.create('lab-audit', exampleOrder(), meta);
    await s.orders.get('lab-audit', created.order.id, meta);
    await s.orders.update('lab-audit', created.order.id, { status: 'in-progress' }, (v) => v === created.etag, meta);
    const entries = [];
    for await (const e of s.audit.list('lab-audit')) entries.push(e);
    expect(entries.map((e) => e.event)).toEqual(['tenant.create', 'order.create', 'order.read', 'order.update']);
    expect(
      entries.slice(1).every((e) => e.entity.id === created.order.id && e.patientRef && e.actor.id === 'lis-1'),
    ).toBe(true);
    const text = JSON.stringify(entries);
    for (const value of PATIENT_STRINGS) expect(text).not.toContain(value);
    expect(await s.audit.verify('lab-audit')).toMatchObject({ valid: true, entries: 4 });
  });

  it('never writes patient data to the logs', () => {
    const logs = s.logLines.join('\n');
    for (const value of PATIENT_STRINGS) expect(logs).not.toContain(value);
  });
});
