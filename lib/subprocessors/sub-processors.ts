import { randomBytes } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import { auditEvent } from '../audit/events.js';
import type { RequestMeta } from '../audit/types.js';
import { conflict, notFound } from '../errors.js';
import { OPERATOR_REALM } from '../identity/permissions.js';
import { createNewRow, landedAlready } from '../storage/conditional-writes.js';
import { isConflict, isNotFound } from '../storage/errors.js';
import { padSeq, tenantPartition } from '../storage/keys.js';
import type { TenantService } from '../tenants/tenants.js';

/** One sub-processor as the contract names it (Art. 28(2), (4) GDPR). */
export interface SubProcessor {
  name: string;
  purpose: string;
  location: string;
  dataCategories: string[];
  safeguards: string;
}

export interface RegisterVersion {
  version: number;
  effectiveAt: string;
  /** The announced change this version came from (none for the first version). */
  changeId?: string;
  items: SubProcessor[];
}

export type ChangeStatus = 'announced' | 'effective' | 'withdrawn';

export interface PlannedChange {
  id: string;
  status: ChangeStatus;
  summary: string;
  announcedAt: string;
  announcedBy: string;
  /** The end of the objection window: the change takes effect then, not before. */
  effectiveAt: string;
  items: SubProcessor[];
  withdrawnAt?: string;
  /** Operators see every objection; a tenant sees its own. */
  objections: Objection[];
}

export interface Objection {
  tenant: string;
  reason: string;
  at: string;
  by: string;
}

type VersionRow = {
  partitionKey: string;
  rowKey: string;
  version: number;
  effectiveAt: string;
  changeId?: string;
  items: string;
};
type ChangeRow = {
  partitionKey: string;
  rowKey: string;
  id: string;
  status: ChangeStatus;
  summary: string;
  announcedAt: string;
  announcedBy: string;
  effectiveAt: string;
  items: string;
  withdrawnAt?: string;
  etag?: string;
};
type ObjectionRow = {
  partitionKey: string;
  rowKey: string;
  tenant: string;
  reason: string;
  at: string;
  by: string;
  /** Unique to one attempt: tells our own objection (its answer lost) from an earlier one. */
  objectionId?: string;
};

const PARTITION = 'sub-processors';
const OBJECTIONS = 'sub-processor-objections';
const VERSION_ROW = (version: number) => `version~${padSeq(version)}`;
const CHANGE_ROW = (id: string) => `change~${id}`;
const NOTICE_ROW = (id: string) => `sub-processors-${id}`;
const DAY = 24 * 3600 * 1000;

export interface SubProcessorDependencies {
  platform: TableClient;
  tenantData: TableClient;
  audit: AuditLog;
  tenants: TenantService;
  /** Days between an announcement and the change taking effect (LABVAULT_SUBPROCESSOR_OBJECTION_DAYS). */
  objectionDays: number;
  /** The register before any change was announced: the deployment's own hosting (see services.ts). */
  initial: SubProcessor[];
  clock?: () => Date;
}

/**
 * The register of sub-processors, versioned, and its planned changes: each announced to every
 * tenant with an objection window; it takes effect only when the window is over, and an operator
 * may withdraw it until then. Objections are visible to operators. All audited, in the operator
 * realm's log and in each tenant's.
 */
