import { TableClient } from '@azure/data-tables';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../lib/audit/audit-log.js';
import type { AuditEventInput } from '../../lib/audit/types.js';
import { TABLES } from '../../lib/storage/clients.js';
import { tenantPartition } from '../../lib/storage/keys.js';
import { useAzurite } from '../support/azurite.js';
import { testServices } from '../support/services.js';

const azurite = useAzurite();
let table: TableClient;

const event = (n: number): AuditEventInput => ({
  event: 'order.read',
  action: 'R',
  outcome: 'success',
  actor: { type: 'integration', id: 'lis' },
  entity: { type: 'Order', id: `order-${n}` },
  patientRef: 'pseudonym-abc',
  correlationId: `c-${n}`,
});

async function seed(tenant: string, streams: string[], perStream: number): Promise<AuditLog> {
  const log = new AuditLog({ table });
  for (const stream of streams) {
    for (let i = 1; i <= perStream; i++) await log.record(tenant, tenantPartition(tenant, stream), [event(i)]);
  }
  return log;
}

async function entryRow(
  tenant: string,
  stream: string,
  seq: number,
): Promise<Record<string, unknown> & { etag: string }> {
  return table.getEntity(tenantPartition(tenant, stream), `audit~${String(seq).padStart(12, '0')}`);
}

describe('the hash-chained audit log', () => {
  beforeAll(async () => {
    const services = await testServices(azurite.connectionString);
    table = services.storage.table(TABLES.tenantData);
  });

  it('verifies an untouched log and counts its entries and streams', async () => {
    const log = await seed('clean', ['orders~1', 'orders~2', 'access'], 4);
    expect(await log.verify('clean')).toEqual({ valid: true, entries: 12, streams: 3 });
  });

  it('finds an edited entry', async () => {
    const log = await seed('edited', ['orders~1'], 5);
    const row = await entryRow('edited', 'orders~1', 3);
    await table.updateEntity(
      { partitionKey: row.partitionKey as string, rowKey: row.rowKey as string, actorId: 'someone-else' },
      'Merge',
    );
    expect(await log.verify('edited')).toMatchObject({
      valid: false,
      firstBrokenAt: { stream: 'orders~1', seq: 3, reason: 'hash-mismatch' },
    });
  });

  it('finds an edit that also recomputed the entry hash (the next entry no longer links)', async () => {
    const log = await seed('rehashed', ['orders~1'], 5);
    const row = await entryRow('rehashed', 'orders~1', 2);
    await table.updateEntity(
      { partitionKey: row.partitionKey as string, rowKey: row.rowKey as string, hash: 'f'.repeat(64) },
      'Merge',
    );
    const result = await log.verify('rehashed');
    expect(result.valid).toBe(false);
    expect(result.firstBrokenAt?.seq).toBe(2);
  });

  it('finds a removed entry', async () => {
    const log = await seed('removed', ['orders~1'], 5);
    await table.deleteEntity(tenantPartition('removed', 'orders~1'), 'audit~000000000003');
    expect(await log.verify('removed')).toMatchObject({
      valid: false,
      firstBrokenAt: { seq: 3, reason: 'sequence-gap' },
    });
  });

  it('finds a removed last entry through the head', async () => {
    const log = await seed('truncated', ['orders~1'], 5);
    await table.deleteEntity(tenantPartition('truncated', 'orders~1'), 'audit~000000000005');
    expect(await log.verify('truncated')).toMatchObject({
      valid: false,
      firstBrokenAt: { seq: 5, reason: 'head-mismatch' },
    });
  });

  it('finds reordered entries', async () => {
    const log = await seed('reordered', ['orders~1'], 5);
    const a = await entryRow('reordered', 'orders~1', 2);
    const b = await entryRow('reordered', 'orders~1', 3);
    const strip = ({ etag: _e, timestamp: _t, partitionKey, rowKey, ...rest }: Record<string, unknown>) => ({
      partitionKey,
      rowKey,
      ...rest,
    });
    await table.upsertEntity(
      { ...strip(b), partitionKey: a.partitionKey as string, rowKey: a.rowKey as string },
      'Replace',
    );
    await table.upsertEntity(
      { ...strip(a), partitionKey: b.partitionKey as string, rowKey: b.rowKey as string },
      'Replace',
    );
    expect(await log.verify('reordered')).toMatchObject({ valid: false, firstBrokenAt: { seq: 2 } });
  });

  it('keeps one unbroken chain when two writers (two app instances) append at once', async () => {
    const first = new AuditLog({ table });
    const second = new AuditLog({ table });
    const partition = tenantPartition('concurrent', 'orders~7');
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? first : second).record('concurrent', partition, [event(i)])),
    );
    expect(await first.verify('concurrent')).toEqual({ valid: true, entries: 40, streams: 1 });
  });

  it('lists entries oldest first with filters', async () => {
    const log = await seed('listing', ['orders~1', 'orders~2'], 3);
    const all = [];
    for await (const e of log.list('listing')) all.push(e);
    expect(all).toHaveLength(6);
    expect([...all].sort((x, y) => x.at.localeCompare(y.at))).toEqual(all);
    const one = [];
    for await (const e of log.list('listing', { entity: 'order-2' })) one.push(e);
    expect(one.map((e) => e.entity.id)).toEqual(['order-2', 'order-2']);
  });

  it('never lets another tenant’s entries into a list or verification', async () => {
    await seed('tenant-a', ['orders~1'], 2);
    await seed('tenant-ab', ['orders~1'], 3);
    const log = new AuditLog({ table });
    expect((await log.verify('tenant-a')).entries).toBe(2);
    const listed = [];
    for await (const e of log.list('tenant-a')) listed.push(e);
    expect(listed.every((e) => e.tenant === 'tenant-a')).toBe(true);
    expect(listed).toHaveLength(2);
  });
});
