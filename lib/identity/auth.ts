import type { AuditLog } from '../audit/audit-log.js';
import type { AuditActor, AuditEventInput } from '../audit/types.js';
import { type DomainError, ForbiddenError, forbidden, rateLimited, unauthenticated, unprocessable } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { tenantPartition } from '../storage/keys.js';
import type { TenantService } from '../tenants/tenants.js';
import type { AccessRequestService } from './access-requests.js';
import type { AttemptVerdict, BruteForceGuard } from './brute-force.js';
import type { IntegrationService } from './integrations.js';
import type { MfaService } from './mfa.js';
import { checkPasswordPolicy, dummyPasswordHash, hashPassword, needsRehash, verifyPassword } from './passwords.js';
import { OPERATOR_REALM, operatorPermissionsOfRoles, type Principal, type TokenScope } from './permissions.js';
import type { RoleService } from './roles.js';
import type { SecurityPolicyService } from './security-policy.js';
import { RefreshReplayError, SessionService } from './sessions.js';
import type { TokenService } from './tokens.js';
import type { UserRow, UserService } from './users.js';
import { auditEvent } from '../audit/events.js';

export interface LoginInput {
  tenant: string;
  username: string;
  password: string;
  totp?: string;
  recoveryCode?: string;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  mustChangePassword: boolean;
}

interface RequestInfo {
  source: string | undefined;
  correlationId: string;
}

const INVALID_LOGIN = 'Invalid username or password.';

export interface AuthDependencies {
  users: UserService;
  roles: RoleService;
  mfa: MfaService;
  policy: SecurityPolicyService;
  sessions: SessionService;
  tokens: TokenService;
  guard: BruteForceGuard;
  audit: AuditLog;
  tenants: TenantService;
  integrations: IntegrationService;
  accessRequests: AccessRequestService;
  logger: Logger;
  clock?: () => Date;
}

/** A re-authentication whose password was wrong (a 403: the session stays valid). */
class WrongCurrentPasswordError extends ForbiddenError {
  override name = 'WrongCurrentPasswordError';
  constructor() {
    super('The current password is wrong.', { errors: [{ path: '/currentPassword', message: 'does not match' }] });
  }
}

const throttled = (verdict: Extract<AttemptVerdict, { allowed: false }>): DomainError =>
  rateLimited(
    verdict.reason === 'locked'
      ? 'The account is locked; ask an administrator to unlock it.'
      : 'Too many login attempts; wait before trying again.',
    verdict.retryAfterSeconds,
  );

/**
 * Login, password change, re-authentication, refresh and logout for people, and the resolution of
 * every credential (bearer token or API key) to a principal. Unknown users and wrong passwords take
 * the same path, status, body and work (an Argon2 verification against a dummy hash). Every
 * password check is counted before it is verified, so concurrent guesses cannot outrun the backoff.
 */
