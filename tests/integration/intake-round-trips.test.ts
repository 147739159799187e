import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransactionAction } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommitResult } from '../../lib/audit/audit-log.js';
import { auditEvent } from '../../lib/audit/events.js';
import { TransactionFailedError } from '../../lib/storage/transaction.js';
import { API_KEY_CACHE_MS } from '../../lib/identity/integrations.js';
import { createLogger } from '../../lib/observability/logger.js';
import { RESTRICTIONS_CACHE_MS } from '../../lib/subjects/restrictions.js';
import { useAzurite } from '../support/azurite.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { exampleOrder } from '../support/fixtures.js';
import { problemOf } from '../support/problems.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

// Two instances of the app on one storage account: `first` talks to Azurite through a proxy that
// counts its requests, `second` directly (as another host or the admin CLI would).
const azurite = useAzurite();
let proxy: FaultProxy;
let first: TestServices;
let second: TestServices;
const meta = { actor: operatorActor, correlationId: 'round-trips' };
const quiet = createLogger(() => undefined);

/** Table requests `first` made while `work` ran, by kind (`table GET tenantdata(key) integrations`…). */
async function tableRequestsDuring(work: () => Promise<unknown>): Promise<Map<string, number>> {
  const before = proxy.requestsByKind();
  await work();
  const out = new Map<string, number>();
  for (const [kind, n] of proxy.requestsByKind())
    if (kind.startsWith('table ') && n > (before.get(kind) ?? 0)) out.set(kind, n - (before.get(kind) ?? 0));
  return out;
}
const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

beforeAll(async () => {
  proxy = await startFaultProxy(azurite.instance.ports);
  // One key store for both, as instances share Key Vault.
  const keyStore = mkdtempSync(join(tmpdir(), 'labvault-round-trips-'));
  second = await testServices(azurite.connectionString, undefined, keyStore);
  first = await testServices(proxy.connectionString, undefined, keyStore);
  await second.tenants.create('lab-rt', 'Round trips', meta);
});
afterAll(async () => {
  await proxy.close();
});

describe('API keys: verified once per second, revoked for every instance when the revoke call returns', () => {
  it('answers a verified key from memory, and refuses it on every instance once a revocation returns', async () => {
    const created = await second.integrations.create('lab-rt', 'lis', ['orders:create'], meta);
    const reads = await tableRequestsDuring(async () => {
      await first.integrations.authenticate(created.apiKey, quiet, 'c1');
      await first.integrations.authenticate(created.apiKey, quiet, 'c2');
    });
    expect(reads.get('table GET tenantdata(key) integrations')).toBe(1);

    // Revoked through the other instance: `first` still holds the key as verified.
    const revokeStarted = performance.now();
    await second.integrations.revoke('lab-rt', created.id, meta);
    expect(performance.now() - revokeStarted).toBeGreaterThanOrEqual(API_KEY_CACHE_MS);
    expect((await problemOf(first.integrations.authenticate(created.apiKey, quiet, 'c3'))).status).toBe(401);
    expect((await problemOf(second.integrations.authenticate(created.apiKey, quiet, 'c4'))).status).toBe(401);
  });

  it('keeps accepting nothing a cached key does not prove: another secret for the same key id is read and refused', async () => {
    const created = await second.integrations.create('lab-rt', 'lis-2', ['orders:create'], meta);
    await first.integrations.authenticate(created.apiKey, quiet, 'c1');
    const forged = created.apiKey.replace(/.{8}$/, '00000000');
    const reads = await tableRequestsDuring(async () => {
      expect((await problemOf(first.integrations.authenticate(forged, quiet, 'c2'))).status).toBe(401);
    });
    expect(reads.get('table GET tenantdata(key) integrations')).toBe(1);
  });

  it('reads the key again once its entry is a cache lifetime old', async () => {
    const created = await second.integrations.create('lab-rt', 'lis-3', ['orders:create'], meta);
    await first.integrations.authenticate(created.apiKey, quiet, 'c1');
    await new Promise((r) => setTimeout(r, API_KEY_CACHE_MS + 50));
    const reads = await tableRequestsDuring(() => first.integrations.authenticate(created.apiKey, quiet, 'c2'));
    expect(reads.get('table GET tenantdata(key) integrations')).toBe(1);
  });
  it('reads a key once for fifty requests that miss together', async () => {
    const created = await second.integrations.create('lab-rt', 'lis-4', ['orders:create'], meta);
    const reads = await tableRequestsDuring(() =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) => first.integrations.authenticate(created.apiKey, quiet, `c${i}`)),
      ),
    );
    expect(reads.get('table GET tenantdata(key) integrations')).toBe(1);
  });

  it('refreshes a key in use in the background, and still stops it once a revocation returns', async () => {
    const created = await second.integrations.create('lab-rt', 'lis-5', ['orders:create'], meta);
    await first.integrations.authenticate(created.apiKey, quiet, 'c1');
    // In the entry's second half-life: answered from memory, read again in the background.
    await new Promise((r) => setTimeout(r, API_KEY_CACHE_MS * 0.6));
    const reads = await tableRequestsDuring(async () => {
      await first.integrations.authenticate(created.apiKey, quiet, 'c2');
      await new Promise((r) => setTimeout(r, 100));
    });
    expect(reads.get('table GET tenantdata(key) integrations')).toBe(1);
    await second.integrations.revoke('lab-rt', created.id, meta);
    expect((await problemOf(first.integrations.authenticate(created.apiKey, quiet, 'c3'))).status).toBe(401);
  });
});

