import { OPERATOR_REALM } from './permissions.js';
import type { UserService } from './users.js';

/**
 * On first start with an empty operator realm: the account `operator` with all operator roles,
 * its initial password from LABVAULT_OPERATOR_INITIAL_PASSWORD or generated (returned once so the
 * host can print it). It must be changed at first login like any other.
 */
export async function bootstrapOperator(
  users: UserService,
  initialPassword?: string,
): Promise<{ created: boolean; initialPassword?: string; generated?: boolean }> {
  if ((await users.count(OPERATOR_REALM)) > 0) return { created: false };
  const created = await users.create(
    OPERATOR_REALM,
    { username: 'operator', email: 'operator@localhost', name: 'Bootstrap operator' },
    ['operator', 'security-officer', 'operator-admin'],
    { actor: { type: 'system', id: 'bootstrap' }, correlationId: 'bootstrap' },
    initialPassword ? { initialPassword } : {},
  );
  return { created: true, initialPassword: created.initialPassword, generated: !initialPassword };
}
