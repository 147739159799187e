import { randomBytes } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import { conflict, exceedsGrantor, forbidden, notFound } from '../errors.js';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { TransactionFailedError } from '../storage/transaction.js';
import { exceedingPermissions, type Permission, type Principal, type StaffGrant } from './permissions.js';
import { auditEvent } from '../audit/events.js';

export interface AccessRequest {
  id: string;
  tenant: string;
  operatorId: string;
  reason: string;
  minutes: number;
  permissions: Permission[];
  status: 'pending' | 'approved' | 'denied';
  requestedAt: string;
  decidedAt?: string;
  decidedBy?: string;
  expiresAt?: string;
  /** Set when the tenant ended an approved grant before it expired. */
  revokedAt?: string;
}

type RequestRow = Omit<AccessRequest, 'permissions' | 'tenant'> & {
  partitionKey: string;
  rowKey: string;
  permissions: string;
};

const AREA = 'staff-access';
/** The longest staff grant a tenant can approve (8 hours). */
export const STAFF_GRANT_MAX_MINUTES = 480;
const ROW = (id: string) => `request~${id}`;

/**
 * Need-to-know access of the vendor's staff: an operator asks for one tenant, with a reason, for a
 * number of minutes and a set of permissions; the tenant's admin approves or denies; the grant
 * expires by itself. Requests, decisions and every call made under a grant are in the tenant's log.
 */
export class AccessRequestService {
  readonly #table: TableClient;
  readonly #audit: AuditLog;
  readonly #clock: () => Date;

