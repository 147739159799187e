import { odata, TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuditAnchors } from '../../lib/audit/anchors.js';
import { AuditLog } from '../../lib/audit/audit-log.js';
import type { AuditEventInput } from '../../lib/audit/types.js';
import { CONTAINERS, TABLES } from '../../lib/storage/clients.js';
import { tenantPartition } from '../../lib/storage/keys.js';
import { useAzurite } from '../support/azurite.js';
import { testServices } from '../support/services.js';

const azurite = useAzurite();
let table: TableClient;
let archive: ContainerClient;

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
    archive = services.storage.blobService.getContainerClient(CONTAINERS.auditArchive);
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

/**
 * Someone who can write the table (an operator with the storage key, a stolen deployment identity)
 * rewrites a stream: deletes its rows and records a doctored history with the app's own code, so
 * every hash and link is valid. Only what was anchored before can tell.
 */
async function rewriteStream(tenant: string, stream: string, events: AuditEventInput[]): Promise<void> {
  const partitionKey = tenantPartition(tenant, stream);
  for await (const row of table.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${partitionKey}` } }))
    await table.deleteEntity(partitionKey, row.rowKey as string);
  const forger = new AuditLog({ table });
  for (const e of events) await forger.record(tenant, partitionKey, [e]);
}

describe('audit anchors in write-once storage', () => {
  const anchorsOf = () => new AuditAnchors({ table, container: archive });
  const doctored = (n: number): AuditEventInput => ({
    ...event(n),
    actor: { type: 'integration', id: 'someone-else' },
  });

  it('catches a history rewritten with valid hashes, which the chain alone accepts', async () => {
    const anchors = anchorsOf();
    const log = new AuditLog({ table, anchors });
    for (let i = 1; i <= 5; i++) await log.record('rewritten', tenantPartition('rewritten', 'orders~1'), [event(i)]);
    for (let i = 1; i <= 3; i++) await log.record('rewritten', tenantPartition('rewritten', 'access'), [event(i)]);
    expect(await anchors.anchor('rewritten')).toEqual({ streams: 2 });
    expect(await log.verify('rewritten')).toMatchObject({
      valid: true,
      entries: 8,
      anchors: { lines: 1, positions: 2, lastAnchoredAt: expect.any(String) },
    });

    await rewriteStream('rewritten', 'orders~1', [1, 2, 3, 4, 5].map(doctored));
    // The chain alone: every hash and link checks out.
    expect(await new AuditLog({ table }).verify('rewritten')).toMatchObject({ valid: true, entries: 8 });
    // Against the anchor: the entry anchored at seq 5 no longer has the hash anchored for it.
    expect(await new AuditLog({ table, anchors: anchorsOf() }).verify('rewritten')).toMatchObject({
      valid: false,
      firstBrokenAt: { stream: 'orders~1', seq: 5, reason: 'anchor-mismatch' },
    });
  });

  it('catches a cut history whose head was set back, and a whole stream removed', async () => {
    const anchors = anchorsOf();
    const log = new AuditLog({ table, anchors });
    for (let i = 1; i <= 5; i++) await log.record('cut', tenantPartition('cut', 'orders~2'), [event(i)]);
    await log.record('cut', tenantPartition('cut', 'access'), [event(1)]);
    await anchors.anchor('cut');
    // Entries 4 and 5 removed, the head pointed at entry 3: a consistent, shorter chain.
    await rewriteStream('cut', 'orders~2', [1, 2, 3].map(event));
    expect(await new AuditLog({ table }).verify('cut')).toMatchObject({ valid: true });
    expect(await log.verify('cut')).toMatchObject({
      valid: false,
      firstBrokenAt: { stream: 'orders~2', seq: 5, reason: 'anchored-entry-missing' },
    });

    await rewriteStream('cut', 'orders~2', []);
    expect(await new AuditLog({ table }).verify('cut')).toMatchObject({ valid: true, streams: 1 });
    expect(await log.verify('cut')).toMatchObject({
      valid: false,
      firstBrokenAt: { stream: 'orders~2', seq: 5, reason: 'anchored-entry-missing' },
    });
  });

  it('is not fooled by a forged anchor appended later, nor disturbed by garbage lines', async () => {
    const anchors = anchorsOf();
    const log = new AuditLog({ table, anchors });
    for (let i = 1; i <= 4; i++) await log.record('forged', tenantPartition('forged', 'orders~3'), [event(i)]);
    await anchors.anchor('forged');
    await rewriteStream('forged', 'orders~3', [1, 2, 3, 4].map(doctored));
    // The forger appends the rewritten head as an anchor (protected append writes allow adding lines).
    const head = await table.getEntity<{ seq: number; hash: string }>(
      tenantPartition('forged', 'orders~3'),
      'audit~head',
    );
    const blob = archive.getAppendBlobClient(`forged/${new Date().toISOString().slice(0, 7)}.ndjson`);
    const forgedLine = `${JSON.stringify({ v: 1, at: new Date().toISOString(), heads: { 'orders~3': [head.seq, head.hash] } })}\nnot an anchor\n`;
    await blob.appendBlock(forgedLine, Buffer.byteLength(forgedLine));
    expect(await log.verify('forged')).toMatchObject({
      valid: false,
      firstBrokenAt: { stream: 'orders~3', seq: 4, reason: 'anchor-mismatch' },
      anchors: { lines: 2, unreadableLines: 1 },
    });
  });

  it('appends only the streams that moved, once across instances, and no tenant data', async () => {
    const anchors = anchorsOf();
    const log = new AuditLog({ table, anchors });
    for (const stream of ['orders~4', 'orders~5', 'access'])
      await log.record('moving', tenantPartition('moving', stream), [event(1), event(2)]);
    expect(await anchors.anchor('moving')).toEqual({ streams: 3 });
    expect(await anchors.anchor('moving')).toEqual({ streams: 0 });
    await log.record('moving', tenantPartition('moving', 'access'), [event(3)]);
    expect(await anchors.anchor('moving')).toEqual({ streams: 1 });
    // Another instance reads what was anchored before it anchors.
    expect(await anchorsOf().anchor('moving')).toEqual({ streams: 0 });
    expect(await log.verify('moving')).toMatchObject({ valid: true, entries: 7, anchors: { lines: 2, positions: 4 } });

    const text = (
      await archive.getBlobClient(`moving/${new Date().toISOString().slice(0, 7)}.ndjson`).downloadToBuffer()
    ).toString();
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => Object.keys(l).sort())).toEqual([
      ['at', 'heads', 'v'],
      ['at', 'heads', 'v'],
    ]);
    expect(lines[1]?.heads).toEqual({ access: [3, expect.stringMatching(/^[0-9a-f]{64}$/)] });
    for (const secret of ['pseudonym-abc', 'lis', 'order-1', 'c-1']) expect(text).not.toContain(secret);
    // Another tenant's anchors are not this one's.
    expect((await anchors.read('movin')).lines).toBe(0);
  });

  it('anchors every realm of a run; one that fails fails the run only after the others are anchored', async () => {
    const log = new AuditLog({ table });
    for (const realm of ['run-a', 'run-b', 'run-c'])
      await log.record(realm, tenantPartition(realm, 'access'), [event(1)]);
    class StorageDownFor extends AuditAnchors {
      override anchor(realm: string) {
        return realm === 'run-b' ? Promise.reject(new Error('storage unavailable')) : super.anchor(realm);
      }
    }
    const flaky = new StorageDownFor({ table, container: archive });
    await expect(flaky.anchorAll(['run-a', 'run-b', 'run-c'])).rejects.toThrow(/anchoring failed for 1 realm/);
    const fresh = anchorsOf();
    expect((await fresh.read('run-a')).lines).toBe(1);
    expect((await fresh.read('run-b')).lines).toBe(0);
    expect((await fresh.read('run-c')).lines).toBe(1);
    // The next run catches up the realm that failed, and only it.
    expect(await fresh.anchorAll(['run-a', 'run-b', 'run-c'])).toEqual({ realms: 3, streams: 1 });
  });
});
