import type { TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { auditEvent } from '../audit/events.js';

export interface SecurityPolicy {
  /** Every user of the tenant must enrol a second factor before anything else. */
  requireMfa: boolean;
}

const POLICY_ROW = 'policy';

/** A tenant's login policy, kept beside its accounts. */
export class SecurityPolicyService {
  readonly #d: { table: TableClient; audit: AuditLog };

  constructor(dependencies: { table: TableClient; audit: AuditLog }) {
    this.#d = dependencies;
  }

  async policy(realm: string): Promise<SecurityPolicy> {
    try {
      const row = await this.#d.table.getEntity<{ requireMfa: boolean }>(tenantPartition(realm, 'users'), POLICY_ROW);
      return { requireMfa: row.requireMfa };
    } catch (error) {
      if (isNotFound(error)) return { requireMfa: false };
      throw error;
    }
  }

  async setPolicy(realm: string, policy: SecurityPolicy, meta: RequestMeta): Promise<void> {
    const partitionKey = tenantPartition(realm, 'users');
    await this.#d.audit.commit(
      realm,
      partitionKey,
      () => [['upsert', { partitionKey, rowKey: POLICY_ROW, requireMfa: policy.requireMfa }, 'Replace']],
      [
        auditEvent('security-policy.change', 'U', { type: 'SecurityPolicy', id: realm }, meta, {
          purpose: 'access-management',
          details: { requireMfa: policy.requireMfa },
        }),
      ],
    );
  }
}
