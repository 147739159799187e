import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_OPERATIONS } from '../../lib/operations.js';
import { openApiPath } from '../../lib/http/openapi.js';
import type { Operation } from '../../lib/http/operation.js';
import {
  OPERATOR_ROLES,
  type OperatorPermission,
  type Permission,
  PERMISSIONS,
} from '../../lib/identity/permissions.js';
import { exampleOrder } from '../support/fixtures.js';
import { type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
const BOOTSTRAP_PASSWORD = 'first-start-only-password-42';
const STRONG = 'a quiet meadow under autumn rain';

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  init: { auth?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.auth) headers.authorization = init.auth;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${host.apiBaseUrl}${path}`, {
    method,
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await response.text();
  // HL7 ACKs and LDT answers are not JSON: only their status matters here.
  const json = /json/.test(response.headers.get('content-type') ?? '');
  return {
    status: response.status,
    headers: response.headers,
    body: text && json ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

async function loginAs(
  tenant: string,
  username: string,
  password: string,
): Promise<{ auth: string; mustChangePassword: boolean }> {
  const r = await call('POST', '/auth/login', { body: { tenant, username, password } });
  expect(r.status).toBe(200);
  return { auth: `Bearer ${String(r.body.accessToken)}`, mustChangePassword: r.body.mustChangePassword === true };
}

/** Logs in with a one-time password, changes it, and logs in again with full rights. */
async function firstLogin(tenant: string, username: string, initialPassword: string): Promise<string> {
  const first = await loginAs(tenant, username, initialPassword);
  expect(first.mustChangePassword).toBe(true);
  expect((await call('GET', '/me', { auth: first.auth })).status).toBe(403);
  expect(
    (
      await call('POST', '/auth/password', {
        auth: first.auth,
        body: { currentPassword: initialPassword, newPassword: STRONG },
      })
    ).status,
  ).toBe(204);
  const again = await loginAs(tenant, username, STRONG);
  expect(again.mustChangePassword).toBe(false);
  return again.auth;
}

interface Caller {
  name: string;
  auth: string;
  kind: 'user' | 'integration' | 'operator';
  headers?: Record<string, string>;
  /** Tenant permissions that reach lab-a's data (undefined: no access to lab-a at all). */
  tenantPermissions?: readonly Permission[];
  operatorPermissions: readonly OperatorPermission[];
}

const callers: Caller[] = [];
const ids: Record<string, string> = {};

describe('identity and access over HTTP', () => {
  beforeAll(async () => {
    host = await startHost({ env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: BOOTSTRAP_PASSWORD } });
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('runs the first-start story: operator, tenant, admin, user, integration', async () => {
    const operator = await firstLogin('operator', 'operator', BOOTSTRAP_PASSWORD);
    const tenantA = await call('POST', '/tenants', {
      auth: operator,
      body: { id: 'lab-a', name: 'Lab A', admin: { username: 'admin.a', email: 'a@lab-a.example' } },
    });
    expect(tenantA.status).toBe(201);
    const tenantB = await call('POST', '/tenants', {
      auth: operator,
      body: { id: 'lab-b', name: 'Lab B', admin: { username: 'admin.b', email: 'b@lab-b.example' } },
    });
    expect(
      (
        await call('POST', '/tenants', {
          auth: operator,
          body: { id: 'lab-a', name: 'Again', admin: { username: 'x.y', email: 'x@y.example' } },
        })
      ).status,
    ).toBe(409);

    const adminA = await firstLogin(
      'lab-a',
      'admin.a',
      String((tenantA.body.admin as { initialPassword: string }).initialPassword),
    );
    const adminB = await firstLogin(
      'lab-b',
      'admin.b',
      String((tenantB.body.admin as { initialPassword: string }).initialPassword),
    );

    const newUser = await call('POST', '/users', {
      auth: adminA,
      body: { username: 'nora.new', email: 'nora@lab-a.example', name: 'Nora New' },
    });
    expect(newUser.status).toBe(201);
    ids.user = String(newUser.body.id);
    const nora = await firstLogin('lab-a', 'nora.new', String(newUser.body.initialPassword));
    const me = await call('GET', '/me', { auth: nora });
    expect(me.body).toMatchObject({
      username: 'nora.new',
      roles: ['self'],
      permissions: ['profile:read', 'profile:update'],
    });
    expect((await call('PATCH', '/me', { auth: nora, body: { name: 'Nora N.' } })).body).toMatchObject({
      name: 'Nora N.',
    });
    expect((await call('PATCH', `/users/${ids.user}`, { auth: nora, body: { roles: ['tenant-admin'] } })).status).toBe(
      403,
    );
    expect((await call('GET', '/orders', { auth: nora })).status).toBe(403);

    expect(
      (
        await call('PUT', '/roles/order-viewer', {
          auth: adminA,
          body: { permissions: ['orders:read', 'profile:read'] },
        })
      ).status,
    ).toBe(201);
    const viewerUser = await call('POST', '/users', {
      auth: adminA,
      body: { username: 'vic.viewer', email: 'v@lab-a.example', roles: ['order-viewer'] },
    });
    const viewer = await firstLogin('lab-a', 'vic.viewer', String(viewerUser.body.initialPassword));

    const integration = await call('POST', '/integrations', {
      auth: adminA,
      body: { name: 'LIS', permissions: ['orders:create', 'orders:read'], currentPassword: STRONG },
    });
    expect(integration.status).toBe(201);
    const apiKey = `ApiKey ${String(integration.body.apiKey)}`;
    const order = await call('POST', '/orders', { auth: apiKey, body: exampleOrder() });
    expect(order.status).toBe(201);
    ids.order = String(order.body.id);

    const plainOps = await call('POST', '/operators', {
      auth: operator,
      body: { username: 'ops.plain', email: 'ops@vendor.example', roles: ['operator'] },
    });
    expect(plainOps.status).toBe(201);
    const opsPlain = await firstLogin('operator', 'ops.plain', String(plainOps.body.initialPassword));
    const request = await call('POST', '/access-requests', {
      auth: opsPlain,
      body: { tenant: 'lab-a', reason: 'ticket 4711', minutes: 30, permissions: ['orders:read'] },
    });
    expect(request.status).toBe(201);
    ids.accessRequest = String(request.body.id);
    expect(
      (await call('GET', `/orders/${ids.order}`, { auth: opsPlain, headers: { 'x-labvault-tenant': 'lab-a' } })).status,
    ).toBe(404);
    expect(
      (await call('POST', `/access-requests/${ids.accessRequest}/approval`, { auth: adminB, body: { approve: true } }))
        .status,
    ).toBe(404);
    expect(
      (await call('POST', `/access-requests/${ids.accessRequest}/approval`, { auth: adminA, body: { approve: true } }))
        .body,
    ).toMatchObject({ status: 'approved' });

    callers.push(
      { name: 'tenant admin', kind: 'user', auth: adminA, tenantPermissions: PERMISSIONS, operatorPermissions: [] },
      {
        name: 'new user (self)',
        kind: 'user',
        auth: nora,
        tenantPermissions: ['profile:read', 'profile:update'],
        operatorPermissions: [],
      },
      {
        name: 'custom role',
        kind: 'user',
        auth: viewer,
        tenantPermissions: ['orders:read', 'profile:read'],
        operatorPermissions: [],
      },
      {
        name: 'integration key',
        kind: 'integration',
        auth: apiKey,
        tenantPermissions: ['orders:create', 'orders:read'],
        operatorPermissions: [],
      },
      {
        name: 'operator without grant',
        kind: 'operator',
        auth: operator,
        headers: { 'x-labvault-tenant': 'lab-a' },
        operatorPermissions: Object.values(OPERATOR_ROLES).flat(),
      },
      {
        name: 'operator with grant',
        kind: 'operator',
        auth: opsPlain,
        headers: { 'x-labvault-tenant': 'lab-a' },
        tenantPermissions: ['orders:read'],
        operatorPermissions: OPERATOR_ROLES.operator ?? [],
      },
      {
        name: 'admin of another tenant',
        kind: 'user',
        auth: adminB,
        tenantPermissions: PERMISSIONS,
        operatorPermissions: [],
      },
    );
  });

  it('answers every route with exactly the allowed set for each kind of principal', async () => {
    const fakeParam = (op: Operation): Record<string, string> => {
      if (!op.params) return {};
      for (const candidate of [
        '0'.repeat(32),
        '0'.repeat(24),
        '0'.repeat(16),
        'no-such-role',
        '20260101-none',
        `${'0'.repeat(24)}-1`,
        `${'0'.repeat(32)}-1`,
      ]) {
        const params = Object.fromEntries(op.route.match(/\{(\w+)\}/g)?.map((m) => [m.slice(1, -1), candidate]) ?? []);
        if (op.params.safeParse(params).success) return params;
      }
      throw new Error(`no parameter value fits ${op.id}`);
    };
    // Logging out ends the session the rest of the matrix needs, so it goes last.
    const operations = [...ALL_OPERATIONS].sort((a, b) => Number(a.id === 'logout') - Number(b.id === 'logout'));
    const mismatches: string[] = [];
    let checked = 0;
    for (const caller of callers) {
      for (const op of operations) {
        const params = fakeParam(op);
        const path = openApiPath(op.route).replace(/\{(\w+)\}/g, (_, name: string) => params[name] ?? '');
        const reply = await call(op.method, path, {
          auth: caller.auth,
          ...(caller.headers ? { headers: caller.headers } : {}),
        });
        checked++;
        if (reply.status >= 500) mismatches.push(`${caller.name} ${op.id}: ${reply.status}`);
        const access = op.access;
        let expected: 'allowed' | 403 | 404 | 'any';
        if (access === 'public') expected = 'any';
        else if (access === 'authenticated') expected = caller.kind === 'integration' ? 'any' : 'allowed';
        else if (access === 'operator') expected = caller.kind === 'operator' ? 'allowed' : 403;
        else if ('permission' in access) {
          if (!caller.tenantPermissions) expected = 404;
          else expected = caller.tenantPermissions.includes(access.permission) ? 'allowed' : 403;
        } else expected = caller.operatorPermissions.includes(access.operatorPermission) ? 'allowed' : 403;
        const ok =
          expected === 'any'
            ? reply.status !== 401
            : expected === 'allowed'
              ? reply.status !== 401 && reply.status !== 403
              : reply.status === expected;
        if (!ok) mismatches.push(`${caller.name} ${op.method} ${path}: got ${reply.status}, expected ${expected}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBe(callers.length * ALL_OPERATIONS.length);
  });

  it("answers another tenant's ids with 404", async () => {
    const adminB = callers.find((c) => c.name === 'admin of another tenant');
    const adminA = await loginAs('lab-a', 'admin.a', STRONG);
    expect((await call('GET', `/orders/${ids.order}`, { auth: adminA.auth })).status).toBe(200);
    expect((await call('GET', `/orders/${ids.order}`, { auth: adminB?.auth ?? '' })).status).toBe(401); // logged out by the matrix
    const b = await loginAs('lab-b', 'admin.b', STRONG);
    expect((await call('GET', `/orders/${ids.order}`, { auth: b.auth })).status).toBe(404);
    expect((await call('GET', `/users/${ids.user}`, { auth: b.auth })).status).toBe(404);
    expect((await call('PATCH', `/users/${ids.user}`, { auth: b.auth, body: { name: 'Hijack' } })).status).toBe(404);
    expect((await call('DELETE', `/users/${ids.user}`, { auth: b.auth })).status).toBe(404);
    expect((await call('GET', `/users/${ids.user}`, { auth: adminA.auth })).status).toBe(200);
  });

  it("logs each call made under a staff grant in the tenant's audit log, with the reason", async () => {
    const ops = await loginAs('operator', 'ops.plain', STRONG);
    expect(
      (await call('GET', `/orders/${ids.order}`, { auth: ops.auth, headers: { 'x-labvault-tenant': 'lab-a' } })).status,
    ).toBe(200);
    expect((await call('GET', `/orders/${ids.order}`, { auth: ops.auth })).status).toBe(404);
    const adminA = await loginAs('lab-a', 'admin.a', STRONG);
    const audit = await call('GET', '/audit?action=staff-access.call&limit=200', { auth: adminA.auth });
    const entries = audit.body.items as { actor: { type: string }; purpose: string; entity: { id: string } }[];
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((e) => e.actor.type === 'operator' && e.purpose === 'ticket 4711')).toBe(true);
    expect(entries.some((e) => e.entity.id === 'getOrder')).toBe(true);
    expect((await call('GET', '/audit/verify', { auth: adminA.auth })).body).toMatchObject({ valid: true });
  });

  it('prints no password, token, key or hash in any log line', () => {
    const output = host.output();
    for (const secret of [STRONG, BOOTSTRAP_PASSWORD, 'Bearer ey', 'lvk_lab-a_', 'lvr_', '$argon2id$'])
      expect(output).not.toContain(secret);
  });
});
