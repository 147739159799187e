import type { AuditActor } from '../audit/types.js';
import type { UserService } from '../identity/users.js';
import type { Tenant, TenantService } from './tenants.js';

export interface TenantOnboarding {
  id: string;
  name: string;
  admin?: { username: string; email: string; name?: string };
  retention?: { imagesDays: number; ordersDays: number; afterContractEndDays: number };
}

/** Creates a tenant, its keys and (when given) its first admin; the API and the admin CLI share it. */
export async function onboardTenant(
  services: { tenants: TenantService; users: UserService },
  input: TenantOnboarding,
  meta: { actor: AuditActor; correlationId: string },
): Promise<Tenant & { admin?: { id: string; username: string; initialPassword: string } }> {
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
