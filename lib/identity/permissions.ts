import { z } from 'zod';

/** The tenant permission vocabulary of the SPEC. */
export const PERMISSIONS = [
  'profile:read',
  'profile:update',
  'orders:create',
  'orders:read',
  'orders:update',
  'images:upload',
  'images:read',
  'users:manage',
  'roles:manage',
  'integrations:manage',
  'exports:start',
  'audit:read',
  'retention:manage',
  'breaches:acknowledge',
  'access-requests:approve',
  'subject-requests:manage',
  'sub-processors:object',
] as const;
export type Permission = (typeof PERMISSIONS)[number];
export const permissionSchema = z.enum(PERMISSIONS);

/** What the vendor's own staff may do; none of it reaches tenant data. */
export const OPERATOR_PERMISSIONS = [
  'tenants:manage',
  'access-requests:create',
  'security:read',
  'breaches:manage',
  'operators:manage',
  'backups:manage',
  'orchestrations:manage',
] as const;
export type OperatorPermission = (typeof OPERATOR_PERMISSIONS)[number];

export const BUILT_IN_ROLES: Record<string, readonly Permission[]> = {
  self: ['profile:read', 'profile:update'],
  'tenant-admin': PERMISSIONS,
};

export const OPERATOR_ROLES: Record<string, readonly OperatorPermission[]> = {
  operator: ['tenants:manage', 'access-requests:create', 'backups:manage', 'orchestrations:manage'],
  'security-officer': ['security:read', 'breaches:manage'],
  'operator-admin': ['operators:manage'],
};
export const operatorRoleSchema = z.enum(['operator', 'security-officer', 'operator-admin']);

/** The realm of the vendor's staff; never a tenant id. */
export const OPERATOR_REALM = 'operator';

/**
 * `full` tokens may do what the roles allow; a `password-change` token (first login, reset) may
 * only change the password; an `mfa-enrolment` token may only enrol a second factor.
 */
export type TokenScope = 'full' | 'password-change' | 'mfa-enrolment';

export interface StaffGrant {
  id: string;
  reason: string;
  expiresAt: string;
}

/**
 * Who is calling. `tenant` is the tenant whose data the call may reach: an integration's or user's
 * own tenant, or, for an operator, the tenant of a live, approved access grant (else undefined).
 */
export interface Principal {
  kind: 'integration' | 'user' | 'operator';
  id: string;
  /** The roles of a person (users, operators); empty for integrations. */
  roles: readonly string[];
  /** The principal's home: its tenant, or "operator" for the vendor's staff. */
  realm: string;
  tenant: string | undefined;
  permissions: ReadonlySet<Permission>;
  operatorPermissions: ReadonlySet<OperatorPermission>;
  scope: TokenScope;
  sessionId?: string;
  grant?: StaffGrant;
}

/** Permissions an operator may be granted for a tenant: never the power to grant or to approve. */
export const GRANTABLE_PERMISSIONS: readonly Permission[] = [
  'orders:read',
  'orders:update',
  'images:read',
  'audit:read',
  'exports:start',
  'retention:manage',
];

export function permissionsOfRoles(
  roles: readonly string[],
  custom: Readonly<Record<string, readonly Permission[]>>,
): Set<Permission> {
  const result = new Set<Permission>();
  for (const role of roles) for (const p of BUILT_IN_ROLES[role] ?? custom[role] ?? []) result.add(p);
  return result;
}

export function operatorPermissionsOfRoles(roles: readonly string[]): Set<OperatorPermission> {
  const result = new Set<OperatorPermission>();
  for (const role of roles) for (const p of OPERATOR_ROLES[role] ?? []) result.add(p);
  return result;
}

/** Who grants: what the caller holds, the only thing it may hand on (roles, keys, approvals). */
export interface Grantor {
  kind: Principal['kind'];
  roles: readonly string[];
  permissions: ReadonlySet<Permission>;
  operatorPermissions: ReadonlySet<OperatorPermission>;
}

/**
 * The requested permissions the grantor does not hold, sorted (empty: nothing exceeds). The own
 * profile (role `self`) reaches nobody else's data: everyone may hand it on.
 */
export function exceedingPermissions<P extends string>(requested: Iterable<P>, held: ReadonlySet<P>): P[] {
  const ownProfile = new Set<string>(BUILT_IN_ROLES.self);
  return [...new Set(requested)].filter((p) => !held.has(p) && !ownProfile.has(p)).sort();
}

/** The built-in role that holds every tenant permission; only its holders assign it. */
export const TENANT_ADMIN_ROLE = 'tenant-admin';
