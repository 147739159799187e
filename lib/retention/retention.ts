import type { TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import { unprocessable } from '../errors.js';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import type { TenantService } from '../tenants/tenants.js';
import { auditEvent } from '../audit/events.js';

export interface RetentionPolicy {
  imagesDays: number;
  ordersDays: number;
  afterContractEndDays: number;
  /**
   * A duty to keep records the tenant declares (e.g. 3650 days, "§630f(3) BGB"): a data subject's
   * erasure of orders younger than this is refused with the basis (Art. 17(3)(b) GDPR).
   */
  legalDuty?: { days: number; basis: string };
}

/** What the operator allows a tenant to choose (e.g. legal minimums such as §630f(3) BGB). */
export interface RetentionBounds {
  minOrdersDays: number;
  maxOrdersDays: number;
  minImagesDays: number;
  maxImagesDays: number;
  minAfterContractEndDays: number;
  maxAfterContractEndDays: number;
}

/** Medical records are kept 10 years unless another rule applies; at least 30 days after contract end. */
const DEFAULT_BOUNDS: RetentionBounds = {
  minOrdersDays: 3650,
  maxOrdersDays: 36500,
  minImagesDays: 1,
  maxImagesDays: 36500,
  minAfterContractEndDays: 30,
  maxAfterContractEndDays: 3650,
};
const DEFAULT_POLICY: RetentionPolicy = { imagesDays: 3650, ordersDays: 3650, afterContractEndDays: 30 };

const AREA = 'retention';

/** The tenant's retention policy (its instruction as controller) within the operator's bounds. */
export class RetentionService {
  readonly #table: TableClient;
  readonly #audit: AuditLog;
  readonly #tenants: TenantService;

  constructor(dependencies: { table: TableClient; audit: AuditLog; tenants: TenantService }) {
    this.#table = dependencies.table;
    this.#audit = dependencies.audit;
    this.#tenants = dependencies.tenants;
  }

  async bounds(tenant: string): Promise<RetentionBounds> {
    return (await this.#read<RetentionBounds>(tenant, 'bounds')) ?? DEFAULT_BOUNDS;
  }

  async policy(tenant: string): Promise<RetentionPolicy> {
    const stored = await this.#read<RetentionPolicy>(tenant, 'policy');
    if (stored) return stored;
    const fromOnboarding = (await this.#tenants.retention(tenant)) as Partial<RetentionPolicy> | undefined;
    return { ...DEFAULT_POLICY, ...(fromOnboarding ?? {}) };
  }

  async setPolicy(tenant: string, policy: RetentionPolicy, meta: RequestMeta): Promise<RetentionPolicy> {
    const b = await this.bounds(tenant);
    const errors = [];
    if (policy.ordersDays < b.minOrdersDays || policy.ordersDays > b.maxOrdersDays)
      errors.push({ path: '/ordersDays', message: `between ${b.minOrdersDays} and ${b.maxOrdersDays}` });
    if (policy.imagesDays < b.minImagesDays || policy.imagesDays > b.maxImagesDays)
      errors.push({ path: '/imagesDays', message: `between ${b.minImagesDays} and ${b.maxImagesDays}` });
    if (policy.imagesDays > policy.ordersDays)
      errors.push({ path: '/imagesDays', message: 'images never outlive their order: at most ordersDays' });
    if (policy.legalDuty && policy.legalDuty.days > policy.ordersDays)
      errors.push({ path: '/legalDuty/days', message: 'a duty to keep records needs ordersDays at least as long' });
    if (
      policy.afterContractEndDays < b.minAfterContractEndDays ||
      policy.afterContractEndDays > b.maxAfterContractEndDays
    ) {
      errors.push({
        path: '/afterContractEndDays',
        message: `between ${b.minAfterContractEndDays} and ${b.maxAfterContractEndDays}`,
      });
    }
    if (errors.length > 0) throw unprocessable('The policy is outside the bounds set for this tenant.', errors);
    await this.#write(tenant, 'policy', policy, meta, 'retention.policy.change');
    return policy;
  }

  /** Refuses inconsistent bounds (422) before anything is recorded or asked for. */
  validateBounds(bounds: RetentionBounds): void {
    if (
      bounds.minOrdersDays > bounds.maxOrdersDays ||
      bounds.minImagesDays > bounds.maxImagesDays ||
      bounds.minAfterContractEndDays > bounds.maxAfterContractEndDays
    ) {
      throw unprocessable('Each minimum must be at most its maximum.');
    }
    if (bounds.minAfterContractEndDays < 30)
      throw unprocessable('At least 30 days after contract end (EU Data Act).', [
        { path: '/minAfterContractEndDays', message: 'at least 30' },
      ]);
  }

  /** Sets the bounds (lowering them runs only through a four-eyes approval, see lib/approvals). */
  async setBounds(tenant: string, bounds: RetentionBounds, meta: RequestMeta): Promise<RetentionBounds> {
    this.validateBounds(bounds);
    await this.#write(tenant, 'bounds', bounds, meta, 'retention.bounds.change');
    return bounds;
  }

  async #read<T>(tenant: string, rowKey: string): Promise<T | undefined> {
    try {
      return JSON.parse(
        (await this.#table.getEntity<{ value: string }>(tenantPartition(tenant, AREA), rowKey)).value,
      ) as T;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async #write(tenant: string, rowKey: string, value: object, meta: RequestMeta, event: string): Promise<void> {
    const partitionKey = tenantPartition(tenant, AREA);
    await this.#audit.commit(
      tenant,
      partitionKey,
      () => [['upsert', { partitionKey, rowKey, value: JSON.stringify(value) }, 'Replace']],
      [
        auditEvent(event, 'U', { type: 'RetentionPolicy', id: tenant }, meta, {
          purpose: 'retention',
          details: flatDetails(value),
        }),
      ],
    );
  }
}

/** Audit details are flat: a nested setting (the legal duty) is recorded as `legalDuty.days` and so on. */
function flatDetails(value: object): Record<string, string | number> {
  const details: Record<string, string | number> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === 'object' && v !== null)
      for (const [inner, w] of Object.entries(v as Record<string, unknown>)) details[`${key}.${inner}`] = String(w);
    else details[key] = v as number;
  }
  return details;
}