  constructor(dependencies: { table: TableClient; audit: AuditLog; clock?: () => Date }) {
    this.#table = dependencies.table;
    this.#audit = dependencies.audit;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async create(
    tenant: string,
    operatorId: string,
    input: { reason: string; minutes: number; permissions: Permission[] },
    meta: RequestMeta,
  ): Promise<AccessRequest> {
    const id = randomBytes(12).toString('hex');
    const partitionKey = tenantPartition(tenant, AREA);
    const row: RequestRow = {
      partitionKey,
      rowKey: ROW(id),
      id,
      operatorId,
      reason: input.reason,
      minutes: input.minutes,
      permissions: JSON.stringify([...new Set(input.permissions)].sort()),
      status: 'pending',
      requestedAt: this.#clock().toISOString(),
    };
    await this.#audit.commit(tenant, partitionKey, () => [['create', row]], [
      auditEvent('staff-access.request', 'C', { type: 'AccessRequest', id }, meta, {
        purpose: input.reason,
        details: { minutes: input.minutes, permissions: row.permissions },
      }),
    ]);
    return toRequest(tenant, row);
  }

  async list(tenant: string): Promise<AccessRequest[]> {
    const result: AccessRequest[] = [];
    const filter = odata`PartitionKey eq ${tenantPartition(tenant, AREA)} and RowKey ge ${'request~'} and RowKey lt ${'request~~'}`;
    for await (const row of this.#table.listEntities<RequestRow>({ queryOptions: { filter } }))
      result.push(toRequest(tenant, row));
    return result.sort((a, b) => (a.requestedAt < b.requestedAt ? 1 : -1));
  }

  async decide(
    tenant: string,
    id: string,
    approve: boolean,
    decidedBy: Principal,
    meta: RequestMeta,
  ): Promise<AccessRequest> {
    // Staff never approve their own (or each other's) access, even with a grant.
    if (decidedBy.kind !== 'user' || decidedBy.realm !== tenant)
      throw forbidden('Only the tenant’s own people decide on staff access.');
    const partitionKey = tenantPartition(tenant, AREA);
    const row = await this.#row(tenant, id);
    if (row.status !== 'pending') throw conflict(`The request was ${row.status} already.`);
    if (approve) {
      // Nobody grants more than they hold: the approver must hold every permission asked for.
      const exceeding = exceedingPermissions(JSON.parse(row.permissions) as Permission[], decidedBy.permissions);
      if (exceeding.length > 0) throw exceedsGrantor(exceeding);
    }
    const now = this.#clock();
    const next: RequestRow = {
      ...row,
      status: approve ? 'approved' : 'denied',
      decidedAt: now.toISOString(),
      decidedBy: decidedBy.id,
      ...(approve ? { expiresAt: new Date(now.getTime() + row.minutes * 60_000).toISOString() } : {}),
    };
    delete (next as Partial<typeof row>).etag;
    try {
      await this.#audit.commit(tenant, partitionKey, () => [['update', next, 'Replace', { etag: row.etag }]], [
        auditEvent(approve ? 'staff-access.approve' : 'staff-access.deny', 'U', { type: 'AccessRequest', id }, meta, {
          purpose: row.reason,
          details: { operator: row.operatorId, ...(next.expiresAt ? { expiresAt: next.expiresAt } : {}) },
        }),
      ]);
    } catch (error) {
      if (error instanceof TransactionFailedError && error.failedIndex === 0)
        throw conflict('The request changed meanwhile; reload it.');
      throw error;
    }
    return toRequest(tenant, next);
  }

  /** Ends an approved grant at once (the tenant's decision); links issued under it stop working. */
  async revoke(tenant: string, id: string, revokedBy: Principal, meta: RequestMeta): Promise<AccessRequest> {
    if (revokedBy.kind !== 'user' || revokedBy.realm !== tenant)
      throw forbidden('Only the tenant’s own people end staff access.');
    const row = await this.#row(tenant, id);
    const now = this.#clock().toISOString();
    if (row.status !== 'approved' || row.revokedAt || (row.expiresAt ?? '') <= now)
      throw conflict('The grant is not live.');
    const next: RequestRow = { ...row, revokedAt: now, expiresAt: now };
    delete (next as Partial<typeof row>).etag;
    try {
      await this.#audit.commit(tenant, row.partitionKey, () => [['update', next, 'Replace', { etag: row.etag }]], [
        auditEvent('staff-access.revoke', 'U', { type: 'AccessRequest', id }, meta, {
          purpose: row.reason,
          details: { operator: row.operatorId },
        }),
      ]);
    } catch (error) {
      if (error instanceof TransactionFailedError && error.failedIndex === 0)
        throw conflict('The request changed meanwhile; reload it.');
      throw error;
    }
    return toRequest(tenant, next);
  }

  async #row(tenant: string, id: string): Promise<RequestRow & { etag: string }> {
    try {
      return await this.#table.getEntity<RequestRow>(tenantPartition(tenant, AREA), ROW(id));
    } catch (error) {
      if (isNotFound(error)) throw notFound('No such access request.');
      throw error;
    }
  }

  /** The operator's live grants for the tenant, merged; undefined when there is none. */
  async liveGrant(
    tenant: string,
    operatorId: string,
  ): Promise<(StaffGrant & { permissions: Permission[] }) | undefined> {
    const now = this.#clock().toISOString();
    const filter = odata`PartitionKey eq ${tenantPartition(tenant, AREA)} and operatorId eq ${operatorId} and status eq ${'approved'} and expiresAt gt ${now}`;
    let grant: (StaffGrant & { permissions: Permission[] }) | undefined;
    for await (const row of this.#table.listEntities<RequestRow>({ queryOptions: { filter } })) {
      const permissions = JSON.parse(row.permissions) as Permission[];
      if (!grant) grant = { id: row.id, reason: row.reason, expiresAt: row.expiresAt ?? now, permissions };
      else grant.permissions = [...new Set([...grant.permissions, ...permissions])];
    }
    return grant;
  }

  async recordCall(principal: Principal, operationId: string, meta: RequestMeta): Promise<void> {
    if (!principal.grant || !principal.tenant) return;
    await this.#audit.record(principal.tenant, tenantPartition(principal.tenant, AREA), [
      auditEvent('staff-access.call', 'E', { type: 'Operation', id: operationId }, meta, {
        purpose: principal.grant.reason,
        details: { grant: principal.grant.id },
      }),
    ]);
  }
}

function toRequest(tenant: string, row: RequestRow): AccessRequest {
  return {
    id: row.id,
    tenant,
    operatorId: row.operatorId,
    reason: row.reason,
    minutes: row.minutes,
    permissions: JSON.parse(row.permissions) as Permission[],
    status: row.status,
    requestedAt: row.requestedAt,
    ...(row.decidedAt ? { decidedAt: row.decidedAt } : {}),
    ...(row.decidedBy ? { decidedBy: row.decidedBy } : {}),
    ...(row.expiresAt ? { expiresAt: row.expiresAt } : {}),
    ...(row.revokedAt ? { revokedAt: row.revokedAt } : {}),
  };
}
