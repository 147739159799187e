// Attacks on accounts, as an insider or the holder of a stolen token would try them, over HTTP:
// sessions that outlive a credential change, sensitive changes with a token alone, granting more
// than one holds, concurrent password guessing, forged refresh tokens, trivial long passwords,
// download links that outlive a staff grant.
import * as OTPAuth from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { admin as adminCli, type RunningHost, startHost } from '../support/local-host.js';

const OPERATOR_PASSWORD = 'first-start-only-password-42';
const STRONG = 'a quiet meadow under autumn rain';
const OTHER = 'seven lanterns drift past the harbour wall';
let host: RunningHost;
let operator: string;
let admin: string;

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/**
 * A call from a given client address: the host is told 127.0.0.1 is a trusted proxy, so the
 * X-Forwarded-For entry the "proxy" (this test) adds is the client the host counts.
 */
async function call(
  method: string,
  path: string,
  init: { auth?: string; body?: unknown; from?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { 'x-forwarded-for': init.from ?? '198.51.100.1', ...(init.headers ?? {}) };
  if (init.auth) headers.authorization = init.auth;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${host.apiBaseUrl}${path}`, {
    method,
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { raw: text };
  }
  return { status: response.status, headers: response.headers, body };
}

async function login(
  tenant: string,
  username: string,
  password: string,
  extra: Record<string, string> = {},
): Promise<{ access: string; refresh: string }> {
  const r = await call('POST', '/auth/login', { body: { tenant, username, password, ...extra } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return { access: `Bearer ${String(r.body.accessToken)}`, refresh: String(r.body.refreshToken) };
}

async function firstLogin(tenant: string, username: string, initial: string, password = STRONG): Promise<string> {
  const first = await login(tenant, username, initial);
  expect(
    (
      await call('POST', '/auth/password', {
        auth: first.access,
        body: { currentPassword: initial, newPassword: password },
      })
    ).status,
  ).toBe(204);
  return (await login(tenant, username, password)).access;
}

async function newUser(username: string, roles: string[], by = admin): Promise<{ id: string; auth: string }> {
  const created = await call('POST', '/users', {
    auth: by,
    body: { username, email: `${username}@lab-sec.example`, roles },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return {
    id: String(created.body.id),
    auth: await firstLogin('lab-sec', username, String(created.body.initialPassword)),
  };
}

describe('accounts under attack, over HTTP', () => {
  beforeAll(async () => {
    host = await startHost({
      env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD, LABVAULT_TRUSTED_PROXIES: '127.0.0.1' },
    });
    operator = await firstLogin('operator', 'operator', OPERATOR_PASSWORD);
    const tenant = await call('POST', '/tenants', {
      auth: operator,
      body: { id: 'lab-sec', name: 'Lab Sec', admin: { username: 'admin', email: 'admin@lab-sec.example' } },
    });
    admin = await firstLogin(
      'lab-sec',
      'admin',
      String((tenant.body.admin as { initialPassword: string }).initialPassword),
    );
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('ends every other session when the password changes; the changing session goes on', async () => {
    const { id } = await newUser('nina', ['self']);
    const a = await login('lab-sec', 'nina', STRONG);
    const b = await login('lab-sec', 'nina', STRONG);
    expect((await call('GET', '/me', { auth: b.access })).status).toBe(200);
    expect(
      (await call('POST', '/auth/password', { auth: a.access, body: { currentPassword: STRONG, newPassword: OTHER } }))
        .status,
    ).toBe(204);
    expect((await call('GET', '/me', { auth: b.access })).status).toBe(401);
    expect((await call('POST', '/auth/refresh', { body: { refreshToken: b.refresh } })).status).toBe(401);
    expect((await call('GET', '/me', { auth: a.access })).status).toBe(200);
    const renewed = await call('POST', '/auth/refresh', { body: { refreshToken: a.refresh } });
    expect(renewed.status).toBe(200);
    // An admin's reset ends every session, the holder's too.
    const reset = await call('POST', `/users/${id}/password-reset`, { auth: admin });
    expect(reset.status).toBe(200);
    expect((await call('GET', '/me', { auth: a.access })).status).toBe(401);
    expect(
      (await call('POST', '/auth/refresh', { body: { refreshToken: String(renewed.body.refreshToken) } })).status,
    ).toBe(401);
    await firstLogin('lab-sec', 'nina', String(reset.body.initialPassword));
  });

  it('ends the sessions of an account whose roles change or which is deactivated; reactivation revives none', async () => {
    const { id } = await newUser('otto', ['self']);
    const a = await login('lab-sec', 'otto', STRONG);
    await call('PUT', '/roles/order-reader', {
      auth: admin,
      body: { permissions: ['orders:read', 'profile:read', 'profile:update'] },
    });
    expect((await call('PATCH', `/users/${id}`, { auth: admin, body: { roles: ['order-reader'] } })).status).toBe(200);
    expect((await call('GET', '/me', { auth: a.access })).status).toBe(401);
    expect((await call('POST', '/auth/refresh', { body: { refreshToken: a.refresh } })).status).toBe(401);
    const b = await login('lab-sec', 'otto', STRONG);
    expect((await call('GET', '/orders', { auth: b.access })).status).toBe(200);
    expect((await call('DELETE', `/users/${id}`, { auth: admin })).status).toBe(204);
    expect((await call('GET', '/me', { auth: b.access })).status).toBe(401);
    expect((await call('PATCH', `/users/${id}`, { auth: admin, body: { status: 'active' } })).status).toBe(200);
    expect((await call('GET', '/me', { auth: b.access })).status).toBe(401);
    expect((await call('POST', '/auth/refresh', { body: { refreshToken: b.refresh } })).status).toBe(401);
  });

  it('asks for the current password before a second factor changes, recovery codes renew, keys are made or the e-mail moves', async () => {
    await newUser('mara', ['self']);
    const stolen = await login('lab-sec', 'mara', STRONG, {});
    const other = await login('lab-sec', 'mara', STRONG);
    // A stolen access token alone:
    expect((await call('POST', '/me/mfa/totp', { auth: stolen.access, body: {} })).status).toBe(400);
    expect(
      (await call('POST', '/me/mfa/totp', { auth: stolen.access, body: { currentPassword: 'a guess that is wrong' } }))
        .status,
    ).toBe(403);
    expect((await call('PATCH', '/me', { auth: stolen.access, body: { email: 'attacker@evil.example' } })).status).toBe(
      400,
    );
    expect(
      (
        await call('PATCH', '/me', {
          auth: stolen.access,
          body: { email: 'attacker@evil.example', currentPassword: 'wrong guess' },
        })
      ).status,
    ).toBe(403);
    expect((await call('GET', '/me', { auth: stolen.access })).body.email).toBe('mara@lab-sec.example');
    expect((await call('POST', '/me/mfa/recovery-codes', { auth: stolen.access, body: {} })).status).toBe(400);
    expect((await call('POST', '/me/mfa/totp/removal', { auth: stolen.access, body: {} })).status).toBe(400);
    expect(
      (await call('POST', '/integrations', { auth: admin, body: { name: 'x', permissions: ['orders:read'] } })).status,
    ).toBe(400);
    expect(
      (
        await call('POST', '/integrations', {
          auth: admin,
          body: { name: 'x', permissions: ['orders:read'], currentPassword: 'not it' },
        })
      ).status,
    ).toBe(403);
    // The name needs no password; the e-mail does, and gets it.
    expect((await call('PATCH', '/me', { auth: stolen.access, body: { name: 'Mara M.' } })).status).toBe(200);
    expect(
      (
        await call('PATCH', '/me', {
          auth: stolen.access,
          body: { email: 'mara.new@lab-sec.example', currentPassword: STRONG },
        })
      ).body.email,
    ).toBe('mara.new@lab-sec.example');
    // Guessing the password through re-authentication is throttled like logins.
    const guesses = [];
    for (let i = 0; i < 8; i++)
      guesses.push(
        (await call('POST', '/me/mfa/totp', { auth: stolen.access, body: { currentPassword: `guess number ${i}` } }))
          .status,
      );
    expect(guesses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(guesses.every((s) => s === 403 || s === 429)).toBe(true);
    const attempts = (await call('GET', '/audit?action=auth.reauthenticate&limit=200', { auth: admin })).body
      .items as unknown[];
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    expect((await call('POST', `/users/${await idOf('mara')}/unlock`, { auth: admin })).status).toBe(204);

    // Enrolment with the password ends the account's other sessions; this one goes on.
    const started = await call('POST', '/me/mfa/totp', { auth: stolen.access, body: { currentPassword: STRONG } });
    expect(started.status).toBe(200);
    const totp = new OTPAuth.TOTP({
      secret: OTPAuth.Secret.fromBase32(String(started.body.secret)),
      period: 30,
      digits: 6,
    });
    const confirmed = await call('POST', '/me/mfa/totp/confirmation', {
      auth: stolen.access,
      body: { code: totp.generate(), currentPassword: STRONG },
    });
    expect(confirmed.status).toBe(200);
    expect((await call('GET', '/me', { auth: stolen.access })).body.mfaEnabled).toBe(true);
    expect((await call('GET', '/me', { auth: other.access })).status).toBe(401);
    expect(
      (await call('POST', '/me/mfa/recovery-codes', { auth: stolen.access, body: { currentPassword: STRONG } })).body
        .recoveryCodes,
    ).toHaveLength(10);
    expect(
      (await call('POST', '/me/mfa/totp/removal', { auth: stolen.access, body: { currentPassword: STRONG } })).status,
    ).toBe(204);
    expect((await call('GET', '/me', { auth: stolen.access })).body.mfaEnabled).toBe(false);
  });

  it('refuses to grant more than the caller holds, through roles, users, keys, approvals and operators', async () => {
    await call('PUT', '/roles/user-manager', {
      auth: admin,
      body: {
        permissions: ['users:manage', 'roles:manage', 'integrations:manage', 'access-requests:approve', 'profile:read'],
      },
    });
    const manager = await newUser('uma', ['user-manager']);
    // A role with a permission uma lacks:
    const role = await call('PUT', '/roles/sneaky', {
      auth: manager.auth,
      body: { permissions: ['orders:read', 'users:manage'] },
    });
    expect(role.status).toBe(403);
    expect(role.body.exceedingPermissions).toEqual(['orders:read']);
    // Changing a role that holds more than uma does:
    expect(
      (await call('PUT', '/roles/order-reader', { auth: manager.auth, body: { permissions: ['profile:read'] } }))
        .status,
    ).toBe(403);
    // Users with roles beyond uma's:
    expect(
      (
        await call('POST', '/users', {
          auth: manager.auth,
          body: { username: 'tina', email: 't@lab-sec.example', roles: ['tenant-admin'] },
        })
      ).status,
    ).toBe(403);
    const beyond = await call('POST', '/users', {
      auth: manager.auth,
      body: { username: 'tina', email: 't@lab-sec.example', roles: ['order-reader'] },
    });
    expect(beyond.status).toBe(403);
    expect(beyond.body.exceedingPermissions).toEqual(['orders:read']);
    expect(
      (
        await call('POST', '/users', {
          auth: manager.auth,
          body: { username: 'tina', email: 't@lab-sec.example', roles: ['self'] },
        })
      ).status,
    ).toBe(201);
    // Managing an account that holds more: an admin's password reset would be a takeover.
    const adminId = await idOf('admin');
    expect((await call('POST', `/users/${adminId}/password-reset`, { auth: manager.auth })).status).toBe(403);
    expect((await call('PATCH', `/users/${adminId}`, { auth: manager.auth, body: { roles: ['self'] } })).status).toBe(
      403,
    );
    expect((await call('DELETE', `/users/${adminId}`, { auth: manager.auth })).status).toBe(403);
    expect(
      (await call('PATCH', `/users/${adminId}`, { auth: manager.auth, body: { email: 'x@evil.example' } })).status,
    ).toBe(403);
    // Keys with permissions beyond uma's:
    const key = await call('POST', '/integrations', {
      auth: manager.auth,
      body: { name: 'k', permissions: ['orders:read'], currentPassword: STRONG },
    });
    expect(key.status).toBe(403);
    expect(key.body.exceedingPermissions).toEqual(['orders:read']);
    const own = await call('POST', '/integrations', {
      auth: manager.auth,
      body: { name: 'k', permissions: ['users:manage', 'integrations:manage'], currentPassword: STRONG },
    });
    expect(own.status).toBe(201);
    // A key never makes keys, not even with integrations:manage.
    expect(
      (
        await call('POST', '/integrations', {
          auth: `ApiKey ${String(own.body.apiKey)}`,
          body: { name: 'k2', permissions: ['users:manage'], currentPassword: 'x' },
        })
      ).status,
    ).toBe(403);
    // Approving staff access beyond uma's:
    const request = await call('POST', '/access-requests', {
      auth: operator,
      body: { tenant: 'lab-sec', reason: 'ticket 77', minutes: 10, permissions: ['orders:read'] },
    });
    const approval = await call('POST', `/access-requests/${String(request.body.id)}/approval`, {
      auth: manager.auth,
      body: { approve: true },
    });
    expect(approval.status).toBe(403);
    expect(approval.body.exceedingPermissions).toEqual(['orders:read']);
    // Operators: an operator-admin alone cannot make a security officer.
    const opsAdmin = await call('POST', '/operators', {
      auth: operator,
      body: { username: 'ops.admin', email: 'oa@vendor.example', roles: ['operator-admin'] },
    });
    const opsAdminAuth = await firstLogin('operator', 'ops.admin', String(opsAdmin.body.initialPassword));
    const officer = await call('POST', '/operators', {
      auth: opsAdminAuth,
      body: { username: 'ops.officer', email: 'so@vendor.example', roles: ['security-officer'] },
    });
    expect(officer.status).toBe(403);
    expect(officer.body.exceedingPermissions).toEqual(['breaches:manage', 'security:read']);
  });

  it('keeps the last active tenant admin, also when two admins demote each other at once', async () => {
    const adminId = await idOf('admin');
    expect((await call('PATCH', `/users/${adminId}`, { auth: admin, body: { roles: ['self'] } })).status).toBe(409);
    expect((await call('DELETE', `/users/${adminId}`, { auth: admin })).status).toBe(409);
    const second = await newUser('second.admin', ['tenant-admin']);
    const [one, two] = await Promise.all([
      call('PATCH', `/users/${second.id}`, { auth: admin, body: { roles: ['self'] } }),
      call('PATCH', `/users/${adminId}`, { auth: second.auth, body: { roles: ['self'] } }),
    ]);
    expect([one.status, two.status].sort()).toEqual([200, 409].sort((a, b) => a - b));
    const users = (await call('GET', '/users', { auth: one.status === 200 ? admin : second.auth })).body.items as {
      roles: string[];
      status: string;
    }[];
    expect(users.filter((u) => u.status === 'active' && u.roles.includes('tenant-admin'))).toHaveLength(1);
    if (one.status !== 200) admin = second.auth; // the admin who remains runs the rest
  });

  it('counts concurrent wrong passwords before verifying them: 50 at once, no 5xx, each audited once, then unlocked by an admin', async () => {
    const { id } = await newUser('storm', ['self']);
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call('POST', '/auth/login', {
          from: '203.0.113.7',
          body: { tenant: 'lab-sec', username: 'storm', password: `wrong password number ${i}` },
        }),
      ),
    );
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(6);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(44);
    expect(replies.filter((r) => r.status === 429).every((r) => Number(r.headers.get('retry-after')) > 0)).toBe(true);
    const entries = (await call('GET', '/audit?action=auth.login&limit=200', { auth: admin })).body.items as {
      outcome: string;
      details?: { account?: string };
    }[];
    const byAccount = new Map<string, number>();
    for (const e of entries)
      if (e.outcome === 'failure' && e.details?.account)
        byAccount.set(e.details.account, (byAccount.get(e.details.account) ?? 0) + 1);
    expect(Math.max(...byAccount.values())).toBe(50);
    // How long the backoff lasts depends on how many of the 50 were counted before the rest met
    // contention, so its length is tested sequentially (tests/integration/identity.test.ts); here an
    // admin's unlock lets the right password in at once.
    expect((await call('POST', `/users/${id}/unlock`, { auth: admin })).status).toBe(204);
    expect(
      (
        await call('POST', '/auth/login', {
          from: '203.0.113.7',
          body: { tenant: 'lab-sec', username: 'storm', password: STRONG },
        })
      ).status,
    ).toBe(200);
  });

  it('throttles a source by the address the proxy saw, whatever it puts in front of X-Forwarded-For', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 104; i++) {
      // The attacker rotates the left-most entry; the trusted proxy appended 192.0.2.55.
      const r = await call('POST', '/auth/login', {
        headers: { 'x-forwarded-for': `10.${i % 250}.0.1, 192.0.2.55` },
        body: { tenant: 'lab-sec', username: `nobody-${i}`, password: 'x' },
      });
      statuses.push(r.status);
    }
    expect(statuses.slice(0, 100).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(100)).toEqual([429, 429, 429, 429]);
    // Another client (another address seen by the proxy) is not affected.
    expect(
      (
        await call('POST', '/auth/login', {
          from: '192.0.2.99',
          body: { tenant: 'lab-sec', username: 'nobody', password: 'x' },
        })
      ).status,
    ).toBe(401);
  });

  it('unlocks an operator only by another operator (or the admin CLI), never by themself', async () => {
    const ops = await call('POST', '/operators', {
      auth: operator,
      body: { username: 'ops.locked', email: 'ol@vendor.example', roles: ['operator'] },
    });
    const opsAuth = await firstLogin('operator', 'ops.locked', String(ops.body.initialPassword));
    const me = (await call('GET', '/me', { auth: operator })).body.id;
    expect((await call('POST', `/operators/${String(me)}/unlock`, { auth: operator })).status).toBe(403);
    expect((await call('POST', `/operators/${String(ops.body.id)}/unlock`, { auth: opsAuth })).status).toBe(403); // lacks operators:manage
    expect((await call('POST', `/operators/${String(ops.body.id)}/unlock`, { auth: operator })).status).toBe(204);
    const cli = adminCli(host.dataDir, ['operator', 'unlock', '--username', 'ops.locked']);
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.json).toEqual({ username: 'ops.locked', unlocked: true });
    expect(adminCli(host.dataDir, ['operator', 'unlock', '--username', 'nobody.here']).status).not.toBe(0);
  });

  it('refuses a forged refresh token without touching the session; a replayed real one revokes the family', async () => {
    await newUser('rita', ['self']);
    const session = await login('lab-sec', 'rita', STRONG);
    const [prefix, realm, family] = session.refresh.split('_');
    const forged = [prefix, realm, family, 'f'.repeat(16), '0'.repeat(64)].join('_');
    expect((await call('POST', '/auth/refresh', { body: { refreshToken: forged } })).status).toBe(401);
    expect((await call('GET', '/me', { auth: session.access })).status).toBe(200);
    const next = await call('POST', '/auth/refresh', { body: { refreshToken: session.refresh } });
    expect(next.status).toBe(200);
    // The used token again: a replay, the whole family ends.
    expect((await call('POST', '/auth/refresh', { body: { refreshToken: session.refresh } })).status).toBe(401);
    expect(
      (await call('POST', '/auth/refresh', { body: { refreshToken: String(next.body.refreshToken) } })).status,
    ).toBe(401);
    expect((await call('GET', '/me', { auth: `Bearer ${String(next.body.accessToken)}` })).status).toBe(401);
  });

  it('refuses long but trivial passwords and says which rule failed', async () => {
    const { auth } = await newUser('paula', ['self']);
    const refusals: Record<string, string> = {
      abcdefghijklmnopqrst: 'character sequence',
      qwertzuiopasdfghjkl: 'keyboard pattern',
      sommer2026sommer2026: 'repetition',
      'Passwort123456789!': 'common words',
      passwordpassword: 'list of common',
    };
    for (const [password, rule] of Object.entries(refusals)) {
      const r = await call('POST', '/auth/password', {
        auth,
        body: { currentPassword: STRONG, newPassword: password },
      });
      expect(r.status, password).toBe(422);
      expect(JSON.stringify(r.body.errors), password).toContain(rule);
    }
    expect(
      (
        await call('POST', '/auth/password', {
          auth,
          body: { currentPassword: STRONG, newPassword: 'zwölf Boxkämpfer jagen Viktor quer über den Sylter Deich' },
        })
      ).status,
    ).toBe(204);
  });

  it('lets an operator under a staff grant export and download only with their password and only while the grant lives; tenant users get links of at most 24 hours', async () => {
    const key = `ApiKey ${String((await call('POST', '/integrations', { auth: admin, body: { name: 'LIS', permissions: ['orders:create'], currentPassword: STRONG } })).body.apiKey)}`;
    expect((await call('POST', '/orders', { auth: key, body: exampleOrder() })).status).toBe(201);
    const request = await call('POST', '/access-requests', {
      auth: operator,
      body: { tenant: 'lab-sec', reason: 'ticket 88: export help', minutes: 30, permissions: ['exports:start'] },
    });
    expect(
      (
        await call('POST', `/access-requests/${String(request.body.id)}/approval`, {
          auth: admin,
          body: { approve: true },
        })
      ).status,
    ).toBe(200);
    const asStaff = { auth: operator, headers: { 'x-labvault-tenant': 'lab-sec' } };
    // An operator is a person too: the grant alone (a stolen operator token) starts nothing.
    expect((await call('POST', '/exports', { ...asStaff, body: { format: 'ndjson' } })).status).toBe(400);
    expect(
      (await call('POST', '/exports', { ...asStaff, body: { format: 'ndjson', currentPassword: 'a guess' } })).status,
    ).toBe(403);
    const started = await call('POST', '/exports', {
      ...asStaff,
      body: { format: 'ndjson', currentPassword: STRONG },
    });
    expect(started.status).toBe(202);
    const status = await until(
      async () => (await call('GET', `/exports/${String(started.body.id)}`, asStaff)).body,
      (b) => b.status === 'completed',
    );
    // No link in the status, and no storage link at all: it could not be revoked with the grant.
    const download = status.download as Record<string, unknown>;
    expect(Object.keys(download).sort()).toEqual(['bytes', 'sha256']);
    const archiveUrl = `/exports/${String(started.body.id)}/archive`;
    expect(
      (
        await call('POST', `/exports/${String(started.body.id)}/links`, {
          ...asStaff,
          body: { currentPassword: STRONG },
        })
      ).status,
    ).toBe(403);
    expect((await call('GET', archiveUrl, asStaff)).status).toBe(403);
    const fetchArchive = (currentPassword: string) =>
      fetch(`${host.apiBaseUrl}${archiveUrl}`, {
        method: 'POST',
        headers: { authorization: operator, 'x-labvault-tenant': 'lab-sec', 'content-type': 'application/json' },
        body: JSON.stringify({ currentPassword }),
      });
    expect((await fetchArchive('another guess')).status).toBe(403);
    const fetched = await fetchArchive(STRONG);
    expect(fetched.status).toBe(200);
    const { createHash } = await import('node:crypto');
    expect(
      createHash('sha256')
        .update(Buffer.from(await fetched.arrayBuffer()))
        .digest('hex'),
    ).toBe(download.sha256);
    // The tenant ends the grant: the download stops at once, password or not.
    expect((await call('POST', `/access-requests/${String(request.body.id)}/revocation`, { auth: admin })).status).toBe(
      200,
    );
    expect((await fetchArchive(STRONG)).status).toBe(404);

    // A tenant user's own export: a storage link valid at most 24 hours, with the password, and a new one on request.
    const mine = await call('POST', '/exports', { auth: admin, body: { format: 'ndjson', currentPassword: STRONG } });
    await until(
      async () => (await call('GET', `/exports/${String(mine.body.id)}`, { auth: admin })).body,
      (b) => b.status === 'completed',
    );
    const confirmed = { auth: admin, body: { currentPassword: STRONG } };
    const first = await call('POST', `/exports/${String(mine.body.id)}/links`, confirmed);
    expect(first.status).toBe(201);
    const link = first.body as { url: string; expiresAt: string };
    expect(Date.parse(link.expiresAt) - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);
    expect(Date.parse(link.expiresAt) - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
    expect((await fetch(link.url)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const renewed = await call('POST', `/exports/${String(mine.body.id)}/links`, confirmed);
    expect(renewed.status).toBe(201);
    expect(Date.parse(String(renewed.body.expiresAt))).toBeGreaterThan(Date.parse(link.expiresAt));
    expect((await fetch(String(renewed.body.url))).status).toBe(200);
    expect((await call('POST', `/exports/${String(started.body.id)}/links`, { auth: admin })).status).toBe(404); // not the requester
  });
});

async function idOf(username: string): Promise<string> {
  const users = (await call('GET', '/users', { auth: admin })).body.items as { id: string; username: string }[];
  return users.find((u) => u.username === username)?.id ?? '';
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
