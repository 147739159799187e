import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call as callHost, person, type Reply, tenantWithAdmin } from '../support/api.js';
import { type RunningHost, startHost } from '../support/local-host.js';

// The contract's evidence over HTTP. The sub-processor register: a change announced to every
// tenant, an objection with its reason (seen by operators, not by other tenants), the change in
// force only after the window, a withdrawn change never in force, many readers at the moment it
// takes effect. The TOM report: read from settings and state, so changing them changes it.
const WINDOW_SECONDS = 4;
const OPERATOR_PASSWORD = 'operator first password for the register tests';
let host: RunningHost;
let operator: string;
const admins: Record<string, string> = {};
let selfUser: string;
const call = (method: string, path: string, auth: string, body?: unknown): Promise<Reply> =>
  callHost(host, method, path, auth, body);

const azure = {
  name: 'Microsoft Ireland Operations Limited (Microsoft Azure)',
  purpose: 'Hosting',
  location: 'germanywestcentral',
  dataCategories: ['orders (encrypted)'],
  safeguards: 'EU region, encryption before storage',
};
const courier = {
  name: 'Pathology Courier GmbH',
  purpose: 'Transport of specimen data to reference labs',
  location: 'Germany',
  dataCategories: ['orders (encrypted)'],
  safeguards: 'DPA, TLS 1.3',
};

async function register(auth: string): Promise<Record<string, unknown>> {
  const got = await call('GET', '/sub-processors', auth);
  expect(got.status, JSON.stringify(got.body)).toBe(200);
  return got.body;
}

