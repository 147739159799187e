import type { AuditActor } from '../audit/types.js';
import { conflict } from '../errors.js';
import type { UserService } from '../identity/users.js';
import type { DeletionService } from '../retention/deletion.js';
import type { Tenant, TenantService } from './tenants.js';

export interface TenantOnboarding {
  id: string;
  name: string;
  admin?: { username: string; email: string; name?: string };
  retention?: { imagesDays: number; ordersDays: number; afterContractEndDays: number };
}

/**
 * Creates a tenant, its keys and (when given) its first admin; the API and the admin CLI share it.
 * An id that had a lifecycle (a termination, a deletion) is not used again: its deletion
 * certificate and its audit anchors stay under that id, and must not describe someone else.
 */
export async function onboardTenant(
  services: { tenants: TenantService; users: UserService; deletion: Pick<DeletionService, 'state'> },
  input: TenantOnboarding,
  meta: { actor: AuditActor; correlationId: string },
): Promise<Tenant & { admin?: { id: string; username: string; initialPassword: string } }> {
  if (await services.deletion.state(input.id))
    throw conflict('A tenant with this id exists or existed (ids of terminated tenants are not used again).');
  const tenant = await services.tenants.create(
    input.id,
    input.name,
    meta,
    input.retention ? { retention: input.retention } : {},
  );
  if (!input.admin) return tenant;
  const created = await services.users.create(input.id, input.admin, ['tenant-admin'], meta);
  return {
    ...tenant,
    admin: { id: created.user.id, username: created.user.username, initialPassword: created.initialPassword },
  };
}
