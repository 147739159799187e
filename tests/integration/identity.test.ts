import * as OTPAuth from 'otpauth';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TokenPair } from '../../lib/identity/auth.js';
import { BRUTE_FORCE_POLICY } from '../../lib/identity/brute-force.js';
import { hashPassword } from '../../lib/identity/passwords.js';
import type { Principal } from '../../lib/identity/permissions.js';
import { onboardTenant } from '../../lib/tenants/onboarding.js';
import { useAzurite } from '../support/azurite.js';
import { problemOf } from '../support/problems.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

const azurite = useAzurite();
let s: TestServices;
let now = new Date('2026-11-27T08:00:00Z');
const advance = (ms: number) => {
  now = new Date(now.getTime() + ms);
};
const meta = { actor: operatorActor, correlationId: 'test' };
const STRONG = 'a quiet meadow under autumn rain';

const login = (
  tenant: string,
  username: string,
  password: string,
  source = '10.0.0.1',
  extra: { totp?: string; recoveryCode?: string } = {},
) => s.auth.login({ tenant, username, password, ...extra }, { source, correlationId: 'c' });

const principalOf = (pair: TokenPair, tenantHeader: string | null = null): Promise<Principal> =>
  s.auth.authenticate(`Bearer ${pair.accessToken}`, { source: '10.0.0.1', correlationId: 'c', tenantHeader });

/** A user of `tenant` who has changed the initial password to STRONG. */
async function activeUser(tenant: string, username: string, roles: string[] = ['self']): Promise<{ id: string }> {
  const created = await s.users.create(tenant, { username, email: `${username}@lab.example` }, roles, meta);
  const first = await login(tenant, username, created.initialPassword);
  await s.auth.changePassword(await principalOf(first), created.initialPassword, STRONG, {
    source: '10.0.0.1',
    correlationId: 'c',
  });
  return { id: created.user.id };
}

