import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import * as OTPAuth from 'otpauth';
import type { AuditLog } from '../audit/audit-log.js';
import type { AuditEventInput, RequestMeta } from '../audit/types.js';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { conflict, notFound, unprocessable } from '../http/problem.js';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { TransactionFailedError } from '../storage/transaction.js';
import { generateInitialPassword, hashPassword } from './passwords.js';
import { BUILT_IN_ROLES, OPERATOR_REALM, OPERATOR_ROLES, type Permission } from './permissions.js';

/** Initial and reset passwords expire after 72 hours. */
export const INITIAL_PASSWORD_MS = 72 * 60 * 60 * 1000;
const AREA = 'users';
const USER_ROW = (id: string) => `user~${id}`;
const USERNAME_ROW = (ref: string) => `username~${ref}`;
const ROLE_ROW = (name: string) => `role~${name}`;
const POLICY_ROW = 'policy';

export type UserRow = {
  partitionKey: string;
  rowKey: string;
  id: string;
  status: 'active' | 'deactivated';
  roles: string;
  usernameRef: string;
  encUsername: string;
  encEmail: string;
  encName?: string;
  passwordHash: string;
  mustChangePassword: boolean;
  initialPasswordExpiresAt?: string;
  mfaEnabled: boolean;
  encTotpSecret?: string;
  encPendingTotpSecret?: string;
  lastTotpStep?: number;
  recoveryCodeHashes?: string;
  createdAt: string;
  updatedAt: string;
  etag?: string;
};

export interface User {
  id: string;
  username: string;
  email: string;
  name?: string;
  roles: string[];
  status: 'active' | 'deactivated';
  mfaEnabled: boolean;
  mustChangePassword: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface NewUser {
  username: string;
  email: string;
  name?: string;
}

export interface Role {
  name: string;
  permissions: Permission[];
  builtIn: boolean;
}

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

/**
 * Personal accounts of a realm (a tenant, or "operator" for the vendor's staff), the tenant's own
 * roles and its security policy. Username, e-mail and name are encrypted; logins look the user up
 * through a keyed pseudonym of the username. Every change is audited in the same transaction.
 */
export class UserService {
  readonly #table: TableClient;
  readonly #audit: AuditLog;
  readonly #crypto: TenantCrypto;
  readonly #clock: () => Date;

  constructor(table: TableClient, audit: AuditLog, crypto: TenantCrypto, clock: () => Date = () => new Date()) {
    this.#table = table;
    this.#audit = audit;
    this.#crypto = crypto;
    this.#clock = clock;
  }

  partition(realm: string): string {
    return tenantPartition(realm, AREA);
  }

  async usernameRef(realm: string, username: string): Promise<string> {
    return this.#crypto.pseudonym(realm, 'username', username.normalize('NFKC').toLowerCase());
  }

