import { z } from 'zod';

/** The permission vocabulary of the SPEC. */
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
] as const;

export type Permission = (typeof PERMISSIONS)[number];
export const permissionSchema = z.enum(PERMISSIONS);

/** Who is calling. Every tenant principal carries its tenant; operators carry none by default. */
export type Principal =
  | { kind: 'integration'; tenant: string; id: string; permissions: ReadonlySet<Permission> }
  | { kind: 'user'; tenant: string; id: string; permissions: ReadonlySet<Permission> };

export function hasPermission(principal: Principal, permission: Permission): boolean {
  return principal.permissions.has(permission);
}