describe('identity and access', () => {
  beforeAll(async () => {
    s = await testServices(azurite.connectionString, () => now);
    await onboardTenant(s, { id: 'lab-id', name: 'Pathologie Nord' }, meta);
    await onboardTenant(s, { id: 'lab-two', name: 'Lab Two' }, meta);
  });

  it('forces a password change at first login: the token can do nothing else, and the new one must differ', async () => {
    const created = await s.users.create('lab-id', { username: 'first.login', email: 'f@lab.example' }, ['self'], meta);
    const pair = await login('lab-id', 'first.login', created.initialPassword);
    expect(pair.mustChangePassword).toBe(true);
    const principal = await principalOf(pair);
    expect(principal.scope).toBe('password-change');
    const same = await problemOf(
      s.auth.changePassword(principal, created.initialPassword, created.initialPassword, {
        source: undefined,
        correlationId: 'c',
      }),
    );
    expect(same.status).toBe(422);
    expect(same.extras.errors?.map((e) => e.message)).toContain('must differ from the current password');
    await s.auth.changePassword(principal, created.initialPassword, STRONG, { source: undefined, correlationId: 'c' });
    const again = await login('lab-id', 'first.login', STRONG);
    expect(again.mustChangePassword).toBe(false);
    expect((await principalOf(again)).scope).toBe('full');
    expect((await problemOf(login('lab-id', 'first.login', created.initialPassword))).status).toBe(401);
  });

  it('gives a new account only its own profile (privacy by default)', async () => {
    const { id } = await activeUser('lab-id', 'newbie');
    const principal = await principalOf(await login('lab-id', 'newbie', STRONG));
    expect([...principal.permissions].sort()).toEqual(['profile:read', 'profile:update']);
    expect(principal.id).toBe(id);
  });

  it('expires initial passwords after 72 hours', async () => {
    const created = await s.users.create('lab-id', { username: 'slowpoke', email: 's@lab.example' }, ['self'], meta);
    advance(72 * 3600 * 1000 + 1000);
    expect((await problemOf(login('lab-id', 'slowpoke', created.initialPassword))).status).toBe(401);
    const reset = await s.users.resetPassword('lab-id', created.user.id, meta);
    expect(reset.initialPassword).not.toBe(created.initialPassword);
    expect((await login('lab-id', 'slowpoke', reset.initialPassword)).mustChangePassword).toBe(true);
  });

  it('answers an unknown user and a wrong password alike, in status, body and time', async () => {
    await activeUser('lab-id', 'timing');
    const unknown = await problemOf(login('lab-id', 'nobody-here', 'whatever-password-1'));
    const wrong = await problemOf(login('lab-id', 'timing', 'whatever-password-1'));
    const noTenant = await problemOf(login('no-such-lab', 'timing', 'whatever-password-1'));
    for (const p of [unknown, wrong, noTenant]) {
      expect([p.status, p.title, p.detail]).toEqual([401, 'Unauthorized', 'Invalid username or password.']);
    }
    const time = async (username: string) => {
      const started = performance.now();
      await problemOf(login('lab-id', username, 'whatever-password-2', `10.9.${Math.floor(Math.random() * 250)}.1`));
      return performance.now() - started;
    };
    const known: number[] = [];
    const missing: number[] = [];
    for (let i = 0; i < 12; i++) {
      known.push(await time(`timing`));
      missing.push(await time(`ghost-${i}`));
      await s.guard.reset('lab-id', 'timing');
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    // Both paths run one Argon2id verification, so the ratio stays near 1; a fast path for unknown
    // users would put it near 50 (a table read against ~50 ms of Argon2id). The band is wide because
    // the other test worker shares the two cores and can slow either side for a while.
    const ratio = median(known) / median(missing);
    expect(ratio).toBeGreaterThan(1 / 3);
    expect(ratio).toBeLessThan(3);
  });

  it('upgrades a weak stored hash at login', async () => {
    const { id } = await activeUser('lab-id', 'legacy');
    const row = await s.users.row('lab-id', id);
    if (!row) throw new Error('no row');
    await s.users.setPasswordHash(
      'lab-id',
      row,
      await hashPassword(STRONG, { memoryCost: 4096, timeCost: 1 }),
      meta,
      'user.password.rehash',
    );
    expect((await s.users.row('lab-id', id))?.passwordHash).toMatch(/m=4096,t=1/);
    await login('lab-id', 'legacy', STRONG);
    expect((await s.users.row('lab-id', id))?.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  });

  it('backs off exponentially, locks after 100 consecutive failures, and a reset unlocks', async () => {
    const { id } = await activeUser('lab-id', 'target');
    for (let i = 1; i <= BRUTE_FORCE_POLICY.lockAfterFailures; i++) {
      const p = await problemOf(
        login('lab-id', 'target', `wrong-password-${i}`, `10.1.${i % 250}.${Math.floor(i / 250)}`),
      );
      expect(p.status).toBe(401);
      if (i === BRUTE_FORCE_POLICY.freeFailures) {
        // In backoff now: the next try is refused without checking the password.
        const throttled = await problemOf(login('lab-id', 'target', STRONG, '10.2.0.1'));
        expect(throttled.status).toBe(429);
        expect(throttled.extras.retryAfterSeconds).toBeGreaterThan(0);
      }
      advance(BRUTE_FORCE_POLICY.maxBackoffSeconds * 1000 + 1000);
    }
    const locked = await problemOf(login('lab-id', 'target', STRONG, '10.3.0.1'));
    expect(locked.status).toBe(429);
    expect((await s.alerts.list()).some((a) => a.kind === 'account-locked')).toBe(true);
    await s.users.resetPassword('lab-id', id, meta);
    await s.guard.reset('lab-id', 'target');
    await expect(login('lab-id', 'target', STRONG, '10.3.0.2')).rejects.toMatchObject({ kind: 'unauthenticated' });
  });

  it('counts concurrent guesses before verifying them, and a lock reached under concurrency raises one alert', async () => {
    advance(BRUTE_FORCE_POLICY.windowMs);
    const { id } = await activeUser('lab-id', 'contended');
    const account = await s.guard.accountRef('lab-id', 'contended');
    let verified = 0;
    for (let burst = 0; burst < 120; burst++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          problemOf(login('lab-id', 'contended', `guess-${burst}-${i}`, `10.9.${burst}.${i}`)),
        ),
      );
      expect(results.every((p) => p.status === 401 || p.status === 429)).toBe(true);
      verified += results.filter((p) => p.status === 401).length;
      // Each burst waits out the backoff; within a burst at most one guess is verified past the free ones.
      if (burst > 0) expect(results.filter((p) => p.status === 401).length).toBeLessThanOrEqual(1);
      advance(BRUTE_FORCE_POLICY.maxBackoffSeconds * 1000 + 1000);
    }
    expect(verified).toBe(BRUTE_FORCE_POLICY.lockAfterFailures);
    expect(
      (await s.alerts.list(500)).filter((a) => a.kind === 'account-locked' && a.accountRef === account),
    ).toHaveLength(1);
    expect(await s.guard.isLocked('lab-id', 'contended')).toBe(true);
    await s.guard.reset('lab-id', 'contended');
    expect((await login('lab-id', 'contended', STRONG, '10.9.200.1')).accessToken).toBeTruthy();
    expect(id).toBeTruthy();
  });

  it('resets the counter on success', async () => {
    await activeUser('lab-id', 'forgetful');
    for (let i = 0; i < 4; i++) await problemOf(login('lab-id', 'forgetful', `nope-${i}`, '10.4.0.1'));
    await login('lab-id', 'forgetful', STRONG, '10.4.0.1');
    for (let i = 0; i < 4; i++)
      expect((await problemOf(login('lab-id', 'forgetful', `nope-again-${i}`, '10.4.0.1'))).status).toBe(401);
  });

  it('detects password spraying (many accounts, one source) and alerts security officers', async () => {
    advance(BRUTE_FORCE_POLICY.windowMs);
    for (let i = 0; i < BRUTE_FORCE_POLICY.sprayingAccounts; i++)
      await problemOf(login('lab-id', `sprayed-${i}`, 'Summer2026!Summer2026!', '10.66.0.1'));
    const alerts = await s.alerts.list();
    expect(alerts.filter((a) => a.kind === 'password-spraying')).toHaveLength(1);
    expect(JSON.stringify(alerts)).not.toContain('10.66.0.1');
  });

  it('detects credential stuffing (many sources, one account)', async () => {
    advance(BRUTE_FORCE_POLICY.windowMs);
    await activeUser('lab-id', 'stuffed');
    for (let i = 0; i < BRUTE_FORCE_POLICY.stuffingSources; i++) {
      await problemOf(login('lab-id', 'stuffed', `leaked-${i}`, `192.0.2.${i + 1}`));
      advance(BRUTE_FORCE_POLICY.maxBackoffSeconds * 1000);
    }
    const account = await s.guard.accountRef('lab-id', 'stuffed');
    expect(
      (await s.alerts.list()).filter((a) => a.kind === 'credential-stuffing' && a.accountRef === account),
    ).toHaveLength(1);
  });

  it('throttles one source after its budget with 429 and Retry-After', async () => {
    advance(BRUTE_FORCE_POLICY.windowMs);
    let last: Awaited<ReturnType<typeof problemOf>> | undefined;
    for (let i = 0; i <= BRUTE_FORCE_POLICY.sourceAttemptsPerWindow; i++)
      last = await problemOf(login('lab-two', `flood-${i % 3}`, 'x', '203.0.113.9'));
    expect(last?.status).toBe(429);
    expect(last?.extras.retryAfterSeconds).toBeGreaterThan(0);
  });

  it('audits every login, success and failure, without passwords', async () => {
    advance(BRUTE_FORCE_POLICY.windowMs);
    await activeUser('lab-two', 'audited');
    await problemOf(login('lab-two', 'audited', 'not-the-password-1'));
    await login('lab-two', 'audited', STRONG);
    const entries = [];
    for await (const e of s.audit.list('lab-two', { event: 'auth.login' })) entries.push(e);
    expect(entries.map((e) => e.outcome)).toEqual(expect.arrayContaining(['success', 'failure']));
    const text = JSON.stringify(entries) + s.logLines.join('\n');
    expect(text).not.toContain(STRONG);
    expect(text).not.toContain('not-the-password-1');
  });

  it('rotates refresh tokens and revokes the family when a used one comes back', async () => {
    await activeUser('lab-two', 'refresher');
    const first = await login('lab-two', 'refresher', STRONG);
    const second = await s.auth.refresh(first.refreshToken, { source: undefined, correlationId: 'c' });
    expect(second.refreshToken).not.toBe(first.refreshToken);
    await principalOf(second);
    expect(
      (await problemOf(s.auth.refresh(first.refreshToken, { source: undefined, correlationId: 'c' }))).status,
    ).toBe(401);
    // The replay killed the whole family: the newer refresh token and access token die too.
    expect(
      (await problemOf(s.auth.refresh(second.refreshToken, { source: undefined, correlationId: 'c' }))).status,
    ).toBe(401);
    expect((await problemOf(principalOf(second))).status).toBe(401);
  });

  it('ends sessions after 1 hour without refresh', async () => {
    await activeUser('lab-two', 'idle');
    const pair = await login('lab-two', 'idle', STRONG);
    advance(61 * 60 * 1000);
    expect((await problemOf(s.auth.refresh(pair.refreshToken, { source: undefined, correlationId: 'c' }))).status).toBe(
      401,
    );
  });

  it('logs out: the refresh token and the access token stop', async () => {
    await activeUser('lab-two', 'leaver');
    const pair = await login('lab-two', 'leaver', STRONG);
    await s.auth.logout(await principalOf(pair), { source: undefined, correlationId: 'c' });
    expect((await problemOf(principalOf(pair))).status).toBe(401);
    expect((await problemOf(s.auth.refresh(pair.refreshToken, { source: undefined, correlationId: 'c' }))).status).toBe(
      401,
    );
  });

  it('stops a deactivated user at login and their live token at once', async () => {
    const { id } = await activeUser('lab-two', 'deactivated');
    const pair = await login('lab-two', 'deactivated', STRONG);
    await principalOf(pair);
    await s.users.update('lab-two', id, { status: 'deactivated' }, meta);
    expect((await problemOf(principalOf(pair))).status).toBe(401);
    expect((await problemOf(login('lab-two', 'deactivated', STRONG))).status).toBe(401);
  });

  it('enrols TOTP, asks for the code at login, refuses a reused code, and takes each recovery code once', async () => {
    advance(BRUTE_FORCE_POLICY.windowMs);
    await activeUser('lab-two', 'two-factor');
    const principal = await principalOf(await login('lab-two', 'two-factor', STRONG));
    const { otpauthUri, secret } = await s.mfa.begin('lab-two', principal.id, meta);
    expect(otpauthUri).toMatch(/^otpauth:\/\/totp\/LabVault:lab-two%3Atwo-factor\?/);
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), period: 30, digits: 6 });
    const code = () => totp.generate({ timestamp: now.getTime() });
    expect((await problemOf(s.mfa.confirm('lab-two', principal.id, '000000', meta))).status).toBe(422);
    const { recoveryCodes } = await s.mfa.confirm('lab-two', principal.id, code(), meta);
    expect(recoveryCodes).toHaveLength(10);
    advance(31_000);
    const asked = await problemOf(login('lab-two', 'two-factor', STRONG));
    expect(asked.status).toBe(401);
    expect(asked.extras.errors?.[0]?.path).toBe('/totp');
    const c = code();
    await login('lab-two', 'two-factor', STRONG, '10.0.0.1', { totp: c });
    expect((await problemOf(login('lab-two', 'two-factor', STRONG, '10.0.0.1', { totp: c }))).status).toBe(401);
    const recovery = recoveryCodes[0] ?? '';
    await login('lab-two', 'two-factor', STRONG, '10.0.0.1', { recoveryCode: recovery });
    expect(
      (await problemOf(login('lab-two', 'two-factor', STRONG, '10.0.0.1', { recoveryCode: recovery }))).status,
    ).toBe(401);
  });

  it('lets a tenant require a second factor: tokens of unenrolled users only enrol', async () => {
    await onboardTenant(s, { id: 'lab-mfa', name: 'Strict Lab' }, meta);
    await activeUser('lab-mfa', 'unenrolled');
    await s.policy.setPolicy('lab-mfa', { requireMfa: true }, meta);
    expect((await principalOf(await login('lab-mfa', 'unenrolled', STRONG))).scope).toBe('mfa-enrolment');
  });

  it('resolves custom roles to their permissions, and role changes are audited', async () => {
    await s.roles.putRole('lab-two', 'order-viewer', ['orders:read', 'profile:read'], meta);
    const { id } = await activeUser('lab-two', 'viewer', ['order-viewer']);
    expect([...(await principalOf(await login('lab-two', 'viewer', STRONG))).permissions].sort()).toEqual([
      'orders:read',
      'profile:read',
    ]);
    await s.users.update('lab-two', id, { roles: ['self'] }, meta);
    const events = [];
    for await (const e of s.audit.list('lab-two', { entity: id })) events.push(e.event);
    expect(events).toContain('user.roles.change');
    expect((await problemOf(s.roles.deleteRole('lab-two', 'self', meta))).status).toBe(422);
  });

  it('gives operators nothing of a tenant without a live grant, and logs every call under one', async () => {
    const operator = await s.users.create(
      'operator',
      { username: 'ops-anna', email: 'ops@vendor.example' },
      ['operator'],
      meta,
    );
    const first = await login('operator', 'ops-anna', operator.initialPassword);
    await s.auth.changePassword(await principalOf(first), operator.initialPassword, STRONG, {
      source: undefined,
      correlationId: 'c',
    });
    const pair = await login('operator', 'ops-anna', STRONG);
    const without = await principalOf(pair, 'lab-two');
    expect(without.tenant).toBeUndefined();
    expect(without.permissions.size).toBe(0);

    const request = await s.accessRequests.create(
      'lab-two',
      operator.user.id,
      { reason: 'ticket 4711: order stuck', minutes: 30, permissions: ['orders:read'] },
      meta,
    );
    expect((await principalOf(pair, 'lab-two')).tenant).toBeUndefined();
    await activeUser('lab-two', 'approver', ['tenant-admin']);
    const admin = await principalOf(await login('lab-two', 'approver', STRONG));
    await expect(s.accessRequests.decide('lab-two', request.id, true, without, meta)).rejects.toMatchObject({
      kind: 'forbidden',
    });
    await s.accessRequests.decide('lab-two', request.id, true, admin, meta);
    const granted = await principalOf(pair, 'lab-two');
    expect(granted).toMatchObject({ tenant: 'lab-two', grant: { reason: 'ticket 4711: order stuck' } });
    expect([...granted.permissions]).toEqual(['orders:read']);
    expect((await principalOf(pair, 'lab-id')).tenant).toBeUndefined();
    advance(14 * 60 * 1000);
    const later = await s.auth.refresh(pair.refreshToken, { source: undefined, correlationId: 'c' });
    advance(17 * 60 * 1000);
    const expired = await principalOf(
      await s.auth.refresh(later.refreshToken, { source: undefined, correlationId: 'c' }),
      'lab-two',
    );
    expect(expired.tenant).toBeUndefined();

    const calls = [];
    for await (const e of s.audit.list('lab-two', { event: 'staff-access.approve' })) calls.push(e);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.purpose).toBe('ticket 4711: order stuck');
  });
});
