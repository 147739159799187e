import { randomBytes } from 'node:crypto';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { AuditEventInput, RequestMeta } from '../audit/types.js';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { conflict, exceedsGrantor, forbidden, notFound, unprocessable } from '../errors.js';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { TransactionFailedError } from '../storage/transaction.js';
import { generateInitialPassword, hashPassword } from './passwords.js';
import {
  exceedingPermissions,
  type Grantor,
  OPERATOR_REALM,
  OPERATOR_ROLES,
  operatorPermissionsOfRoles,
  TENANT_ADMIN_ROLE,
} from './permissions.js';
import type { RoleService } from './roles.js';
import { auditEvent } from '../audit/events.js';

/** Initial and reset passwords expire after 72 hours. */
const INITIAL_PASSWORD_MS = 72 * 60 * 60 * 1000;
const AREA = 'users';
const USER_ROW = (id: string) => `user~${id}`;
const USERNAME_ROW = (ref: string) => `username~${ref}`;
/** Changes with every change of who is an active tenant admin: two demotions at once cannot both pass. */
const ADMIN_CENSUS_ROW = 'admin-census';

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
  /** The last use of a second factor (a random id; see MfaService.verify). */
  factorUseId?: string;
  recoveryCodeHashes?: string;
  /**
   * The credential epoch: raised by every change of password, second factor, roles or status.
   * A session belongs to the epoch it started in; a raise ends every other session at once.
   */
  sessionEpoch?: number;
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

export interface UserChange {
  email?: string;
  name?: string;
  roles?: string[];
  status?: 'active' | 'deactivated';
}

export interface UserServiceDependencies {
  table: TableClient;
  audit: AuditLog;
  crypto: TenantCrypto;
  roles: RoleService;
  clock?: () => Date;
}

const rolesOf = (row: Pick<UserRow, 'roles'>): string[] => JSON.parse(row.roles) as string[];
const isActiveAdmin = (row: Pick<UserRow, 'roles' | 'status'>): boolean =>
  row.status === 'active' && rolesOf(row).includes(TENANT_ADMIN_ROLE);

/**
 * Personal accounts of a realm (a tenant, or "operator" for the vendor's staff). Username, e-mail
 * and name are encrypted; logins look the user up through a keyed pseudonym of the username. Every
 * change is audited in the same transaction. Changes made through the API carry their grantor:
 * nobody assigns roles beyond their own permissions, nobody manages an account that holds more
 * than they do, and the last active tenant admin stays.
 */