export class AuthService {
  readonly #d: AuthDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: AuthDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async login(input: LoginInput, request: RequestInfo): Promise<TokenPair> {
    const { realm, username } = { realm: input.tenant, username: input.username.normalize('NFKC').toLowerCase() };
    const attempt = { realm, username, source: request.source };
    const realmExists = realm === OPERATOR_REALM || (await this.#d.tenants.get(realm)) !== undefined;
    const accountRef = await this.#d.guard.accountRef(realm, username);
    const verdict = await this.#d.guard.reserve(attempt);
    if (!verdict.allowed) {
      await this.#auditLogin(realmExists, realm, { type: 'system', id: 'unknown' }, 'failure', request, {
        reason: verdict.reason,
        account: accountRef,
      });
      throw throttled(verdict);
    }
    const row = realmExists ? await this.#d.users.findByUsername(realm, username) : undefined;
    const passwordOk = await verifyPassword(row?.passwordHash ?? (await dummyPasswordHash()), input.password);
    const initialExpired =
      row?.mustChangePassword === true &&
      row.initialPasswordExpiresAt !== undefined &&
      row.initialPasswordExpiresAt < this.#clock().toISOString();
    if (!row || !passwordOk || row.status !== 'active' || initialExpired) {
      const reason = !row
        ? 'unknown-account'
        : !passwordOk
          ? 'wrong-password'
          : row.status !== 'active'
            ? 'deactivated'
            : 'initial-password-expired';
      await this.#fail(realmExists, realm, row, attempt, request, reason, accountRef);
    }
    const user = row as UserRow & { etag: string };
    if (user.mfaEnabled) {
      if (input.totp === undefined && input.recoveryCode === undefined) {
        // Not a failed guess: the password was right. The reserved attempt is released.
        await this.#d.guard.recordSuccess(attempt);
        throw unauthenticated('A one-time code from the authenticator app (or a recovery code) is required.', {
          errors: [{ path: '/totp', message: 'required for this account' }],
        });
      }
      const factor = {
        ...(input.totp !== undefined ? { totp: input.totp } : {}),
        ...(input.recoveryCode !== undefined ? { recoveryCode: input.recoveryCode } : {}),
      };
      if (!(await this.#d.mfa.verify(realm, user, factor)))
        await this.#fail(true, realm, user, attempt, request, 'wrong-second-factor', accountRef);
    }
    await this.#d.guard.recordSuccess(attempt);
    if (needsRehash(user.passwordHash)) {
      const fresh = await this.#d.users.row(realm, user.id);
      if (fresh)
        await this.#d.users.setPasswordHash(
          realm,
          fresh,
          await hashPassword(input.password),
          { actor: { type: 'system', id: 'login' }, correlationId: request.correlationId },
          'user.password.rehash',
        );
    }
    const pair = await this.#issue(realm, user, await this.#scopeOf(realm, user));
    await this.#auditLogin(true, realm, this.#actor(realm, user.id, request), 'success', request, {
      mfa: user.mfaEnabled,
    });
    return pair;
  }

  /**
   * Re-authentication for a sensitive change: the caller's current password, counted like a login
   * attempt (a stolen access token cannot guess it faster). 403 when wrong, 429 while throttled.
   */
  async reauthenticate(
    principal: Principal,
    currentPassword: string,
    request: RequestInfo,
  ): Promise<UserRow & { etag: string }> {
    if (principal.grant) throw forbidden('Only the account holder, with their password, makes this change.');
    return this.confirmPassword(principal, currentPassword, request);
  }

  /**
   * The calling person's current password, counted like a login attempt: what re-authentication
   * checks, also for an operator acting in a tenant under a staff grant (their own operator account).
   */
  async confirmPassword(
    principal: Principal,
    currentPassword: string,
    request: RequestInfo,
  ): Promise<UserRow & { etag: string }> {
    if (principal.kind === 'integration')
      throw forbidden('Only the account holder, with their password, makes this change.');
    const row = await this.#d.users.row(principal.realm, principal.id);
    if (!row) throw unauthenticated();
    const username = (await this.#d.users.toUser(principal.realm, row)).username;
    const attempt = { realm: principal.realm, username, source: request.source };
    const verdict = await this.#d.guard.reserve(attempt);
    if (!verdict.allowed) throw throttled(verdict);
    if (!(await verifyPassword(row.passwordHash, currentPassword))) {
      const { locked } = await this.#d.guard.recordFailure(attempt);
      const actor = this.#actor(principal.realm, principal.id, request);
      await this.#auditSecurity(
        principal.realm,
        auditEvent(
          'auth.reauthenticate',
          'E',
          { type: 'User', id: principal.id },
          { actor, correlationId: request.correlationId },
          { outcome: 'failure', purpose: 'authentication', ...(locked ? { details: { locked: true } } : {}) },
        ),
      );
      throw new WrongCurrentPasswordError();
    }
    await this.#d.guard.recordSuccess(attempt);
    return row;
  }

  /** The calling session goes on after its own credential change; the account's other sessions have ended. */
  async keepCallingSession(principal: Principal, epoch: number): Promise<void> {
    if (principal.sessionId) await this.#d.sessions.carryOver(principal.realm, principal.sessionId, epoch);
  }

  async changePassword(
    principal: Principal,
    currentPassword: string,
    newPassword: string,
    request: RequestInfo,
  ): Promise<void> {
    if (principal.kind === 'integration') throw unprocessable('Integrations have no password.');
    let row: UserRow & { etag: string };
    try {
      row = await this.reauthenticate(principal, currentPassword, request);
    } catch (error) {
      // The password change has always answered 422 for a wrong current password.
      if (error instanceof WrongCurrentPasswordError)
        throw unprocessable('The current password is wrong.', [
          { path: '/currentPassword', message: 'does not match' },
        ]);
      throw error;
    }
    const user = await this.#d.users.toUser(principal.realm, row);
    const tenant = principal.realm === OPERATOR_REALM ? undefined : await this.#d.tenants.get(principal.realm);
    const errors = await checkPasswordPolicy(newPassword, {
      username: user.username,
      tenantId: principal.realm,
      ...(tenant ? { tenantName: tenant.name } : {}),
      hasSecondFactor: row.mfaEnabled,
    });
    if (await verifyPassword(row.passwordHash, newPassword))
      errors.push({ path: '/newPassword', message: 'must differ from the current password' });
    if (errors.length > 0) throw unprocessable('The new password breaks the password policy.', errors);
    const epoch = await this.#d.users.setPasswordHash(
      principal.realm,
      row,
      await hashPassword(newPassword),
      { actor: this.#actor(principal.realm, principal.id, request), correlationId: request.correlationId },
      'user.password.change',
    );
    await this.keepCallingSession(principal, epoch);
  }

  async refresh(refreshToken: string, request: RequestInfo): Promise<TokenPair> {
    let session;
    try {
      session = await this.#d.sessions.rotate(refreshToken);
    } catch (error) {
      if (error instanceof RefreshReplayError) {
        const actor = this.#actor(error.realm, error.userId, request);
        await this.#auditSecurity(
          error.realm,
          auditEvent(
            'auth.refresh.replay',
            'E',
            { type: 'Session', id: error.familyId },
            { actor, correlationId: request.correlationId },
            { outcome: 'failure', purpose: 'authentication' },
          ),
        );
        this.#d.logger.log('warn', 'auth.refresh.replay', { correlationId: request.correlationId });
        throw unauthenticated('The refresh token was used already; the session is revoked. Log in again.');
      }
      throw error;
    }
    const row = await this.#d.users.row(session.realm, session.userId);
    if (!row || row.status !== 'active' || (row.sessionEpoch ?? 0) !== session.epoch) {
      await this.#d.sessions.revoke(
        session.realm,
        session.familyId,
        row?.status === 'active' ? 'credentials-changed' : 'inactive-user',
      );
      throw unauthenticated();
    }
    const scope = await this.#scopeOf(session.realm, row);
    const access = await this.#d.tokens.issue({ sub: row.id, realm: session.realm, sid: session.familyId, scope });
    return {
      accessToken: access.token,
      refreshToken: session.refreshToken,
      expiresIn: access.expiresIn,
      mustChangePassword: row.mustChangePassword,
    };
  }

  async logout(principal: Principal, request: RequestInfo): Promise<void> {
    if (!principal.sessionId) return;
    await this.#d.sessions.revoke(principal.realm, principal.sessionId, 'logout');
    await this.#auditSecurity(
      principal.realm,
      auditEvent(
        'auth.logout',
        'E',
        { type: 'Session', id: principal.sessionId },
        { actor: this.#actor(principal.realm, principal.id, request), correlationId: request.correlationId },
        { purpose: 'authentication' },
      ),
    );
  }

  /** Resolves `Authorization` (Bearer or ApiKey) to a principal, or throws 401. */
  async authenticate(
    authorization: string | null,
    request: RequestInfo & { tenantHeader: string | null },
  ): Promise<Principal> {
    const apiKey = /^ApiKey ([\x21-\x7e]{1,256})$/.exec(authorization ?? '');
    if (apiKey?.[1]) return this.#d.integrations.authenticate(apiKey[1], this.#d.logger, request.correlationId);
    const bearer = /^Bearer ([A-Za-z0-9_.-]{1,4096})$/.exec(authorization ?? '');
    if (!bearer?.[1]) throw unauthenticated();
    const claims = await this.#d.tokens.verify(bearer[1]);
    // Logout, deactivation and every credential change act at once: session, account and epoch are checked on every call.
    const [session, row] = await Promise.all([
      this.#d.sessions.row(claims.realm, claims.sid),
      this.#d.users.row(claims.realm, claims.sub),
    ]);
    if (!row || row.status !== 'active' || !this.#d.sessions.isLive(session, claims.sub, row.sessionEpoch ?? 0))
      throw unauthenticated();
    const roles = JSON.parse(row.roles) as string[];
    const base = { id: row.id, realm: claims.realm, roles, scope: claims.scope, sessionId: claims.sid };
    if (claims.realm === OPERATOR_REALM) {
      const principal: Principal = {
        ...base,
        kind: 'operator',
        tenant: undefined,
        permissions: new Set(),
        operatorPermissions: operatorPermissionsOfRoles(roles),
      };
      const wanted = request.tenantHeader;
      if (wanted && claims.scope === 'full' && /^[a-z0-9-]{3,32}$/.test(wanted)) {
        const grant = await this.#d.accessRequests.liveGrant(wanted, row.id);
        if (grant)
          return {
            ...principal,
            tenant: wanted,
            permissions: new Set(grant.permissions),
            grant: { id: grant.id, reason: grant.reason, expiresAt: grant.expiresAt },
          };
      }
      return principal;
    }
    return {
      ...base,
      kind: 'user',
      tenant: claims.realm,
      permissions: await this.#d.roles.permissionsOf(claims.realm, roles),
      operatorPermissions: new Set(),
    };
  }

  async #issue(realm: string, user: UserRow, scope: TokenScope): Promise<TokenPair> {
    const session = await this.#d.sessions.start(realm, user.id, user.sessionEpoch ?? 0);
    const access = await this.#d.tokens.issue({ sub: user.id, realm, sid: session.familyId, scope });
    return {
      accessToken: access.token,
      refreshToken: session.refreshToken,
      expiresIn: access.expiresIn,
      mustChangePassword: user.mustChangePassword,
    };
  }

  async #scopeOf(realm: string, user: UserRow): Promise<TokenScope> {
    if (user.mustChangePassword) return 'password-change';
    if (!user.mfaEnabled && (await this.#d.policy.policy(realm)).requireMfa) return 'mfa-enrolment';
    return 'full';
  }

  async #fail(
    realmExists: boolean,
    realm: string,
    row: UserRow | undefined,
    attempt: { realm: string; username: string; source: string | undefined },
    request: RequestInfo,
    reason: string,
    accountRef: string,
  ): Promise<never> {
    const { locked } = await this.#d.guard.recordFailure(attempt);
    await this.#auditLogin(
      realmExists,
      realm,
      row ? this.#actor(realm, row.id, request) : { type: 'system', id: 'unknown' },
      'failure',
      request,
      {
        reason,
        account: accountRef,
        ...(locked ? { locked: true } : {}),
      },
    );
    throw unauthenticated(INVALID_LOGIN);
  }

  #actor(realm: string, id: string, request: RequestInfo): AuditActor {
    return {
      type: realm === OPERATOR_REALM ? 'operator' : 'user',
      id,
      ...(request.source ? { address: request.source } : {}),
    };
  }

  async #auditLogin(
    realmExists: boolean,
    realm: string,
    actor: AuditActor,
    outcome: 'success' | 'failure',
    request: RequestInfo,
    details: Record<string, string | number | boolean>,
  ): Promise<void> {
    this.#d.logger.log(outcome === 'success' ? 'info' : 'warn', 'auth.login', {
      outcome,
      correlationId: request.correlationId,
      reason: typeof details.reason === 'string' ? details.reason : undefined,
    });
    if (!realmExists) return;
    await this.#auditSecurity(
      realm,
      auditEvent(
        'auth.login',
        'E',
        { type: 'User', id: actor.id },
        { actor, correlationId: request.correlationId },
        { outcome, purpose: 'authentication', details },
      ),
    );
  }

  async #auditSecurity(realm: string, event: AuditEventInput): Promise<void> {
    await this.#d.audit.record(realm, tenantPartition(realm, 'security'), [event]);
  }
}

export { SessionService };