export class SubProcessorService {
  readonly #d: SubProcessorDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: SubProcessorDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  /** The register in force now (a change whose window is over is applied first) and every version. */
  async register(): Promise<{ current: RegisterVersion; versions: RegisterVersion[] }> {
    await this.#applyDue();
    const versions = await this.#versions();
    const current = versions.at(-1) ?? { version: 1, effectiveAt: new Date(0).toISOString(), items: this.#d.initial };
    return { current, versions: versions.length > 0 ? versions : [current] };
  }

  /** Planned changes (announced ones first), with the objections the caller may see. */
  async changes(viewer: { tenant?: string }): Promise<PlannedChange[]> {
    await this.#applyDue();
    const rows: ChangeRow[] = [];
    for await (const row of this.#d.platform.listEntities<ChangeRow>({
      queryOptions: {
        filter: odata`PartitionKey eq ${PARTITION} and RowKey ge ${'change~'} and RowKey lt ${'change~~'}`,
      },
    }))
      rows.push(row);
    const changes = await Promise.all(rows.map(async (row) => toChange(row, await this.#objections(row.id, viewer))));
    return changes.sort((a, b) => b.announcedAt.localeCompare(a.announcedAt));
  }

  /**
   * Announces a change (the whole new register): one at a time, effective after the objection
   * window, with a notice to every tenant.
   */
  async announce(
    input: { summary: string; items: SubProcessor[] },
    announcedBy: string,
    meta: RequestMeta,
  ): Promise<PlannedChange> {
    await this.#applyDue();
    if ((await this.changes({})).some((c) => c.status === 'announced'))
      throw conflict('A change is announced already; withdraw it or wait until it takes effect.');
    const id = randomBytes(12).toString('hex');
    const now = this.#clock();
    const row: ChangeRow = {
      partitionKey: PARTITION,
      rowKey: CHANGE_ROW(id),
      id,
      status: 'announced',
      summary: input.summary,
      announcedAt: now.toISOString(),
      announcedBy,
      effectiveAt: new Date(now.getTime() + this.#d.objectionDays * DAY).toISOString(),
      items: JSON.stringify(input.items),
    };
    await createNewRow(this.#d.platform, row);
    await this.#operatorAudit('sub-processors.announce', 'C', id, meta, { items: input.items.length });
    const text = `Planned change of sub-processors: ${input.summary}. It takes effect on ${row.effectiveAt} unless withdrawn. You may object until then (POST /api/sub-processors/changes/${id}/objections); see GET /api/sub-processors.`;
    for (const tenant of await this.#d.tenants.list()) {
      const partitionKey = tenantPartition(tenant.id, 'notices');
      await this.#d.audit.commit(
        tenant.id,
        partitionKey,
        () => [
          [
            'upsert',
            { partitionKey, rowKey: NOTICE_ROW(id), kind: 'sub-processors', text, at: row.announcedAt },
            'Replace',
          ],
        ],
        [
          auditEvent('sub-processors.notice', 'E', { type: 'SubProcessorChange', id }, meta, {
            purpose: 'contract',
            details: { effectiveAt: row.effectiveAt },
          }),
        ],
      );
    }
    return toChange(row, []);
  }

  /** A tenant's objection, with its reason, while the window is open (one per tenant and change). */
  async object(tenant: string, changeId: string, reason: string, meta: RequestMeta): Promise<Objection> {
    const change = await this.#change(changeId);
    if (change.status !== 'announced' || Date.parse(change.effectiveAt) <= this.#clock().getTime())
      throw conflict('The objection window of this change is closed.');
    const objection: ObjectionRow = {
      partitionKey: OBJECTIONS,
      rowKey: `${changeId}~${tenant}`,
      tenant,
      reason,
      at: this.#clock().toISOString(),
      by: meta.actor.id,
      objectionId: randomBytes(12).toString('hex'),
    };
    try {
      await this.#d.platform.createEntity(objection);
    } catch (error) {
      if (!(await landedAlready(this.#d.platform, objection, error))) {
        if (isConflict(error)) throw conflict('This tenant has objected to this change already.');
        throw error;
      }
    }
    await this.#d.audit.record(tenant, tenantPartition(tenant, 'contract'), [
      auditEvent('sub-processors.objection', 'C', { type: 'SubProcessorChange', id: changeId }, meta, {
        purpose: 'contract',
      }),
    ]);
    await this.#operatorAudit('sub-processors.objection', 'C', changeId, meta, { tenant });
    return { tenant, reason, at: objection.at, by: objection.by };
  }

  /** Withdraws an announced change before it takes effect (e.g. after objections). */
  async withdraw(changeId: string, meta: RequestMeta): Promise<PlannedChange> {
    await this.#applyDue();
    const change = await this.#change(changeId);
    if (change.status !== 'announced') throw conflict(`This change is ${change.status}.`);
    const next: ChangeRow = { ...change, status: 'withdrawn', withdrawnAt: this.#clock().toISOString() };
    delete next.etag;
    try {
      await this.#d.platform.updateEntity(next, 'Replace', { etag: change.etag });
    } catch (error) {
      if (error instanceof Error && 'statusCode' in error && error.statusCode === 412)
        throw conflict('The change took effect or changed meanwhile.');
      throw error;
    }
    await this.#operatorAudit('sub-processors.withdraw', 'U', changeId, meta);
    return toChange(next, await this.#objections(changeId, {}));
  }

  /**
   * Applies an announced change whose window is over: a new register version (created once; a
   * concurrent reader that gets there first wins) and the change marked effective, under its ETag.
   */
  async #applyDue(): Promise<void> {
    const now = this.#clock().getTime();
    for await (const change of this.#d.platform.listEntities<ChangeRow>({
      queryOptions: {
        filter: odata`PartitionKey eq ${PARTITION} and RowKey ge ${'change~'} and RowKey lt ${'change~~'} and status eq ${'announced'}`,
      },
    })) {
      if (Date.parse(change.effectiveAt) > now) continue;
      const versions = await this.#versions();
      if (!versions.some((v) => v.changeId === change.id)) {
        const version = (versions.at(-1)?.version ?? 1) + 1;
        try {
          await this.#d.platform.createEntity<VersionRow>({
            partitionKey: PARTITION,
            rowKey: VERSION_ROW(version),
            version,
            effectiveAt: change.effectiveAt,
            changeId: change.id,
            items: change.items,
          });
        } catch (error) {
          if (!isConflict(error)) throw error; // another reader applied it
        }
      }
      try {
        const next: ChangeRow = { ...change, status: 'effective' };
        delete next.etag;
        await this.#d.platform.updateEntity(next, 'Replace', { etag: change.etag });
        await this.#operatorAudit('sub-processors.effective', 'U', change.id, {
          actor: { type: 'system', id: 'sub-processors' },
          correlationId: `sub-processors-${change.id}`,
        });
      } catch (error) {
        if (!(error instanceof Error && 'statusCode' in error && error.statusCode === 412)) throw error;
      }
    }
  }

  async #versions(): Promise<RegisterVersion[]> {
    const versions: RegisterVersion[] = [];
    for await (const row of this.#d.platform.listEntities<VersionRow>({
      queryOptions: {
        filter: odata`PartitionKey eq ${PARTITION} and RowKey ge ${'version~'} and RowKey lt ${'version~~'}`,
      },
    }))
      versions.push({
        version: row.version,
        effectiveAt: row.effectiveAt,
        ...(row.changeId ? { changeId: row.changeId } : {}),
        items: JSON.parse(row.items) as SubProcessor[],
      });
    // The first version is the initial register, stored with the first change so history stays whole.
    if (versions.length > 0 && versions[0]?.version !== 1)
      versions.unshift({ version: 1, effectiveAt: new Date(0).toISOString(), items: this.#d.initial });
    return versions.sort((a, b) => a.version - b.version);
  }

  async #change(id: string): Promise<ChangeRow> {
    if (!/^[0-9a-f]{24}$/.test(id)) throw notFound('No such change.');
    try {
      return await this.#d.platform.getEntity<ChangeRow>(PARTITION, CHANGE_ROW(id));
    } catch (error) {
      if (isNotFound(error)) throw notFound('No such change.');
      throw error;
    }
  }

  async #objections(changeId: string, viewer: { tenant?: string }): Promise<Objection[]> {
    const filter =
      viewer.tenant === undefined
        ? odata`PartitionKey eq ${OBJECTIONS} and RowKey ge ${`${changeId}~`} and RowKey lt ${`${changeId}~~`}`
        : odata`PartitionKey eq ${OBJECTIONS} and RowKey eq ${`${changeId}~${viewer.tenant}`}`;
    const out: Objection[] = [];
    for await (const row of this.#d.platform.listEntities<ObjectionRow>({ queryOptions: { filter } }))
      out.push({ tenant: row.tenant, reason: row.reason, at: row.at, by: row.by });
    return out;
  }

  async #operatorAudit(
    event: string,
    action: 'C' | 'U',
    id: string,
    meta: RequestMeta,
    details: Record<string, string | number> = {},
  ): Promise<void> {
    await this.#d.audit.record(OPERATOR_REALM, tenantPartition(OPERATOR_REALM, 'contract'), [
      auditEvent(event, action, { type: 'SubProcessorChange', id }, meta, { purpose: 'contract', details }),
    ]);
  }
}

function toChange(row: ChangeRow, objections: Objection[]): PlannedChange {
  return {
    id: row.id,
    status: row.status,
    summary: row.summary,
    announcedAt: row.announcedAt,
    announcedBy: row.announcedBy,
    effectiveAt: row.effectiveAt,
    items: JSON.parse(row.items) as SubProcessor[],
    ...(row.withdrawnAt ? { withdrawnAt: row.withdrawnAt } : {}),
    objections,
  };
}
