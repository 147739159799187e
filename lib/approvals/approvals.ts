import { randomBytes } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { AuditEventInput, RequestMeta } from '../audit/types.js';
import { conflict, forbidden, notFound } from '../errors.js';
import { OPERATOR_REALM, type OperatorPermission, type Principal } from '../identity/permissions.js';
import { createNewRow, landedAlready } from '../storage/conditional-writes.js';
import { isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { auditEvent } from '../audit/events.js';

/**
 * Operator actions that destroy data or weaken a safeguard. Each runs only when a second operator
 * approves it: one requests, another (holding the same permission) approves, then it runs.
 */
export const APPROVAL_KINDS = {
  'legal-hold.lift': {
    permission: 'tenants:manage',
    summary: "Lift a tenant's legal hold (its deletion may then proceed)",
  },
  'retention-bounds.lower': {
    permission: 'tenants:manage',
    summary: "Lower a tenant's retention bounds (data may then be deleted earlier)",
  },
  'backup.delete': { permission: 'backups:manage', summary: 'Delete a table backup' },
  'orchestration.purge': { permission: 'orchestrations:manage', summary: "Purge a finished orchestration's history" },
} as const satisfies Record<string, { permission: OperatorPermission; summary: string }>;

export type ApprovalKind = keyof typeof APPROVAL_KINDS;
export type ApprovalStatus = 'pending' | 'executed' | 'denied' | 'expired' | 'failed';

export interface Approval {
  id: string;
  kind: ApprovalKind;
  summary: string;
  /** What the action acts on: a tenant id, a backup id, an instance id. */
  target: string;
  /** The tenant concerned, when there is one (its log records the request and the decision). */
  tenant?: string;
  params: Record<string, unknown>;
  reason: string;
  requestedBy: string;
  requestedAt: string;
  expiresAt: string;
  status: ApprovalStatus;
  decidedBy?: string;
  decidedAt?: string;
  /** Why an approved action failed to run (a domain problem's detail, never data). */
  failure?: string;
}

type ApprovalRow = Omit<Approval, 'params' | 'summary'> & {
  partitionKey: string;
  rowKey: string;
  params: string;
  /** Unique to one decision attempt: tells our own claim (its answer lost) from another's, even within a millisecond. */
  decisionId?: string;
};

const PARTITION = 'approvals';
const HOUR = 3600 * 1000;

export interface ApprovalServiceDependencies {
  platform: TableClient;
  audit: AuditLog;
  /** How long a request waits for its second operator. */
  approvalHours: number;
  clock?: () => Date;
}

/**
 * The four-eyes register: requests, decisions and outcomes, each in the operator realm's audit log
 * (and the tenant's, when one is concerned). A request is claimed under its ETag before it runs, so
 * two approvers cannot run it twice; nobody approves their own request.
 */
export class ApprovalService {
  readonly #d: ApprovalServiceDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: ApprovalServiceDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async request(
    kind: ApprovalKind,
    input: { target: string; tenant?: string; params?: Record<string, unknown>; reason: string },
    requester: Principal,
    meta: RequestMeta,
  ): Promise<Approval> {
    const now = this.#clock();
    const id = randomBytes(12).toString('hex');
    const row: ApprovalRow = {
      partitionKey: PARTITION,
      rowKey: id,
      id,
      kind,
      target: input.target,
      ...(input.tenant ? { tenant: input.tenant } : {}),
      params: JSON.stringify(input.params ?? {}),
      reason: input.reason,
      requestedBy: requester.id,
      requestedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.#d.approvalHours * HOUR).toISOString(),
      status: 'pending',
    };
    await createNewRow(this.#d.platform, row);
    await this.#audit(row, this.#event('approval.request', 'C', row, meta));
    return toApproval(row);
  }

  async list(filter: { status?: ApprovalStatus } = {}): Promise<Approval[]> {
    const out: Approval[] = [];
    for await (const row of this.#d.platform.listEntities<ApprovalRow>({
      queryOptions: { filter: odata`PartitionKey eq ${PARTITION}` },
    })) {
      const approval = this.#withExpiry(toApproval(row));
      if (!filter.status || approval.status === filter.status) out.push(approval);
    }
    return out.sort((a, b) => b.requestedAt.localeCompare(a.requestedAt));
  }

  async get(id: string): Promise<Approval> {
    return this.#withExpiry(toApproval(await this.#row(id)));
  }

  /**
   * Records a second operator's decision. On approval `execute` runs the action; its outcome is
   * recorded (executed, or failed with the problem's detail). Returns the final record.
   */
  async decide(
    id: string,
    approve: boolean,
    decider: Principal,
    meta: RequestMeta,
    execute: (approval: Approval) => Promise<void>,
  ): Promise<Approval> {
    const row = await this.#row(id);
    const approval = toApproval(row);
    if (decider.kind !== 'operator') throw forbidden('Operators decide on operator actions.');
    if (decider.id === row.requestedBy)
      throw forbidden('Nobody approves their own request: a second operator must decide.');
    if (!decider.operatorPermissions.has(APPROVAL_KINDS[approval.kind].permission))
      throw forbidden(`Deciding this request needs ${APPROVAL_KINDS[approval.kind].permission}.`);
    if (row.status !== 'pending') throw conflict(`The request is ${row.status} already.`);
    const now = this.#clock().toISOString();
    if (row.expiresAt <= now) throw conflict('The request expired; ask again.');
    const decided: ApprovalRow = {
      ...row,
      status: approve ? 'executed' : 'denied',
      decidedBy: decider.id,
      decidedAt: now,
      decisionId: randomBytes(12).toString('hex'),
    };
    delete (decided as Partial<ApprovalRow & { etag: string }>).etag;
    try {
      // The claim: of two deciders, one changes the row; the other meets a new ETag.
      await this.#d.platform.updateEntity(decided, 'Replace', { etag: (row as ApprovalRow & { etag: string }).etag });
    } catch (error) {
      // Our own claim whose answer was lost is still ours: the decision is audited and the action runs.
      if (!(await landedAlready(this.#d.platform, decided, error))) {
        if (isPreconditionFailed(error)) throw conflict('Someone decided on this request meanwhile.');
        throw error;
      }
    }
    await this.#audit(decided, this.#event(approve ? 'approval.approve' : 'approval.deny', 'U', decided, meta));
    if (!approve) return toApproval(decided);
    try {
      await execute(approval);
    } catch (error) {
      const failed: ApprovalRow = {
        ...decided,
        status: 'failed',
        failure:
          error instanceof Error && 'detail' in error
            ? String((error as { detail: unknown }).detail).slice(0, 300)
            : 'the action failed',
      };
      await this.#d.platform.upsertEntity(failed, 'Replace');
      await this.#audit(failed, { ...this.#event('approval.execute', 'E', failed, meta), outcome: 'failure' });
      throw error;
    }
    await this.#audit(decided, this.#event('approval.execute', 'E', decided, meta));
    return toApproval(decided);
  }

  async #row(id: string): Promise<ApprovalRow> {
    if (!/^[0-9a-f]{24}$/.test(id)) throw notFound('No such approval request.');
    try {
      return await this.#d.platform.getEntity<ApprovalRow>(PARTITION, id);
    } catch (error) {
      if (isNotFound(error)) throw notFound('No such approval request.');
      throw error;
    }
  }

  #withExpiry(approval: Approval): Approval {
    return approval.status === 'pending' && approval.expiresAt <= this.#clock().toISOString()
      ? { ...approval, status: 'expired' }
      : approval;
  }

  async #audit(row: ApprovalRow, event: AuditEventInput): Promise<void> {
    await this.#d.audit.record(OPERATOR_REALM, tenantPartition(OPERATOR_REALM, 'approvals'), [event]);
    if (row.tenant) await this.#d.audit.record(row.tenant, tenantPartition(row.tenant, 'lifecycle'), [event]);
  }

  #event(event: string, action: AuditEventInput['action'], row: ApprovalRow, meta: RequestMeta): AuditEventInput {
    return auditEvent(event, action, { type: 'Approval', id: row.id }, meta, {
      purpose: 'four-eyes',
      details: {
        kind: row.kind,
        target: row.target,
        requestedBy: row.requestedBy,
        ...(row.decidedBy ? { decidedBy: row.decidedBy } : {}),
      },
    });
  }
}

function toApproval(row: ApprovalRow): Approval {
  return {
    id: row.id,
    kind: row.kind,
    summary: APPROVAL_KINDS[row.kind].summary,
    target: row.target,
    ...(row.tenant ? { tenant: row.tenant } : {}),
    params: JSON.parse(row.params) as Record<string, unknown>,
    reason: row.reason,
    requestedBy: row.requestedBy,
    requestedAt: row.requestedAt,
    expiresAt: row.expiresAt,
    status: row.status,
    ...(row.decidedBy ? { decidedBy: row.decidedBy } : {}),
    ...(row.decidedAt ? { decidedAt: row.decidedAt } : {}),
    ...(row.failure ? { failure: row.failure } : {}),
  };
}