describe('an order costs one transaction; with an Idempotency-Key, one more insert', () => {
  it('stores an order in one table request once its partition’s audit head is known', async () => {
    // Warm every shard's audit head (an order id starts with its shard), then count fresh orders.
    const shards = new Set<string>();
    for (let i = 0; shards.size < 16; i++)
      shards.add(
        (await first.orders.create('lab-rt', exampleOrder({ externalId: `RT-W-${i}` }), meta)).order.id[0] ?? '',
      );
    const started = performance.now();
    const requests = await tableRequestsDuring(async () => {
      for (let i = 0; i < 10; i++) await first.orders.create('lab-rt', exampleOrder({ externalId: `RT-${i}` }), meta);
    });
    const elapsed = performance.now() - started;
    // Besides the transactions: the tenant's restriction markers, read once per cache lifetime begun
    // (not per order), so a slow machine sees one or two queries and a fast one none.
    const { 'table GET tenantdata()': restrictionQueries = 0, ...rest } = Object.fromEntries(requests);
    expect(rest).toEqual({ 'table POST $batch': 10 });
    expect(restrictionQueries).toBeLessThanOrEqual(Math.floor(elapsed / RESTRICTIONS_CACHE_MS) + 1);
  });

  it('reserves a new Idempotency-Key with one insert, without reading it first', async () => {
    const requests = await tableRequestsDuring(async () => {
      for (let i = 0; i < 10; i++)
        await first.orders.create('lab-rt', exampleOrder({ externalId: `RT-IDEM-${i}` }), meta, `rt-key-${i}`);
    });
    expect(requests.get('table POST tenantdata')).toBe(10);
    expect(requests.get('table POST $batch')).toBe(10);
    expect(total(requests)).toBeLessThanOrEqual(20 + 16); // at most one audit head read per shard not yet seen
  });

  it('refuses a reused key whose body names other externalIds (other shards), and stores none of them', async () => {
    const original = await first.orders.create('lab-rt', exampleOrder({ externalId: 'RT-ORIG' }), meta, 'rt-reused');
    for (let i = 0; i < 5; i++) {
      const externalId = `RT-OTHER-${i}`;
      const refused = await problemOf(first.orders.create('lab-rt', exampleOrder({ externalId }), meta, 'rt-reused'));
      expect(refused.status).toBe(409);
      expect((await second.orders.list('lab-rt', { externalId, limit: 10 }, meta)).items).toEqual([]);
    }
    const replay = await first.orders.create('lab-rt', exampleOrder({ externalId: 'RT-ORIG' }), meta, 'rt-reused');
    expect(replay.replayed).toBe(true);
    expect(replay.order.id).toBe(original.order.id);
  });
});

