// Pages cost what a page costs: the audit log merged page by page at 20,000 entries, order pages of
// 200, continuation tokens that only work where they were issued, budgets on expensive routes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEventInput } from '../../lib/audit/types.js';
import { recordFigures } from '../reliability/support.js';
import { call as api, person as login, STRONG } from '../support/api.js';
import { exampleOrder } from '../support/fixtures.js';
import { type RunningHost, startHost } from '../support/local-host.js';
import { TABLES } from '../../lib/storage/clients.js';
import { type TestServices, testServices } from '../support/services.js';

const OPERATOR_PASSWORD = 'first-start-only-password-42';
const ENTRIES = 20_000;
let host: RunningHost;
let s: TestServices;
let admin: string;
let otherAdmin: string;
let operator: string;
const call = (method: string, path: string, auth: string, body?: unknown) => api(host, method, path, auth, body);

async function tenantWithAdmin(operator: string, id: string): Promise<string> {
  const created = await call('POST', '/tenants', operator, {
    id,
    name: id,
    admin: { username: 'admin', email: `a@${id}.example` },
  });
  return login(host, id, 'admin', String((created.body.admin as { initialPassword: string }).initialPassword));
}

describe('paging', () => {
  beforeAll(async () => {
    host = await startHost({ env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD } });
    // LabVault's own services on the host's storage and key store seed what would take long over HTTP.
    s = await testServices(host.storageConnectionString, undefined, host.dataDir);
    operator = await login(host, 'operator', 'operator', OPERATOR_PASSWORD);
    admin = await tenantWithAdmin(operator, 'lab-pages');
    otherAdmin = await tenantWithAdmin(operator, 'lab-other');
  }, 120_000);

  afterAll(async () => {
    await host?.kill();
  });

  it(`pages through ${ENTRIES} audit entries in order, a page at a time, with the time per page reported`, async () => {
    const actor = { type: 'integration' as const, id: 'seeding-lis' };
    const batch = (n: number): AuditEventInput[] =>
      Array.from({ length: n }, (_, i) => ({
        event: 'order.read',
        action: 'R',
        outcome: 'success',
        actor: i % 10 === 0 ? { ...actor, id: 'the-rare-actor' } : actor,
        entity: { type: 'Order', id: `o-${i}` },
        purpose: 'seeding',
      }));
    const shards = Array.from({ length: 16 }, (_, i) => `lab-pages~orders~${i.toString(16)}`);
    let seeded = 0;
    await Promise.all(
      shards.map(async (partition, i) => {
        for (let n = 0; n < ENTRIES / shards.length; n += 250) {
          const entries = await s.audit.record('lab-pages', partition, batch(250));
          seeded += entries.length;
          if (i === 0 && n === 0) expect(entries).toHaveLength(250);
        }
      }),
    );
    expect(seeded).toBe(ENTRIES);
    const total = (await s.audit.verify('lab-pages')).entries;
    const positions: string[] = [];
    const pageMs: number[] = [];
    let token: string | undefined;
    let last = '';
    do {
      const t0 = performance.now();
      const page = await call('GET', `/audit?limit=200${token ? `&continuationToken=${token}` : ''}`, admin);
      pageMs.push(performance.now() - t0);
      expect(page.status).toBe(200);
      for (const e of page.body.items as { at: string; stream: string; seq: number }[]) {
        const position = `${e.at}|${e.stream}|${String(e.seq).padStart(12, '0')}`;
        expect(position > last, `${position} after ${last}`).toBe(true);
        last = position;
        positions.push(position);
      }
      token = page.body.continuationToken as string | undefined;
    } while (token);
    // Every entry of the log once, in order (the listing audits nothing: it is no read of patient data).
    expect(positions.length).toBe(total);
    expect(new Set(positions).size).toBe(total);
    const sorted = [...pageMs].sort((a, b) => a - b);
    const figures = {
      entries: total,
      pages: pageMs.length,
      medianPageMs: Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0),
      maxPageMs: Math.round(sorted.at(-1) ?? 0),
      firstPageMs: Math.round(pageMs[0] ?? 0),
    };
    recordFigures('auditPaging', figures);
    // A filter is applied by storage, per stream: only the rare actor's entries, still in order.
    const rare = await call('GET', '/audit?limit=200&actor=the-rare-actor', admin);
    expect((rare.body.items as { actor: { id: string } }[]).every((e) => e.actor.id === 'the-rare-actor')).toBe(true);
    expect((rare.body.items as unknown[]).length).toBe(200);
  }, 600_000);

  it('answers order pages of 200 (the read-audit spans several transactions)', async () => {
    const key = `ApiKey ${String((await call('POST', '/integrations', admin, { name: 'LIS', permissions: ['orders:create', 'orders:read'], currentPassword: STRONG })).body.apiKey)}`;
    const meta = { actor: { type: 'system' as const, id: 'seed' }, correlationId: 'seed' };
    for (let i = 0; i < 230; i += 10)
      await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          s.orders.create('lab-pages', exampleOrder({ externalId: `PAGE-${i + j}` }), meta),
        ),
      );
    const first = await call('GET', '/orders?limit=200', key);
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(200);
    const second = await call(
      'GET',
      `/orders?limit=200&continuationToken=${String(first.body.continuationToken)}`,
      key,
    );
    expect(second.body.items).toHaveLength(30);
    const reads = await call('GET', '/audit?action=order.list&limit=200', admin);
    expect((reads.body.items as unknown[]).length).toBe(200);
    expect((await s.audit.verify('lab-pages')).valid).toBe(true);
  });

  it('refuses continuation tokens that were changed, forged, or issued for another query or tenant, with 400', async () => {
    const first = await call('GET', '/orders?limit=5', admin);
    const token = String(first.body.continuationToken);
    expect((await call('GET', `/orders?limit=5&continuationToken=${token}`, admin)).status).toBe(200);
    const forged = [
      Buffer.from(JSON.stringify({ t: 'garbage!!' })).toString('base64url'),
      `${Buffer.from(JSON.stringify({ c: '1!' })).toString('base64url')}.${token.split('.')[1]}`,
      `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
      'not even base64 ***',
      `${token}.extra`,
    ];
    for (const t of forged) {
      const reply = await call('GET', `/orders?limit=5&continuationToken=${encodeURIComponent(t)}`, admin);
      expect(reply.status, t).toBe(400);
      expect(reply.body.type).toBe('https://labvault.example/problems/400');
    }
    // Another query, another tenant, another route: the same genuine token is refused.
    expect((await call('GET', `/orders?limit=5&status=received&continuationToken=${token}`, admin)).status).toBe(400);
    expect((await call('GET', `/orders?limit=5&continuationToken=${token}`, otherAdmin)).status).toBe(400);
    expect((await call('GET', `/audit?limit=5&continuationToken=${token}`, admin)).status).toBe(400);
    const auditPage = await call('GET', '/audit?limit=5', admin);
    expect(
      (await call('GET', `/audit?limit=5&actor=x&continuationToken=${String(auditPage.body.continuationToken)}`, admin))
        .status,
    ).toBe(400);
  });

  it("pages the operators' tenant list by id, deleted tenants included, and refuses a changed token", async () => {
    for (const id of ['lab-pg-a', 'lab-pg-b', 'lab-pg-c', 'lab-pg-d', 'lab-pg-e'])
      expect(
        (
          await call('POST', '/tenants', operator, {
            id,
            name: id,
            admin: { username: 'admin', email: `a@${id}.example` },
          })
        ).status,
      ).toBe(201);
    const contractEndsAt = new Date(Date.now() + 90 * 86_400_000).toISOString();
    for (const id of ['lab-pg-b', 'lab-pg-d'])
      expect((await call('POST', `/tenants/${id}/termination`, operator, { contractEndsAt })).status).toBe(202);
    // lab-pg-d as after its deletion: the directory entry gone, the lifecycle kept.
    await s.storage.table(TABLES.platform).deleteEntity('tenant', 'lab-pg-d');

    const whole = await call('GET', '/tenants?limit=200', operator);
    expect(whole.body.continuationToken).toBeUndefined();
    const all = whole.body.items as { id: string; name: string | null; lifecycle: { status: string } }[];
    const paged: typeof all = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await call(
        'GET',
        `/tenants?limit=2${token ? `&continuationToken=${encodeURIComponent(token)}` : ''}`,
        operator,
      );
      expect(page.status).toBe(200);
      const items = page.body.items as typeof all;
      expect(items.length).toBeLessThanOrEqual(2);
      paged.push(...items);
      token = page.body.continuationToken as string | undefined;
      pages++;
    } while (token && pages < 20);
    expect(paged).toEqual(all);
    expect(all.map((t) => t.id)).toEqual([...new Set(all.map((t) => t.id))].sort());
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(all.length / 2));
    expect(all.find((t) => t.id === 'lab-pg-b')?.lifecycle.status).toBe('scheduled');
    expect(all.find((t) => t.id === 'lab-pg-d')).toMatchObject({ name: null, lifecycle: { status: 'scheduled' } });

    const first = await call('GET', '/tenants?limit=2', operator);
    const issued = String(first.body.continuationToken);
    const changed = `${issued.slice(0, -1)}${issued.endsWith('A') ? 'B' : 'A'}`;
    expect((await call('GET', `/tenants?continuationToken=${encodeURIComponent(changed)}`, operator)).status).toBe(400);
    expect((await call('GET', `/orders?continuationToken=${encodeURIComponent(issued)}`, admin)).status).toBe(400);
  });

  it('limits expensive routes per principal with 429 and Retry-After', async () => {
    // 120 per minute, in fixed windows: the first refusal comes after 120 calls, and before 240
    // (a window may turn over during the run).
    let calls = 0;
    let retryAfter = '';
    for (; calls < 250; calls++) {
      const reply = await fetch(`${host.apiBaseUrl}/audit?limit=1`, { headers: { authorization: otherAdmin } });
      await reply.arrayBuffer();
      if (reply.status === 429) {
        retryAfter = reply.headers.get('retry-after') ?? '';
        break;
      }
      expect(reply.status).toBe(200);
    }
    expect(calls).toBeGreaterThanOrEqual(120);
    expect(calls).toBeLessThan(240);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    // Another principal of the same tenant has its own budget.
    const key = `ApiKey ${String((await call('POST', '/integrations', otherAdmin, { name: 'auditor', permissions: ['audit:read', 'exports:start'], currentPassword: STRONG })).body.apiKey)}`;
    expect((await call('GET', '/audit?limit=1', key)).status).toBe(200);
    const exports: number[] = [];
    for (let i = 0; i < 11; i++) exports.push((await call('POST', '/exports', key, { format: 'ndjson' })).status);
    expect(exports[0]).toBe(202);
    expect(exports.slice(1, 10).every((x) => x === 409)).toBe(true); // one export at a time
    expect(exports[10]).toBe(429);
  });
});