  /** Creates an account with a one-time initial password that must be changed at first login. */
  async create(realm: string, input: NewUser, roles: string[], meta: RequestMeta, options: { initialPassword?: string } = {}): Promise<{ user: User; initialPassword: string }> {
    await this.#checkRoles(realm, roles);
    const id = randomBytes(12).toString('hex');
    // Only the operator bootstrap may pass a password (LABVAULT_OPERATOR_INITIAL_PASSWORD).
    const initialPassword = options.initialPassword ?? generateInitialPassword();
    const now = this.#clock();
    const partitionKey = this.partition(realm);
    const usernameRef = await this.usernameRef(realm, input.username);
    const bind = (field: string) => ({ tenant: realm, record: id, field });
    const row: UserRow = {
      partitionKey,
      rowKey: USER_ROW(id),
      id,
      status: 'active',
      roles: JSON.stringify(roles),
      usernameRef,
      encUsername: await this.#crypto.encryptJson(bind('username'), input.username),
      encEmail: await this.#crypto.encryptJson(bind('email'), input.email),
      ...(input.name !== undefined ? { encName: await this.#crypto.encryptJson(bind('name'), input.name) } : {}),
      passwordHash: await hashPassword(initialPassword),
      mustChangePassword: true,
      initialPasswordExpiresAt: new Date(now.getTime() + INITIAL_PASSWORD_MS).toISOString(),
      mfaEnabled: false,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    };
    try {
      await this.#audit.commit(
        realm,
        partitionKey,
        () => [
          ['create', { partitionKey, rowKey: USERNAME_ROW(usernameRef), userId: id }],
          ['create', row],
        ],
        [this.#event('user.create', 'C', id, meta, { roles: roles.join(',') })],
      );
    } catch (error) {
      if (error instanceof TransactionFailedError && error.statusCode === 409) throw conflict('This username is taken.');
      throw error;
    }
    return { user: await this.toUser(realm, row), initialPassword };
  }

  async count(realm: string): Promise<number> {
    let n = 0;
    const filter = odata`PartitionKey eq ${this.partition(realm)} and RowKey ge ${'user~'} and RowKey lt ${'user~~'}`;
    for await (const _ of this.#table.listEntities({ queryOptions: { filter, select: ['RowKey'] } })) n++;
    return n;
  }

  async findByUsername(realm: string, username: string): Promise<(UserRow & { etag: string }) | undefined> {
    const partitionKey = this.partition(realm);
    let userId: string;
    try {
      userId = (await this.#table.getEntity<{ userId: string }>(partitionKey, USERNAME_ROW(await this.usernameRef(realm, username)))).userId;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    return this.row(realm, userId);
  }

  async row(realm: string, id: string): Promise<(UserRow & { etag: string }) | undefined> {
    if (!/^[0-9a-f]{24}$/.test(id)) return undefined;
    try {
      return await this.#table.getEntity<UserRow>(this.partition(realm), USER_ROW(id));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async get(realm: string, id: string): Promise<User> {
    const row = await this.row(realm, id);
    if (!row) throw notFound('No such user.');
    return this.toUser(realm, row);
  }

  async list(realm: string): Promise<User[]> {
    const users: User[] = [];
    const filter = odata`PartitionKey eq ${this.partition(realm)} and RowKey ge ${'user~'} and RowKey lt ${'user~~'}`;
    for await (const row of this.#table.listEntities<UserRow>({ queryOptions: { filter } })) users.push(await this.toUser(realm, row));
    return users;
  }

  /** Changes profile fields, roles or status; every change is audited with what changed. */
  async update(
    realm: string,
    id: string,
    change: { email?: string; name?: string; roles?: string[]; status?: 'active' | 'deactivated' },
    meta: RequestMeta,
  ): Promise<User> {
    const row = await this.row(realm, id);
    if (!row) throw notFound('No such user.');
    if (change.roles) await this.#checkRoles(realm, change.roles);
    const bind = (field: string) => ({ tenant: realm, record: id, field });
    const next: UserRow = { ...row, updatedAt: this.#clock().toISOString() };
    delete next.etag;
    const events: AuditEventInput[] = [];
    const fields: string[] = [];
    if (change.email !== undefined) {
      next.encEmail = await this.#crypto.encryptJson(bind('email'), change.email);
      fields.push('email');
    }
    if (change.name !== undefined) {
      next.encName = await this.#crypto.encryptJson(bind('name'), change.name);
      fields.push('name');
    }
    if (fields.length > 0) events.push(this.#event('user.update', 'U', id, meta, { fields: fields.join(',') }));
    if (change.roles !== undefined) {
      const before = JSON.parse(row.roles) as string[];
      next.roles = JSON.stringify(change.roles);
      events.push(this.#event('user.roles.change', 'U', id, meta, { from: before.join(','), to: change.roles.join(',') }));
    }
    if (change.status !== undefined && change.status !== row.status) {
      next.status = change.status;
      events.push(this.#event(change.status === 'deactivated' ? 'user.deactivate' : 'user.reactivate', 'U', id, meta));
    }
    if (events.length === 0) return this.toUser(realm, row);
    await this.#commitRow(realm, next, row.etag, events);
    return this.toUser(realm, next);
  }

  /** A new one-time password chosen by the system (never by the admin), valid 72 hours. */
  async resetPassword(realm: string, id: string, meta: RequestMeta): Promise<{ user: User; initialPassword: string }> {
    const row = await this.row(realm, id);
    if (!row) throw notFound('No such user.');
    const initialPassword = generateInitialPassword();
    const now = this.#clock();
    const next: UserRow = {
      ...row,
      passwordHash: await hashPassword(initialPassword),
      mustChangePassword: true,
      initialPasswordExpiresAt: new Date(now.getTime() + INITIAL_PASSWORD_MS).toISOString(),
      updatedAt: now.toISOString(),
    };
    delete next.etag;
    await this.#commitRow(realm, next, row.etag, [this.#event('user.password.reset', 'U', id, meta)]);
    return { user: await this.toUser(realm, next), initialPassword };
  }

  /** Stores a new password hash (user's own change, or a transparent rehash at login). */
  async setPasswordHash(realm: string, row: UserRow & { etag: string }, passwordHash: string, meta: RequestMeta, event: 'user.password.change' | 'user.password.rehash'): Promise<void> {
    const next: UserRow = { ...row, passwordHash, updatedAt: this.#clock().toISOString() };
    delete next.etag;
    if (event === 'user.password.change') {
      next.mustChangePassword = false;
      delete next.initialPasswordExpiresAt;
    }
    await this.#commitRow(realm, next, row.etag, [this.#event(event, 'U', row.id, meta)]);
  }

  // ---- second factor (TOTP, RFC 6238) ----

  async beginTotp(realm: string, id: string, meta: RequestMeta): Promise<{ otpauthUri: string; secret: string }> {
    const row = await this.row(realm, id);
    if (!row) throw notFound('No such user.');
    const secret = new OTPAuth.Secret({ size: 20 });
    const username = await this.#crypto.decryptJson<string>({ tenant: realm, record: id, field: 'username' }, row.encUsername);
    const totp = new OTPAuth.TOTP({ issuer: 'LabVault', label: `${realm}:${username}`, algorithm: 'SHA1', digits: 6, period: 30, secret });
    const next: UserRow = { ...row, encPendingTotpSecret: await this.#crypto.encryptJson({ tenant: realm, record: id, field: 'pendingTotp' }, secret.base32) };
    delete next.etag;
    await this.#commitRow(realm, next, row.etag, [this.#event('user.mfa.enrol.start', 'U', id, meta)]);
    return { otpauthUri: totp.toString(), secret: secret.base32 };
  }

  async confirmTotp(realm: string, id: string, code: string, meta: RequestMeta): Promise<{ recoveryCodes: string[] }> {
    const row = await this.row(realm, id);
    if (!row?.encPendingTotpSecret) throw unprocessable('Start the enrolment first (POST /api/me/mfa/totp).');
    const secret = await this.#crypto.decryptJson<string>({ tenant: realm, record: id, field: 'pendingTotp' }, row.encPendingTotpSecret);
    const step = this.#totpStep(secret, code);
    if (step === undefined) throw unprocessable('The code does not match.', [{ path: '/code', message: 'wrong or expired one-time code' }]);
    const recoveryCodes = Array.from({ length: 10 }, () => randomBytes(6).toString('hex'));
    const next: UserRow = {
      ...row,
      mfaEnabled: true,
      encTotpSecret: await this.#crypto.encryptJson({ tenant: realm, record: id, field: 'totp' }, secret),
      lastTotpStep: step,
      recoveryCodeHashes: JSON.stringify(recoveryCodes.map(sha256)),
      updatedAt: this.#clock().toISOString(),
    };
    delete next.encPendingTotpSecret;
    delete next.etag;
    await this.#commitRow(realm, next, row.etag, [this.#event('user.mfa.enrol', 'U', id, meta)]);
    return { recoveryCodes };
  }

  /** Checks a TOTP code (each time step once) or a recovery code (each once); consumes it. */
  async verifySecondFactor(realm: string, row: UserRow & { etag: string }, factor: { totp?: string; recoveryCode?: string }): Promise<boolean> {
    if (!row.mfaEnabled || !row.encTotpSecret) return false;
    const next: UserRow = { ...row };
    delete next.etag;
    if (factor.totp !== undefined) {
      const secret = await this.#crypto.decryptJson<string>({ tenant: realm, record: row.id, field: 'totp' }, row.encTotpSecret);
      const step = this.#totpStep(secret, factor.totp);
      if (step === undefined || step <= (row.lastTotpStep ?? -1)) return false;
      next.lastTotpStep = step;
    } else if (factor.recoveryCode !== undefined) {
      const hashes = JSON.parse(row.recoveryCodeHashes ?? '[]') as string[];
      const presented = Buffer.from(sha256(factor.recoveryCode.trim().toLowerCase()), 'hex');
      const index = hashes.findIndex((h) => timingSafeEqual(Buffer.from(h, 'hex'), presented));
      if (index < 0) return false;
      hashes.splice(index, 1);
      next.recoveryCodeHashes = JSON.stringify(hashes);
    } else {
      return false;
    }
    try {
      await this.#table.updateEntity(next, 'Replace', { etag: row.etag });
    } catch {
      return false; // used concurrently: one of the two wins
    }
    return true;
  }

  #totpStep(secret: string, code: string): number | undefined {
    if (!/^\d{6}$/.test(code)) return undefined;
    const totp = new OTPAuth.TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret) });
    const now = this.#clock().getTime();
    const delta = totp.validate({ token: code, timestamp: now, window: 1 });
    return delta === null ? undefined : Math.floor(now / 30_000) + delta;
  }

  // ---- roles and policy ----

  async listRoles(realm: string): Promise<Role[]> {
    const roles: Role[] = Object.entries(realm === OPERATOR_REALM ? {} : BUILT_IN_ROLES).map(([name, permissions]) => ({ name, permissions: [...permissions], builtIn: true }));
    for (const [name, permissions] of Object.entries(await this.customRoles(realm))) roles.push({ name, permissions: [...permissions], builtIn: false });
    return roles;
  }

  async customRoles(realm: string): Promise<Record<string, Permission[]>> {
    const result: Record<string, Permission[]> = {};
    const filter = odata`PartitionKey eq ${this.partition(realm)} and RowKey ge ${'role~'} and RowKey lt ${'role~~'}`;
    for await (const row of this.#table.listEntities<{ rowKey: string; permissions: string }>({ queryOptions: { filter } })) {
      result[row.rowKey.slice('role~'.length)] = JSON.parse(row.permissions) as Permission[];
    }
    return result;
  }

  async putRole(realm: string, name: string, permissions: Permission[], meta: RequestMeta): Promise<{ role: Role; created: boolean }> {
    if (name in BUILT_IN_ROLES || name in OPERATOR_ROLES) throw unprocessable(`"${name}" is a built-in role and cannot be changed.`);
    const partitionKey = this.partition(realm);
    const existing = (await this.customRoles(realm))[name];
    const sorted = [...new Set(permissions)].sort();
    await this.#audit.commit(realm, partitionKey, () => [['upsert', { partitionKey, rowKey: ROLE_ROW(name), permissions: JSON.stringify(sorted) }, 'Replace']], [
      {
        event: existing ? 'role.change' : 'role.create',
        action: existing ? 'U' : 'C',
        outcome: 'success',
        actor: meta.actor,
        entity: { type: 'Role', id: name },
        purpose: 'access-management',
        correlationId: meta.correlationId,
        details: { from: (existing ?? []).join(','), to: sorted.join(',') },
      },
    ]);
    return { role: { name, permissions: sorted, builtIn: false }, created: existing === undefined };
  }

  async deleteRole(realm: string, name: string, meta: RequestMeta): Promise<void> {
    if (name in BUILT_IN_ROLES) throw unprocessable(`"${name}" is a built-in role and cannot be deleted.`);
    if (!(name in (await this.customRoles(realm)))) throw notFound('No such role.');
    const holders = (await this.list(realm)).filter((u) => u.roles.includes(name)).length;
    if (holders > 0) throw conflict(`The role is held by ${holders} user(s); take it away from them first.`);
    const partitionKey = this.partition(realm);
    await this.#audit.commit(realm, partitionKey, () => [['delete', { partitionKey, rowKey: ROLE_ROW(name) }]], [
      { event: 'role.delete', action: 'D', outcome: 'success', actor: meta.actor, entity: { type: 'Role', id: name }, purpose: 'access-management', correlationId: meta.correlationId },
    ]);
  }

  async policy(realm: string): Promise<{ requireMfa: boolean }> {
    try {
      const row = await this.#table.getEntity<{ requireMfa: boolean }>(this.partition(realm), POLICY_ROW);
      return { requireMfa: row.requireMfa };
    } catch (error) {
      if (isNotFound(error)) return { requireMfa: false };
      throw error;
    }
  }

  async setPolicy(realm: string, policy: { requireMfa: boolean }, meta: RequestMeta): Promise<void> {
    const partitionKey = this.partition(realm);
    await this.#audit.commit(realm, partitionKey, () => [['upsert', { partitionKey, rowKey: POLICY_ROW, requireMfa: policy.requireMfa }, 'Replace']], [
      {
        event: 'security-policy.change',
        action: 'U',
        outcome: 'success',
        actor: meta.actor,
        entity: { type: 'SecurityPolicy', id: realm },
        purpose: 'access-management',
        correlationId: meta.correlationId,
        details: { requireMfa: policy.requireMfa },
      },
    ]);
  }

  async toUser(realm: string, row: UserRow): Promise<User> {
    const bind = (field: string) => ({ tenant: realm, record: row.id, field });
    return {
      id: row.id,
      username: await this.#crypto.decryptJson<string>(bind('username'), row.encUsername),
      email: await this.#crypto.decryptJson<string>(bind('email'), row.encEmail),
      ...(row.encName ? { name: await this.#crypto.decryptJson<string>(bind('name'), row.encName) } : {}),
      roles: JSON.parse(row.roles) as string[],
      status: row.status,
      mfaEnabled: row.mfaEnabled,
      mustChangePassword: row.mustChangePassword,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  async #checkRoles(realm: string, roles: string[]): Promise<void> {
    const known = realm === OPERATOR_REALM ? Object.keys(OPERATOR_ROLES) : [...Object.keys(BUILT_IN_ROLES), ...Object.keys(await this.customRoles(realm))];
    const unknown = roles.filter((r) => !known.includes(r));
    if (unknown.length > 0) throw unprocessable('Unknown role.', unknown.map((r) => ({ path: '/roles', message: `no role "${r}"` })));
  }

  async #commitRow(realm: string, next: UserRow, etag: string, events: AuditEventInput[]): Promise<void> {
    const action: TransactionAction = ['update', next, 'Replace', { etag }];
    try {
      await this.#audit.commit(realm, next.partitionKey, () => [action], events);
    } catch (error) {
      if (error instanceof TransactionFailedError && error.failedIndex === 0) throw conflict('The account changed meanwhile; retry.');
      throw error;
    }
  }

  #event(event: string, action: AuditEventInput['action'], userId: string, meta: RequestMeta, details?: AuditEventInput['details']): AuditEventInput {
    return {
      event,
      action,
      outcome: 'success',
      actor: meta.actor,
      entity: { type: 'User', id: userId },
      purpose: 'access-management',
      correlationId: meta.correlationId,
      ...(details ? { details } : {}),
    };
  }
}
