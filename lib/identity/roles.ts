import { odata, type TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import { conflict, exceedsGrantor, notFound, unprocessable } from '../errors.js';
import { tenantPartition } from '../storage/keys.js';
import {
  BUILT_IN_ROLES,
  exceedingPermissions,
  type Grantor,
  OPERATOR_REALM,
  OPERATOR_ROLES,
  type Permission,
  permissionsOfRoles,
} from './permissions.js';
import { auditEvent } from '../audit/events.js';

export interface Role {
  name: string;
  permissions: Permission[];
  builtIn: boolean;
}

export interface RoleServiceDependencies {
  table: TableClient;
  audit: AuditLog;
}

const AREA = 'users';
const ROLE_ROW = (name: string) => `role~${name}`;

/**
 * A tenant's roles: the built-in `self` (its own profile only: privacy by default) and
 * `tenant-admin`, and custom roles from the permission vocabulary. Nobody defines or changes a role
 * to hold permissions they do not hold themselves.
 */
export class RoleService {
  readonly #d: RoleServiceDependencies;

  constructor(dependencies: RoleServiceDependencies) {
    this.#d = dependencies;
  }

  async listRoles(realm: string): Promise<Role[]> {
    const roles: Role[] = Object.entries(realm === OPERATOR_REALM ? {} : BUILT_IN_ROLES).map(([name, permissions]) => ({
      name,
      permissions: [...permissions],
      builtIn: true,
    }));
    for (const [name, permissions] of Object.entries(await this.customRoles(realm)))
      roles.push({ name, permissions: [...permissions], builtIn: false });
    return roles;
  }

  async customRoles(realm: string): Promise<Record<string, Permission[]>> {
    const result: Record<string, Permission[]> = {};
    const filter = odata`PartitionKey eq ${tenantPartition(realm, AREA)} and RowKey ge ${'role~'} and RowKey lt ${'role~~'}`;
    for await (const row of this.#d.table.listEntities<{ rowKey: string; permissions: string }>({
      queryOptions: { filter },
    })) {
      result[row.rowKey.slice('role~'.length)] = JSON.parse(row.permissions) as Permission[];
    }
    return result;
  }

  /** The permissions the roles grant in this tenant (built-in roles without a storage read). */
  async permissionsOf(realm: string, roles: readonly string[]): Promise<Set<Permission>> {
    const builtInOnly = roles.every((r) => r in BUILT_IN_ROLES);
    return permissionsOfRoles(roles, builtInOnly ? {} : await this.customRoles(realm));
  }

  async putRole(
    realm: string,
    name: string,
    permissions: Permission[],
    meta: RequestMeta,
    grantor?: Grantor,
  ): Promise<{ role: Role; created: boolean }> {
    if (name in BUILT_IN_ROLES || name in OPERATOR_ROLES)
      throw unprocessable(`"${name}" is a built-in role and cannot be changed.`);
    const partitionKey = tenantPartition(realm, AREA);
    const existing = (await this.customRoles(realm))[name];
    const sorted = [...new Set(permissions)].sort();
    if (grantor) {
      // A role whose holders have more than the caller is not the caller's to change either.
      const exceeding = exceedingPermissions([...sorted, ...(existing ?? [])], grantor.permissions);
      if (exceeding.length > 0) throw exceedsGrantor(exceeding);
    }
    await this.#d.audit.commit(
      realm,
      partitionKey,
      () => [['upsert', { partitionKey, rowKey: ROLE_ROW(name), permissions: JSON.stringify(sorted) }, 'Replace']],
      [
        auditEvent(existing ? 'role.change' : 'role.create', existing ? 'U' : 'C', { type: 'Role', id: name }, meta, {
          purpose: 'access-management',
          details: { from: (existing ?? []).join(','), to: sorted.join(',') },
        }),
      ],
    );
    return { role: { name, permissions: sorted, builtIn: false }, created: existing === undefined };
  }

  async deleteRole(realm: string, name: string, meta: RequestMeta, grantor?: Grantor): Promise<void> {
    if (name in BUILT_IN_ROLES) throw unprocessable(`"${name}" is a built-in role and cannot be deleted.`);
    const existing = (await this.customRoles(realm))[name];
    if (!existing) throw notFound('No such role.');
    if (grantor) {
      const exceeding = exceedingPermissions(existing, grantor.permissions);
      if (exceeding.length > 0) throw exceedsGrantor(exceeding);
    }
    const partitionKey = tenantPartition(realm, AREA);
    let holders = 0;
    const filter = odata`PartitionKey eq ${partitionKey} and RowKey ge ${'user~'} and RowKey lt ${'user~~'}`;
    for await (const row of this.#d.table.listEntities<{ roles: string }>({
      queryOptions: { filter, select: ['roles'] },
    })) {
      if ((JSON.parse(row.roles) as string[]).includes(name)) holders++;
    }
    if (holders > 0) throw conflict(`The role is held by ${holders} user(s); take it away from them first.`);
    await this.#d.audit.commit(realm, partitionKey, () => [['delete', { partitionKey, rowKey: ROLE_ROW(name) }]], [
      auditEvent('role.delete', 'D', { type: 'Role', id: name }, meta, { purpose: 'access-management' }),
    ]);
  }
}