describe('audit group commit: commits to one partition that arrive together share a transaction', () => {
  const event = (n: number) =>
    auditEvent('test.write', 'C', { type: 'Test', id: `t-${n}` }, meta, { purpose: 'testing' });

  it('commits fifty at once in fewer transactions, each with its own entry, the chain intact', async () => {
    const partitionKey = 'lab-rt~group~0';
    let results: CommitResult[] = [];
    const requests = await tableRequestsDuring(async () => {
      results = await Promise.all(
        Array.from({ length: 50 }, (_, n) =>
          first.audit.commit('lab-rt', partitionKey, () => [['create', { partitionKey, rowKey: `thing~${n}`, n }]], [
            event(n),
          ]),
        ),
      );
    });
    expect(requests.get('table POST $batch')).toBeLessThan(50);
    const seqs = results.map((r) => r.entries[0]?.seq ?? 0).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    for (const [n, r] of results.entries()) {
      expect(r.entries[0]?.entity.id).toBe(`t-${n}`);
      expect(r.domainEtags).toHaveLength(1);
      expect(r.domainEtags[0]).toBeTruthy();
    }
    expect((await second.audit.verify('lab-rt')).valid).toBe(true);
  });

  it('never puts two commits of the same row in one transaction: the second meets the first (409), not a 400', async () => {
    const partitionKey = 'lab-rt~group~2';
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, (_, n) =>
        first.audit.commit('lab-rt', partitionKey, () => [['create', { partitionKey, rowKey: 'same', n }]], [event(n)]),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes)
      if (o.status === 'rejected') {
        expect(o.reason).toBeInstanceOf(TransactionFailedError);
        expect((o.reason as TransactionFailedError).statusCode).toBe(409);
      }
    expect((await second.audit.verify('lab-rt')).valid).toBe(true);
  });

  it('answers only the member whose own action fails, with its own index; the rest commit', async () => {
    const partitionKey = 'lab-rt~group~1';
    await second.audit.commit('lab-rt', partitionKey, () => [['create', { partitionKey, rowKey: 'taken', n: 0 }]], [
      event(0),
    ]);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, n) =>
        first.audit.commit(
          'lab-rt',
          partitionKey,
          () => [
            ['create', { partitionKey, rowKey: `free~${n}`, n }],
            // The seventh also creates a row that exists.
            ...(n === 6 ? ([['create', { partitionKey, rowKey: 'taken', n }]] as TransactionAction[]) : []),
          ],
          [event(n)],
        ),
      ),
    );
    const failed = outcomes.flatMap((o, n) => (o.status === 'rejected' ? [{ n, reason: o.reason as unknown }] : []));
    expect(failed.map((f) => f.n)).toEqual([6]);
    expect(failed[0]?.reason).toBeInstanceOf(TransactionFailedError);
    expect((failed[0]?.reason as TransactionFailedError).statusCode).toBe(409);
    expect((failed[0]?.reason as TransactionFailedError).failedIndex).toBe(1);
    const rows: string[] = [];
    for await (const row of second.storage
      .table('tenantdata')
      .listEntities({ queryOptions: { filter: `PartitionKey eq '${partitionKey}'` } }))
      rows.push(String(row.rowKey));
    expect(rows.filter((r) => r.startsWith('free~')).sort()).toEqual(
      Array.from({ length: 12 }, (_, n) => `free~${n}`)
        .filter((r) => r !== 'free~6')
        .sort(),
    );
    const verified = await second.audit.verify('lab-rt');
    expect(verified.valid).toBe(true);
  });
});