describe('sub-processors: announced, objected to, in force after the window', () => {
  beforeAll(async () => {
    host = await startHost({
      env: {
        LABVAULT_SUBPROCESSOR_OBJECTION_DAYS: String(WINDOW_SECONDS / 86_400),
        LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD,
        LABVAULT_REGION: 'germanywestcentral',
      },
    });
    operator = await person(host, 'operator', 'operator', OPERATOR_PASSWORD);
    for (const tenant of ['lab-sp-a', 'lab-sp-b']) admins[tenant] = await tenantWithAdmin(host, tenant);
    const user = await call('POST', '/users', admins['lab-sp-a']!, {
      username: 'reader',
      email: 'reader@lab-sp-a.example',
      roles: ['self'],
    });
    selfUser = await person(host, 'lab-sp-a', 'reader', String(user.body.initialPassword));
  }, 120_000);

  afterAll(async () => {
    await host?.kill();
  });

  it('starts with the hosting cloud in the deployed region, readable by anyone signed in', async () => {
    const body = await register(selfUser);
    const current = body.current as { version: number; items: { name: string; location: string }[] };
    expect(current.version).toBe(1);
    expect(current.items).toEqual([
      expect.objectContaining({ name: expect.stringContaining('Microsoft Azure'), location: 'germanywestcentral' }),
    ]);
    expect((await call('GET', '/sub-processors', '')).status).toBe(401);
  });

  it('announces a change to every tenant, takes objections in the window, and applies it only after', async () => {
    expect(
      (await call('POST', '/sub-processors/changes', admins['lab-sp-a']!, { summary: 'x', items: [azure] })).status,
    ).toBe(403);
    const announced = await call('POST', '/sub-processors/changes', operator, {
      summary: 'A courier for reference-lab transfers',
      items: [azure, courier],
    });
    expect(announced.status, JSON.stringify(announced.body)).toBe(201);
    const id = String(announced.body.id);
    expect(Date.parse(String(announced.body.effectiveAt)) - Date.parse(String(announced.body.announcedAt))).toBe(
      WINDOW_SECONDS * 1000,
    );
    expect((await call('POST', '/sub-processors/changes', operator, { summary: 'again', items: [azure] })).status).toBe(
      409,
    );

    for (const tenant of ['lab-sp-a', 'lab-sp-b']) {
      const notices = (await call('GET', '/notices', admins[tenant]!)).body.items as { kind: string; text: string }[];
      expect(notices.find((n) => n.kind === 'sub-processors')?.text).toContain(id);
    }

    const objection = await call('POST', `/sub-processors/changes/${id}/objections`, admins['lab-sp-a']!, {
      reason: 'Our contract excludes transfers to couriers.',
    });
    expect(objection.status, JSON.stringify(objection.body)).toBe(201);
    expect(
      (await call('POST', `/sub-processors/changes/${id}/objections`, admins['lab-sp-a']!, { reason: 'again' })).status,
    ).toBe(409);
    expect((await call('POST', `/sub-processors/changes/${id}/objections`, selfUser, { reason: 'me' })).status).toBe(
      403,
    );
    expect([403, 404]).toContain(
      (await call('POST', `/sub-processors/changes/${id}/objections`, operator, { reason: 'me' })).status,
    );
    expect(
      (
        await call('POST', '/sub-processors/changes/000000000000000000000000/objections', admins['lab-sp-b']!, {
          reason: 'x',
        })
      ).status,
    ).toBe(404);

    // Operators see the objection; the other tenant does not; nothing is in force yet.
    const seen = (body: Record<string, unknown>) =>
      (body.changes as { id: string; objections: { tenant: string; reason: string }[] }[]).find((c) => c.id === id)!
        .objections;
    expect(seen(await register(operator))).toEqual([
      expect.objectContaining({ tenant: 'lab-sp-a', reason: 'Our contract excludes transfers to couriers.' }),
    ]);
    expect(seen(await register(admins['lab-sp-b']!))).toEqual([]);
    expect(seen(await register(admins['lab-sp-a']!))).toHaveLength(1);
    expect(((await register(admins['lab-sp-b']!)).current as { version: number }).version).toBe(1);

    // After the window: many readers at once, one new version.
    await new Promise((r) => setTimeout(r, Date.parse(String(announced.body.effectiveAt)) - Date.now() + 300));
    const readers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => register(i % 2 ? operator : admins['lab-sp-b']!)),
    );
    for (const body of readers)
      expect(body.current).toMatchObject({ version: 2, changeId: id, items: [azure, courier] });
    const after = await register(operator);
    expect((after.versions as unknown[]).length).toBe(2);
    expect((after.changes as { id: string; status: string }[]).find((c) => c.id === id)?.status).toBe('effective');
    expect(
      (await call('POST', `/sub-processors/changes/${id}/objections`, admins['lab-sp-b']!, { reason: 'late' })).status,
    ).toBe(409);

    // Audited: the notice and the objection in the tenant's log.
    const audit = (await call('GET', '/audit?limit=200', admins['lab-sp-a']!)).body.items as { event: string }[];
    expect(audit.map((e) => e.event)).toEqual(
      expect.arrayContaining(['sub-processors.notice', 'sub-processors.objection']),
    );
  });

  it('never applies a withdrawn change', async () => {
    const announced = await call('POST', '/sub-processors/changes', operator, {
      summary: 'Drop the courier',
      items: [azure],
    });
    expect(announced.status).toBe(201);
    const id = String(announced.body.id);
    expect((await call('POST', `/sub-processors/changes/${id}/withdrawal`, admins['lab-sp-a']!)).status).toBe(403);
    const withdrawn = await call('POST', `/sub-processors/changes/${id}/withdrawal`, operator);
    expect(withdrawn.body).toMatchObject({ status: 'withdrawn' });
    expect((await call('POST', `/sub-processors/changes/${id}/withdrawal`, operator)).status).toBe(409);
    await new Promise((r) => setTimeout(r, WINDOW_SECONDS * 1000 + 300));
    const body = await register(operator);
    expect(body.current).toMatchObject({ version: 2, items: [azure, courier] });
  });

  it('reports the measures in effect, and a changed setting changes the report', async () => {
    const auth = admins['lab-sp-b']!;
    const before = await call('GET', '/compliance/toms', auth);
    expect(before.status, JSON.stringify(before.body)).toBe(200);
    expect(before.body).toMatchObject({
      realm: 'lab-sp-b',
      region: 'germanywestcentral',
      encryption: { keyProvider: 'local development key store' },
      retention: { policy: { ordersDays: 3650 } },
      authentication: {
        secondFactorRequired: false,
        passwords: {
          minCodePoints: { withoutSecondFactor: 15 },
          hash: { algorithm: 'Argon2id' },
          // Counted from the list the checks use (loaded on first use, not at start).
          blocklistEntries: expect.any(Number) as number,
        },
        lockout: { lockAfterFailures: 100 },
      },
      auditChain: { valid: true },
      subProcessors: { version: 2 },
    });
    expect(
      (before.body.authentication as { passwords: { blocklistEntries: number } }).passwords.blocklistEntries,
    ).toBeGreaterThanOrEqual(40_000);
    const keys = (before.body.encryption as { keys: { purpose: string; version: string; createdOn: string }[] }).keys;
    expect(keys.map((k) => k.purpose)).toEqual(['data', 'pseudonym']);
    for (const key of keys) expect(Date.parse(key.createdOn)).toBeLessThanOrEqual(Date.now());
    expect((before.body.storage as { sku: string | null }).sku).toEqual(expect.any(String));

    expect(
      (await call('PUT', '/retention', auth, { imagesDays: 3650, ordersDays: 3700, afterContractEndDays: 45 })).status,
    ).toBe(200);
    const after = await call('GET', '/compliance/toms', auth);
    expect(after.body).toMatchObject({ retention: { policy: { ordersDays: 3700, afterContractEndDays: 45 } } });
    expect((after.body.auditChain as { entries: number }).entries).toBeGreaterThan(
      (before.body.auditChain as { entries: number }).entries,
    );

    const page = await fetch(`${host.apiBaseUrl}/compliance/toms/print`, { headers: { authorization: auth } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain('AES-256-GCM');
    expect(html).toContain('3700');
    expect(html).toContain('Pathology Courier GmbH');
    expect(html).not.toContain('<script');

    // A new account is refused; the bootstrap operator (a security officer too) reads the operator realm's.
    expect((await call('GET', '/compliance/toms', selfUser)).status).toBe(403);
    expect([403, 404]).toContain((await call('GET', '/compliance/toms', operator)).status);
    const operators = await call('GET', '/security/toms', operator);
    expect(operators.body).toMatchObject({ realm: 'operator', retention: null, auditChain: { valid: true } });
    // The tenant's own setting: requiring a second factor shows at once (checked last: it binds the admin).
    expect((await call('PUT', '/security-policy', auth, { requireMfa: true })).status).toBe(200);
    expect((await call('GET', '/compliance/toms', admins['lab-sp-b']!)).body).toMatchObject({
      authentication: { secondFactorRequired: true },
    });
  });
});