export class UserService {
  readonly #d: UserServiceDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: UserServiceDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  partition(realm: string): string {
    return tenantPartition(realm, AREA);
  }

  async usernameRef(realm: string, username: string): Promise<string> {
    return this.#d.crypto.pseudonym(realm, 'username', username.normalize('NFKC').toLowerCase());
  }

  /**
   * Creates an account with a one-time initial password that must be changed at first login. Without
   * a grantor (onboarding, the operator bootstrap) the roles are the system's own choice.
   */
  async create(
    realm: string,
    input: NewUser,
    roles: string[],
    meta: RequestMeta,
    options: { initialPassword?: string; grantor?: Grantor } = {},
  ): Promise<{ user: User; initialPassword: string }> {
    await this.#checkRoles(realm, roles);
    if (options.grantor) await this.#checkGrant(realm, roles, options.grantor);
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
      encUsername: await this.#d.crypto.encryptJson(bind('username'), input.username),
      encEmail: await this.#d.crypto.encryptJson(bind('email'), input.email),
      ...(input.name !== undefined ? { encName: await this.#d.crypto.encryptJson(bind('name'), input.name) } : {}),
      passwordHash: await hashPassword(initialPassword),
      mustChangePassword: true,
      initialPasswordExpiresAt: new Date(now.getTime() + INITIAL_PASSWORD_MS).toISOString(),
      mfaEnabled: false,
      sessionEpoch: 0,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    };
    try {
      await this.#d.audit.commit(
        realm,
        partitionKey,
        () => [
          ['create', { partitionKey, rowKey: USERNAME_ROW(usernameRef), userId: id }],
          ['create', row],
        ],
        [this.event('user.create', 'C', id, meta, { roles: roles.join(',') })],
      );
    } catch (error) {
      if (error instanceof TransactionFailedError && error.statusCode === 409)
        throw conflict('This username is taken.');
      throw error;
    }
    return { user: await this.toUser(realm, row), initialPassword };
  }

  async count(realm: string): Promise<number> {
    let n = 0;
    const filter = odata`PartitionKey eq ${this.partition(realm)} and RowKey ge ${'user~'} and RowKey lt ${'user~~'}`;
    for await (const _ of this.#d.table.listEntities({ queryOptions: { filter, select: ['RowKey'] } })) n++;
    return n;
  }

  async findByUsername(realm: string, username: string): Promise<(UserRow & { etag: string }) | undefined> {
    const partitionKey = this.partition(realm);
    let userId: string;
    try {
      userId = (
        await this.#d.table.getEntity<{ userId: string }>(
          partitionKey,
          USERNAME_ROW(await this.usernameRef(realm, username)),
        )
      ).userId;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    return this.row(realm, userId);
  }

  async row(realm: string, id: string): Promise<(UserRow & { etag: string }) | undefined> {
    if (!/^[0-9a-f]{24}$/.test(id)) return undefined;
    try {
      return await this.#d.table.getEntity<UserRow>(this.partition(realm), USER_ROW(id));
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
    for await (const row of this.#rows(realm)) users.push(await this.toUser(realm, row));
    return users;
  }

  /**
   * Changes profile fields, roles or status; every change is audited with what changed. A change of
   * roles or a deactivation raises the credential epoch, ending the account's sessions at once.
   */
  async update(realm: string, id: string, change: UserChange, meta: RequestMeta, grantor?: Grantor): Promise<User> {
    if (change.roles) await this.#checkRoles(realm, change.roles);
    // Re-read and re-check when another admin change landed in between (the census row moved).
    for (let attempt = 1; ; attempt++) {
      const row = await this.row(realm, id);
      if (!row) throw notFound('No such user.');
      if (grantor) {
        await this.checkManageable(realm, row, grantor);
        if (change.roles) await this.#checkGrant(realm, change.roles, grantor);
      }
      const bind = (field: string) => ({ tenant: realm, record: id, field });
      const next: UserRow = { ...row, updatedAt: this.#clock().toISOString() };
      delete next.etag;
      const events: AuditEventInput[] = [];
      const fields: string[] = [];
      if (change.email !== undefined) {
        next.encEmail = await this.#d.crypto.encryptJson(bind('email'), change.email);
        fields.push('email');
      }
      if (change.name !== undefined) {
        next.encName = await this.#d.crypto.encryptJson(bind('name'), change.name);
        fields.push('name');
      }
      if (fields.length > 0) events.push(this.event('user.update', 'U', id, meta, { fields: fields.join(',') }));
      let credentialsChanged = false;
      if (change.roles !== undefined && JSON.stringify(change.roles) !== row.roles) {
        next.roles = JSON.stringify(change.roles);
        credentialsChanged = true;
        events.push(
          this.event('user.roles.change', 'U', id, meta, { from: rolesOf(row).join(','), to: change.roles.join(',') }),
        );
      }
      if (change.status !== undefined && change.status !== row.status) {
        next.status = change.status;
        if (change.status === 'deactivated') credentialsChanged = true;
        events.push(this.event(change.status === 'deactivated' ? 'user.deactivate' : 'user.reactivate', 'U', id, meta));
      }
      if (events.length === 0) return this.toUser(realm, row);
      if (credentialsChanged) next.sessionEpoch = (row.sessionEpoch ?? 0) + 1;
      const census = isActiveAdmin(row) && !isActiveAdmin(next) ? await this.#lastAdminGuard(realm, id) : [];
      try {
        await this.commitRow(realm, next, row.etag, events, census);
      } catch (error) {
        if (error instanceof TransactionFailedError && error.failedIndex === 1 && census.length > 0 && attempt < 10)
          continue;
        throw error;
      }
      return this.toUser(realm, next);
    }
  }

  /** A new one-time password chosen by the system (never by the admin), valid 72 hours; every session ends. */
  async resetPassword(
    realm: string,
    id: string,
    meta: RequestMeta,
    grantor?: Grantor,
  ): Promise<{ user: User; initialPassword: string }> {
    const row = await this.row(realm, id);
    if (!row) throw notFound('No such user.');
    if (grantor) await this.checkManageable(realm, row, grantor);
    const initialPassword = generateInitialPassword();
    const now = this.#clock();
    const next: UserRow = {
      ...row,
      passwordHash: await hashPassword(initialPassword),
      mustChangePassword: true,
      initialPasswordExpiresAt: new Date(now.getTime() + INITIAL_PASSWORD_MS).toISOString(),
      sessionEpoch: (row.sessionEpoch ?? 0) + 1,
      updatedAt: now.toISOString(),
    };
    delete next.etag;
    await this.commitRow(realm, next, row.etag, [this.event('user.password.reset', 'U', id, meta)]);
    return { user: await this.toUser(realm, next), initialPassword };
  }

  /**
   * Stores a new password hash: the user's own change (raises the credential epoch, which it
   * returns) or a transparent rehash at login (changes nothing else).
   */
  async setPasswordHash(
    realm: string,
    row: UserRow & { etag: string },
    passwordHash: string,
    meta: RequestMeta,
    event: 'user.password.change' | 'user.password.rehash',
  ): Promise<number> {
    const next: UserRow = { ...row, passwordHash, updatedAt: this.#clock().toISOString() };
    delete next.etag;
    if (event === 'user.password.change') {
      next.mustChangePassword = false;
      delete next.initialPasswordExpiresAt;
      next.sessionEpoch = (row.sessionEpoch ?? 0) + 1;
    }
    await this.commitRow(realm, next, row.etag, [this.event(event, 'U', row.id, meta)]);
    return next.sessionEpoch ?? 0;
  }

  /**
   * Refuses (403) when the account holds a permission the grantor does not, or is a tenant admin
   * managed by someone who is not: otherwise a user with `users:manage` alone could reset an
   * admin's password and log in as them.
   */
  async checkManageable(realm: string, row: UserRow, grantor: Grantor): Promise<void> {
    const roles = rolesOf(row);
    if (roles.includes(TENANT_ADMIN_ROLE) && !grantor.roles.includes(TENANT_ADMIN_ROLE)) {
      throw forbidden('Only a tenant admin manages a tenant admin.');
    }
    const exceeding =
      realm === OPERATOR_REALM
        ? exceedingPermissions(operatorPermissionsOfRoles(roles), grantor.operatorPermissions)
        : exceedingPermissions(await this.#d.roles.permissionsOf(realm, roles), grantor.permissions);
    if (exceeding.length > 0)
      throw exceedsGrantor(
        exceeding,
        'This account holds permissions you do not hold; only someone who holds them manages it.',
      );
  }

  /** Commits a changed user row (and any extra actions of its partition) with its audit entries. */
  async commitRow(
    realm: string,
    next: UserRow,
    etag: string,
    events: AuditEventInput[],
    extra: TransactionAction[] = [],
  ): Promise<void> {
    const action: TransactionAction = ['update', next, 'Replace', { etag }];
    try {
      await this.#d.audit.commit(realm, next.partitionKey, () => [action, ...extra], events);
    } catch (error) {
      if (error instanceof TransactionFailedError && error.failedIndex === 0)
        throw conflict('The account changed meanwhile; retry.');
      throw error;
    }
  }

  event(
    event: string,
    action: AuditEventInput['action'],
    userId: string,
    meta: RequestMeta,
    details?: AuditEventInput['details'],
  ): AuditEventInput {
    return auditEvent(event, action, { type: 'User', id: userId }, meta, {
      purpose: 'access-management',
      ...(details ? { details } : {}),
    });
  }

  async toUser(realm: string, row: UserRow): Promise<User> {
    const bind = (field: string) => ({ tenant: realm, record: row.id, field });
    return {
      id: row.id,
      username: await this.#d.crypto.decryptJson<string>(bind('username'), row.encUsername),
      email: await this.#d.crypto.decryptJson<string>(bind('email'), row.encEmail),
      ...(row.encName ? { name: await this.#d.crypto.decryptJson<string>(bind('name'), row.encName) } : {}),
      roles: rolesOf(row),
      status: row.status,
      mfaEnabled: row.mfaEnabled,
      mustChangePassword: row.mustChangePassword,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  async *#rows(realm: string): AsyncGenerator<UserRow & { etag: string }> {
    const filter = odata`PartitionKey eq ${this.partition(realm)} and RowKey ge ${'user~'} and RowKey lt ${'user~~'}`;
    for await (const row of this.#d.table.listEntities<UserRow>({ queryOptions: { filter } }))
      yield row as UserRow & { etag: string };
  }

  /**
   * The census action that goes with taking tenant-admin from an active account: 409 when no other
   * active tenant admin remains. The action changes the census row under its ETag, so of two
   * concurrent demotions only one commits; the other re-reads and finds itself the last.
   */
  async #lastAdminGuard(realm: string, leaving: string): Promise<TransactionAction[]> {
    const partitionKey = this.partition(realm);
    let census: { etag: string; changes: number } | undefined;
    try {
      const row = await this.#d.table.getEntity<{ changes: number }>(partitionKey, ADMIN_CENSUS_ROW);
      census = { etag: row.etag, changes: row.changes };
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    let others = 0;
    for await (const row of this.#rows(realm)) if (row.id !== leaving && isActiveAdmin(row)) others++;
    if (others === 0) throw conflict('This is the last active tenant admin; make someone else a tenant admin first.');
    const entity = { partitionKey, rowKey: ADMIN_CENSUS_ROW, changes: (census?.changes ?? 0) + 1 };
    return [census ? ['update', entity, 'Replace', { etag: census.etag }] : ['create', entity]];
  }

  async #checkRoles(realm: string, roles: string[]): Promise<void> {
    const known =
      realm === OPERATOR_REALM
        ? Object.keys(OPERATOR_ROLES)
        : (await this.#d.roles.listRoles(realm)).map((r) => r.name);
    const unknown = roles.filter((r) => !known.includes(r));
    if (unknown.length > 0)
      throw unprocessable(
        'Unknown role.',
        unknown.map((r) => ({ path: '/roles', message: `no role "${r}"` })),
      );
  }

  /** Refuses roles that would hand on more than the grantor holds (and tenant-admin, except by a tenant admin). */
  async #checkGrant(realm: string, roles: string[], grantor: Grantor): Promise<void> {
    if (realm === OPERATOR_REALM) {
      const exceeding = exceedingPermissions(operatorPermissionsOfRoles(roles), grantor.operatorPermissions);
      if (exceeding.length > 0) throw exceedsGrantor(exceeding);
      return;
    }
    if (roles.includes(TENANT_ADMIN_ROLE) && !grantor.roles.includes(TENANT_ADMIN_ROLE))
      throw forbidden('Only a tenant admin assigns the tenant-admin role.');
    const exceeding = exceedingPermissions(await this.#d.roles.permissionsOf(realm, roles), grantor.permissions);
    if (exceeding.length > 0) throw exceedsGrantor(exceeding);
  }
}
