import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_OPERATIONS } from '../../lib/operations.js';
import { openApiPath } from '../../lib/http/openapi.js';
import type { Operation } from '../../lib/http/operation.js';
import { exampleOrder } from '../support/fixtures.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

const STRONG = 'a quiet meadow under autumn rain';
let host: RunningHost;
let auth: string;
let orderId: string;

/** Bodies that have broken parsers elsewhere: pollution keys, deep nesting, huge and odd strings. */
const nasty = fc.constantFrom(
  '{"__proto__":{"isAdmin":true}}',
  '{"constructor":{"prototype":{"x":1}}}',
  `{"a":"${'x'.repeat(200_000)}"}`,
  '['.repeat(5000) + ']'.repeat(5000),
  '{"a":1,"a":2}',
  '"\\ud800"',
  '{"x":"\\u0000\\u202e"}',
  'null',
  '1e309',
  '{"externalId":{"$gt":""}}',
  '',
  '{',
);
const body = fc.oneof(
  nasty,
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
);

function pathOf(op: Operation): string {
  const candidates = ['0'.repeat(24), '0'.repeat(16), 'no-such-role', 'S-1'];
  const names = op.route.match(/\{(\w+)\}/g)?.map((m) => m.slice(1, -1)) ?? [];
  const params: Record<string, string> = {};
  for (const name of names)
    params[name] =
      name === 'id' && op.route.startsWith('orders/')
        ? orderId
        : (candidates.find((c) => op.params?.safeParse({ ...params, [name]: c }).success) ?? candidates[0] ?? '');
  return openApiPath(op.route).replace(/\{(\w+)\}/g, (_, n: string) => encodeURIComponent(params[n] ?? ''));
}

async function orderCount(): Promise<number> {
  const r = (await (
    await fetch(`${host.apiBaseUrl}/orders?limit=200`, { headers: { authorization: auth } })
  ).json()) as { items: unknown[] };
  return r.items.length;
}

describe('fuzzing every JSON route from the OpenAPI operations', () => {
  beforeAll(async () => {
    host = await startHost();
    const created = admin(host.dataDir, [
      'tenant',
      'create',
      '--id',
      'lab-fuzz',
      '--name',
      'Fuzz',
      '--admin-username',
      'fuzz.admin',
      '--admin-email',
      'f@fuzz.example',
    ]);
    const initial = String((created.json?.admin as { initialPassword: string }).initialPassword);
    const login = async (password: string) =>
      (await (
        await fetch(`${host.apiBaseUrl}/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ tenant: 'lab-fuzz', username: 'fuzz.admin', password }),
        })
      ).json()) as { accessToken: string };
    const first = await login(initial);
    await fetch(`${host.apiBaseUrl}/auth/password`, {
      method: 'POST',
      headers: { authorization: `Bearer ${first.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ currentPassword: initial, newPassword: STRONG }),
    });
    auth = `Bearer ${(await login(STRONG)).accessToken}`;
    const order = (await (
      await fetch(`${host.apiBaseUrl}/orders`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify(exampleOrder()),
      })
    ).json()) as { id: string };
    orderId = order.id;
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('never answers 5xx, answers every refusal with problem+json, and a refused order stores nothing', async () => {
    const before = await orderCount();
    let created = 0;
    let requests = 0;
    const operations = ALL_OPERATIONS.filter((op) => op.body && op.id !== 'logout');
    for (const op of operations) {
      await fc.assert(
        fc.asyncProperty(body, async (raw) => {
          const response = await fetch(`${host.apiBaseUrl}${pathOf(op)}`, {
            method: op.method,
            headers: { authorization: auth, 'content-type': 'application/json' },
            body: raw,
          });
          requests++;
          const text = await response.text();
          expect({ op: op.id, status: response.status }).toMatchObject({
            status: expect.toSatisfy((s: number) => s < 500),
          });
          if (response.status >= 400) {
            // Problem+json, or the format's own error document where the operation declares one (FHIR).
            const mediaType = op.failures?.contentType.split(';')[0] ?? 'application/problem+json';
            expect(response.headers.get('content-type')?.split(';')[0]).toBe(mediaType);
            if (!op.failures) {
              const problem = JSON.parse(text) as { status: number; title: string };
              expect(problem.status).toBe(response.status);
            }
            expect(text).not.toMatch(/at .+\.(ts|js):\d+/);
          }
          if (op.id === 'createOrder' && response.status === 201) created++;
        }),
        { numRuns: 12, seed: 4711 },
      );
    }
    expect(requests).toBe(operations.length * 12);
    // Query strings of the listing routes: wrong types, huge values, injection attempts.
    const query = fc.dictionary(
      fc.constantFrom(
        'limit',
        'continuationToken',
        'status',
        'patientId',
        'externalId',
        'from',
        'to',
        'actor',
        'action',
        'entity',
        'x',
      ),
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.constantFrom("' or 1 eq 1 or '", '-1', '1e9', 'x'.repeat(5000), '%00'),
      ),
    );
    for (const op of ALL_OPERATIONS.filter((o) => o.query)) {
      await fc.assert(
        fc.asyncProperty(query, async (q) => {
          const response = await fetch(`${host.apiBaseUrl}${pathOf(op)}?${new URLSearchParams(q).toString()}`, {
            headers: { authorization: auth },
          });
          await response.arrayBuffer();
          expect({ op: op.id, status: response.status }).toMatchObject({
            status: expect.toSatisfy((s: number) => s < 500),
          });
        }),
        { numRuns: 25, seed: 4711 },
      );
    }
    expect(await orderCount()).toBe(before + created);
    expect(host.output()).not.toContain('"level":"error"');
  });
});
