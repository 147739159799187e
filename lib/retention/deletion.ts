import { recordWorkflow } from '../observability/instruments.js';
import { randomBytes } from 'node:crypto';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import { CompactSign, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import type { TenantKeyring } from '../crypto/keyring.js';
import type { DestroyedSecret, SecretStore } from '../crypto/secret-store.js';
import type { ImageService } from '../images/images.js';
import { conflict, notFound } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { OrderService } from '../orders/orders.js';
import { deleteItems, listPrefixCompletely, type StoredItem } from '../storage/blobs.js';
import { CONTAINERS, type StorageClients, TABLES } from '../storage/clients.js';
import { landedAlready } from '../storage/conditional-writes.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { tenantPartition, tenantPartitionRange } from '../storage/keys.js';
import { rowsAfter } from '../storage/pages.js';
import { submitTransaction, TransactionFailedError } from '../storage/transaction.js';
import type { TenantService } from '../tenants/tenants.js';
import type { RetentionService } from './retention.js';
import { auditEvent } from '../audit/events.js';

/** `not-terminated`: a legal hold was set or lifted, but no termination is in force. */
type DeletionStatus = 'scheduled' | 'on-hold' | 'deleting' | 'completed' | 'withdrawn' | 'not-terminated';

type LifecycleRow = {
  partitionKey: string;
  rowKey: string;
  status: DeletionStatus;
  contractEndsAt?: string;
  /** When the termination was recorded: the notice period runs from here. */
  recordedAt?: string;
  /** recordedAt + the notice period: no deletion before, unless the tenant's admin confirms it. */
  noticeEndsAt?: string;
  deleteAt?: string;
  legalHold: boolean;
  /** The tenant admin's confirmation of early deletion (the controller's decision). */
  confirmedAt?: string;
  confirmedBy?: string;
  withdrawnAt?: string;
  startedAt?: string;
  certificate?: string;
  /** JSON: the tenant's rows by kind when deletion began. */
  rowCensus?: string;
  /** JSON: the tenant's blobs (with versions and snapshots) and bytes when deletion began. */
  blobCensus?: string;
};

export interface DeletionState {
  status: DeletionStatus;
  deleteAt: string | null;
  contractEndsAt: string | null;
  recordedAt: string | null;
  noticeEndsAt: string | null;
  legalHold: boolean;
  confirmedAt?: string;
  withdrawnAt?: string;
  startedAt?: string;
  certificate?: DeletionCertificate;
}

export interface DeletionCertificate {
  certificate: Record<string, unknown>;
  /** ES256 compact JWS over the certificate, by the operator realm's key (see /api/deletion-certificates/keys). */
  jws: string;
}

const PARTITION = 'deletion';
const SIGNING_SECRET = 'certificate-signing-key';
const DAY = 24 * 3600 * 1000;
/** Partitions deleted at once (entity-group transactions of 100 rows each). */
export const DELETE_CONCURRENCY = 4;

/**
 * Record-level retention and the deletion of a whole tenant at contract end: every row, every blob
 * (with versions and snapshots), then its keys destroyed (so copies in geo-replicas and backups stay
 * unreadable), a verification scan, and a signed certificate without personal data.
 */
export class DeletionService {
  constructor(
    private readonly d: {
      storage: StorageClients;
      platform: TableClient;
      tenantData: TableClient;
      audit: AuditLog;
      orders: OrderService;
      images: ImageService;
      tenants: TenantService;
      retention: RetentionService;
      secrets: SecretStore;
      keyring: TenantKeyring;
      keyVaultSoftDeleteDays: number;
      /** Days from recording a termination to the earliest deletion (at least 7). */
      terminationNoticeDays: number;
      logger: Logger;
      clock?: () => Date;
    },
  ) {}

  #now(): Date {
    return this.d.clock?.() ?? new Date();
  }

  /** Deletes what the tenant's policy says is due: images after imagesDays, orders (with images) after ordersDays. */
  async deleteDue(tenant: string, asOf: Date, meta: RequestMeta): Promise<{ orders: number; images: number }> {
    const policy = await this.d.retention.policy(tenant);
    this.d.logger.log('info', 'retention.run.started', { tenant, asOf: asOf.toISOString() });
    let images = 0;
    let orders = 0;
    const imageCutoff = new Date(asOf.getTime() - policy.imagesDays * DAY).toISOString();
    for await (const row of this.d.images.rows(tenant, { before: imageCutoff })) {
      await this.d.images.deleteImage(tenant, row, meta, 'retention');
      images++;
    }
    const orderCutoff = new Date(asOf.getTime() - policy.ordersDays * DAY).toISOString();
    for await (const orderId of this.d.orders.dueOrders(tenant, orderCutoff)) {
      for await (const row of this.d.images.rows(tenant, { orderId })) {
        await this.d.images.deleteImage(tenant, row, meta, 'retention');
        images++;
      }
      if (await this.d.orders.deleteOrder(tenant, orderId, meta, 'retention')) orders++;
    }
    this.d.logger.log('info', 'retention.run.completed', { tenant, orders, images });
    return { orders, images };
  }

  async #row(tenant: string): Promise<(LifecycleRow & { etag: string }) | undefined> {
    try {
      return await this.d.platform.getEntity<LifecycleRow>(PARTITION, tenant);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Records a termination. Deletion comes no earlier than the notice period after this moment,
   * whatever the contract end: deleteAt = max(contractEndsAt + afterContractEndDays, now + notice).
   * The tenant is notified at once and can export until then. A second termination while one is
   * in force is refused: withdraw it first.
   */
  async schedule(
    tenant: string,
    contractEndsAt: string,
    meta: RequestMeta,
  ): Promise<{ deleteAt: string; noticeEndsAt: string }> {
    if (!(await this.d.tenants.get(tenant))) throw notFound('No such tenant.');
    const existing = await this.#row(tenant);
    if (existing?.status === 'deleting' || existing?.status === 'completed')
      throw conflict(`The tenant's deletion is ${existing.status}.`);
    if (existing?.deleteAt && (existing.status === 'scheduled' || existing.status === 'on-hold'))
      throw conflict('A termination is recorded already; withdraw it first (DELETE /api/tenants/{id}/termination).');
    const now = this.#now();
    const days = Math.max(30, (await this.d.retention.policy(tenant)).afterContractEndDays);
    const noticeEndsAt = new Date(now.getTime() + this.d.terminationNoticeDays * DAY).toISOString();
    const afterContract = new Date(Date.parse(contractEndsAt) + days * DAY).toISOString();
    const deleteAt = afterContract > noticeEndsAt ? afterContract : noticeEndsAt;
    const legalHold = existing?.legalHold ?? false;
    const row: LifecycleRow = {
      partitionKey: PARTITION,
      rowKey: tenant,
      status: legalHold ? 'on-hold' : 'scheduled',
      contractEndsAt,
      recordedAt: now.toISOString(),
      noticeEndsAt,
      deleteAt,
      legalHold,
    };
    await this.#write(row, existing);
    await this.d.audit.record(tenant, tenantPartition(tenant, 'lifecycle'), [
      auditEvent('tenant.termination', 'U', { type: 'Tenant', id: tenant }, meta, {
        purpose: 'contract-end',
        details: { contractEndsAt, deleteAt, noticeEndsAt },
      }),
    ]);
    await this.notice(tenant, 'scheduled');
    return { deleteAt, noticeEndsAt };
  }

  /**
   * Early deletion, the controller's decision (GDPR Art. 28(3)(g)): the tenant's own admin confirms
   * (re-authenticated by the caller) and deletion may start at once. Never during a legal hold.
   */
  async confirmEarly(tenant: string, confirmedBy: string, meta: RequestMeta): Promise<{ deleteAt: string }> {
    const existing = await this.#row(tenant);
    if (!existing?.deleteAt || existing.status === 'withdrawn' || existing.status === 'not-terminated')
      throw conflict('No termination is recorded for this tenant.');
    if (existing.status === 'deleting' || existing.status === 'completed')
      throw conflict(`The tenant's deletion is ${existing.status}.`);
    if (existing.legalHold) throw conflict('A legal hold stands: deletion waits until it is lifted.');
    const now = this.#now().toISOString();
    await this.#write({ ...existing, deleteAt: now, confirmedAt: now, confirmedBy }, existing);
    await this.d.audit.record(tenant, tenantPartition(tenant, 'lifecycle'), [
      auditEvent('tenant.deletion.confirmed', 'U', { type: 'Tenant', id: tenant }, meta, {
        purpose: 'contract-end',
        details: { scheduledFor: existing.deleteAt },
      }),
    ]);
    return { deleteAt: now };
  }

  /** Withdraws a termination before deletion starts; the tenant is told. */
  async withdraw(tenant: string, meta: RequestMeta): Promise<void> {
    const existing = await this.#row(tenant);
    if (!existing?.deleteAt || existing.status === 'withdrawn' || existing.status === 'not-terminated')
      throw notFound('No termination is recorded for this tenant.');
    if (existing.status === 'deleting' || existing.status === 'completed')
      throw conflict(`The tenant's deletion is ${existing.status}: too late to withdraw.`);
    await this.#write(
      {
        partitionKey: PARTITION,
        rowKey: tenant,
        status: 'withdrawn',
        legalHold: existing.legalHold,
        contractEndsAt: existing.contractEndsAt,
        withdrawnAt: this.#now().toISOString(),
      } as LifecycleRow,
      existing,
    );
    await this.d.audit.record(tenant, tenantPartition(tenant, 'lifecycle'), [
      auditEvent('tenant.termination.withdrawn', 'U', { type: 'Tenant', id: tenant }, meta, {
        purpose: 'contract-end',
        details: { deleteAt: existing.deleteAt },
      }),
    ]);
    await this.notice(tenant, 'withdrawn');
  }

  /** Sets or lifts the legal hold (a lift runs only through a four-eyes approval, see lib/approvals). */
  async setLegalHold(tenant: string, hold: boolean, meta: RequestMeta): Promise<void> {
    if (!(await this.d.tenants.get(tenant))) throw notFound('No such tenant.');
    const existing = await this.#row(tenant);
    if (existing?.status === 'deleting' || existing?.status === 'completed')
      throw conflict(`The tenant's deletion is ${existing.status}.`);
    const terminated =
      existing?.deleteAt !== undefined && (existing.status === 'scheduled' || existing.status === 'on-hold');
    const status: DeletionStatus = hold ? 'on-hold' : terminated ? 'scheduled' : 'not-terminated';
    await this.#write(
      { ...(existing ?? { partitionKey: PARTITION, rowKey: tenant }), legalHold: hold, status } as LifecycleRow,
      existing,
    );
    await this.d.audit.record(tenant, tenantPartition(tenant, 'lifecycle'), [
      auditEvent(hold ? 'tenant.legal-hold' : 'tenant.legal-hold.lifted', 'U', { type: 'Tenant', id: tenant }, meta, {
        purpose: 'legal-hold',
      }),
    ]);
  }

  async state(tenant: string): Promise<DeletionState | undefined> {
    const row = await this.#row(tenant);
    return row ? stateOf(row) : undefined;
  }

  /** Every tenant's lifecycle state in one query (one small partition): the operators' tenant list. */
  /** One page of the lifecycles in tenant-id order: those after `after`, at most `limit`. */
  async statesPage(options: { after?: string | undefined; limit: number }): Promise<Map<string, DeletionState>> {
    const rows = await rowsAfter<LifecycleRow>(this.d.platform, PARTITION, options);
    return new Map(rows.map((row) => [row.rowKey, stateOf(row)]));
  }

  async states(): Promise<Map<string, DeletionState>> {
    const states = new Map<string, DeletionState>();
    for await (const row of this.d.platform.listEntities<LifecycleRow>({
      queryOptions: { filter: odata`PartitionKey eq ${PARTITION}` },
    }))
      states.set(row.rowKey, stateOf(row));
    return states;
  }

  /** Tells the tenant's admins (a notice in LabVault, audited): the date, and that they can export until then. */
  async notice(tenant: string, kind: 'scheduled' | 'reminder' | 'withdrawn'): Promise<void> {
    const row = await this.#row(tenant);
    if (kind !== 'withdrawn' && !row?.deleteAt) return;
    const partitionKey = tenantPartition(tenant, 'notices');
    const text =
      kind === 'scheduled'
        ? `Your contract ends on ${row?.contractEndsAt}. All your data will be deleted irrevocably on ${row?.deleteAt}. Until then you can export everything (POST /api/exports); your admin may confirm an earlier deletion (POST /api/tenants/${tenant}/deletion/confirmation).`
        : kind === 'reminder'
          ? `Reminder: all your data will be deleted irrevocably on ${row?.deleteAt}. Export it before then if you have not (POST /api/exports).`
          : 'The termination of your contract was withdrawn: no deletion is scheduled.';
    // The newest notice replaces what it contradicts (a withdrawn termination has no deletion date).
    const stale = kind === 'withdrawn' ? ['deletion-scheduled', 'deletion-reminder'] : ['deletion-withdrawn'];
    await this.d.audit.commit(
      tenant,
      partitionKey,
      async () => {
        const actions: TransactionAction[] = [
          [
            'upsert',
            { partitionKey, rowKey: `deletion-${kind}`, kind, text, at: this.#now().toISOString() },
            'Replace',
          ],
        ];
        for (const rowKey of stale) {
          try {
            await this.d.tenantData.getEntity(partitionKey, rowKey);
            actions.push(['delete', { partitionKey, rowKey }]);
          } catch (error) {
            if (!isNotFound(error)) throw error;
          }
        }
        return actions;
      },
      [
        auditEvent(
          `tenant.deletion.${kind}`,
          'E',
          { type: 'Tenant', id: tenant },
          { actor: { type: 'system', id: 'deletion' }, correlationId: `deletion-${tenant}` },
          { purpose: 'contract-end' },
        ),
      ],
    );
  }

  async notices(tenant: string): Promise<{ kind: string; text: string; at: string }[]> {
    // Every notice of the tenant: its deletion's, and announcements such as a change of sub-processors.
    const filter = odata`PartitionKey eq ${tenantPartition(tenant, 'notices')}`;
    const out: { kind: string; text: string; at: string }[] = [];
    for await (const r of this.d.tenantData.listEntities<{ kind: string; text: string; at: string }>({
      queryOptions: { filter },
    }))
      if (typeof r.kind === 'string' && typeof r.text === 'string') out.push({ kind: r.kind, text: r.text, at: r.at }); // not the partition's audit rows
    return out;
  }

  async isHeld(tenant: string): Promise<boolean> {
    return (await this.#row(tenant))?.legalHold ?? false;
  }

  /**
   * Moves a due termination to `deleting`, under the row's ETag: only when it is scheduled, not
   * held, not withdrawn, and its date has come. A deletion under way (a step repeated after a
   * crash) answers its start time again.
   */
  async start(tenant: string): Promise<{ startedAt: string } | { refused: string }> {
    const row = await this.#row(tenant);
    if (row?.status === 'deleting' && row.startedAt) return { startedAt: row.startedAt };
    if (!row?.deleteAt || row.status !== 'scheduled' || row.legalHold)
      return { refused: row ? (row.legalHold ? 'on-hold' : row.status) : 'not-scheduled' };
    if (row.deleteAt > this.#now().toISOString()) return { refused: 'not-due' };
    const startedAt = this.#now().toISOString();
    try {
      await this.d.platform.updateEntity(
        { partitionKey: PARTITION, rowKey: tenant, status: 'deleting', startedAt },
        'Merge',
        { etag: row.etag },
      );
    } catch (error) {
      if (isPreconditionFailed(error)) return { refused: 'changed' };
      throw error;
    }
    this.d.logger.log('info', 'deletion.started', { tenant, confirmed: row.confirmedAt !== undefined });
    return { startedAt };
  }

  /** Writes the lifecycle row under the ETag it was read with (or creates it): concurrent changes do not pass each other. */
  async #write(row: LifecycleRow, existing: (LifecycleRow & { etag: string }) | undefined): Promise<void> {
    const entity = { ...row, partitionKey: PARTITION, rowKey: row.rowKey } as LifecycleRow & { etag?: string };
    delete entity.etag;
    try {
      if (existing) await this.d.platform.updateEntity(entity, 'Replace', { etag: existing.etag });
      else await this.d.platform.createEntity(entity);
    } catch (error) {
      if (await landedAlready(this.d.platform, entity, error)) return; // our own write, its answer lost
      if (isPreconditionFailed(error) || isConflict(error))
        throw conflict("The tenant's lifecycle changed meanwhile; reload and retry.");
      throw error;
    }
  }

  /**
   * Every table row of the tenant (its key range); the directory row last. Returns the rows by kind
   * as they were when deletion began: the count is taken once and kept with the deletion's state, so
   * a run repeated after a crash or a storage fault reports the same figures as an undisturbed one.
   */
  async deleteRows(tenant: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    const { from, to } = tenantPartitionRange(tenant);
    const byPartition = new Map<string, string[]>();
    for await (const row of this.d.tenantData.listEntities({
      queryOptions: {
        filter: odata`PartitionKey ge ${from} and PartitionKey lt ${to}`,
        select: ['PartitionKey', 'RowKey'],
      },
    })) {
      const list = byPartition.get(row.partitionKey as string) ?? [];
      list.push(row.rowKey as string);
      byPartition.set(row.partitionKey as string, list);
      const kind = (row.rowKey as string).split('~')[0] ?? 'row';
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
    const census = await this.#census(tenant, counts);
    // Partitions are independent: a few at a time keeps storage busy while each batch is in flight.
    const partitions = [...byPartition];
    await Promise.all(
      Array.from({ length: Math.min(DELETE_CONCURRENCY, partitions.length) }, async () => {
        for (let next = partitions.shift(); next; next = partitions.shift()) {
          const [partitionKey, keys] = next;
          for (let i = 0; i < keys.length; i += 100) await this.#deleteBatch(partitionKey, keys.slice(i, i + 100));
        }
      }),
    );
    try {
      await this.d.platform.deleteEntity('tenant', tenant);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    this.d.logger.log('info', 'deletion.progress', {
      tenant,
      phase: 'rows',
      rows: Object.values(census).reduce((a, b) => a + b, 0),
    });
    return census;
  }

  /** The rows by kind (and the directory row) when deletion began, recorded on the first run. */
  async #census(tenant: string, counts: Record<string, number>): Promise<Record<string, number>> {
    const recorded = (await this.#row(tenant))?.rowCensus;
    if (recorded) return JSON.parse(recorded) as Record<string, number>;
    let directory = 0;
    try {
      await this.d.platform.getEntity('tenant', tenant);
      directory = 1;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const census = { ...counts, ...(directory ? { directory } : {}) };
    await this.d.platform.upsertEntity(
      { partitionKey: PARTITION, rowKey: tenant, rowCensus: JSON.stringify(census) },
      'Merge',
    );
    return census;
  }

  async #deleteBatch(partitionKey: string, rowKeys: string[]): Promise<void> {
    try {
      await submitTransaction(
        this.d.tenantData,
        rowKeys.map((rowKey): TransactionAction => ['delete', { partitionKey, rowKey }]),
      );
    } catch (error) {
      if (!(error instanceof TransactionFailedError) || error.statusCode !== 404) throw error;
      // A row is gone already (an earlier attempt of this batch was applied, its answer lost): the rest one by one.
      for (const rowKey of rowKeys) {
        await this.d.tenantData.deleteEntity(partitionKey, rowKey).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
      }
    }
  }

  /** Every blob of the tenant with versions and snapshots; like rows, counted once when deletion began. */
  async deleteBlobs(tenant: string): Promise<{ blobs: number; bytes: number }> {
    const listed: { container: ContainerClient; items: StoredItem[] }[] = [];
    for (const name of Object.values(CONTAINERS)) {
      // Write-once: backups hold tenant data only as ciphertext under the keys destroyed next; the
      // audit anchors hold hashes of audit entries, no tenant data, and outlive the tenant as proof.
      if (name === CONTAINERS.backups || name === CONTAINERS.auditArchive) continue;
      const container = this.d.storage.blobService.getContainerClient(name);
      listed.push({ container, items: await listPrefixCompletely(container, `${tenant}/`) });
    }
    const all = listed.flatMap((l) => l.items);
    const recorded = (await this.#row(tenant))?.blobCensus;
    const census = recorded
      ? (JSON.parse(recorded) as { blobs: number; bytes: number })
      : { blobs: all.length, bytes: all.reduce((n, x) => n + x.bytes, 0) };
    if (!recorded)
      await this.d.platform.upsertEntity(
        { partitionKey: PARTITION, rowKey: tenant, blobCensus: JSON.stringify(census) },
        'Merge',
      );
    for (const { container, items } of listed) await deleteItems(container, items);
    this.d.logger.log('info', 'deletion.progress', { tenant, phase: 'blobs', blobs: census.blobs });
    return census;
  }

  /**
   * Destroys the tenant's data and pseudonym keys. A ledger on the lifecycle row records the intent
   * before each destruction and the result after it, so an attempt cut off in between (a crash
   * after the vault deleted the key) still reports that key when the activity runs again: the
   * certificate counts every destroyed key exactly once.
   */
  async destroyKeys(tenant: string): Promise<DestroyedSecret[]> {
    type Entry = { intentAt: string; result?: DestroyedSecret };
    const row = (await this.#row(tenant)) as (LifecycleRow & { keyLedger?: string }) | undefined;
    const ledger = JSON.parse(row?.keyLedger ?? '{}') as Record<string, Entry>;
    const save = () =>
      this.d.platform.upsertEntity(
        { partitionKey: PARTITION, rowKey: tenant, keyLedger: JSON.stringify(ledger) },
        'Merge',
      );
    const destroyed: DestroyedSecret[] = [];
    for (const purpose of ['data', 'pseudonym'] as const) {
      const name = `tenant-${tenant}-${purpose}`;
      const earlier = ledger[name];
      if (earlier?.result) {
        destroyed.push(earlier.result);
        continue;
      }
      const intentAt = earlier?.intentAt ?? this.#now().toISOString();
      if (!earlier) {
        ledger[name] = { intentAt };
        await save();
      }
      const result = await this.d.secrets.destroy(name);
      if (result) ledger[name] = { intentAt, result };
      // Gone without a result: an earlier attempt destroyed it after recording its intent.
      else if (earlier)
        ledger[name] = { intentAt, result: { name, deletedAt: intentAt, purgedAt: this.#now().toISOString() } };
      // Never there: nothing to destroy or to certify.
      else delete ledger[name];
      await save();
      const entry = ledger[name];
      if (entry?.result) destroyed.push(entry.result);
    }
    this.d.keyring.forget(tenant);
    this.d.logger.log('info', 'deletion.progress', { tenant, phase: 'keys', keys: destroyed.length });
    return destroyed;
  }

  /**
   * Scans every table and container for anything of the tenant, except the two write-once
   * containers deletion leaves on purpose: backups are skipped (ciphertext under the destroyed keys,
   * aged out by their own retention), the audit anchors are listed and counted as kept, not as
   * remaining (hashes of the audit entries, no tenant data; proof of the log that was).
   */
  async verify(tenant: string): Promise<{
    tablesScanned: number;
    containersScanned: number;
    remainingRows: number;
    remainingBlobs: number;
    keptAuditAnchorBlobs: number;
  }> {
    let tablesScanned = 0;
    let remainingRows = 0;
    const { from, to } = tenantPartitionRange(tenant);
    for await (const table of this.d.storage.tableService.listTables()) {
      tablesScanned++;
      const client = this.d.storage.table(table.name ?? '');
      for await (const _ of client.listEntities({
        queryOptions: { filter: odata`PartitionKey ge ${from} and PartitionKey lt ${to}`, select: ['PartitionKey'] },
      }))
        remainingRows++;
    }
    try {
      await this.d.storage.table(TABLES.platform).getEntity('tenant', tenant);
      remainingRows++;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    let containersScanned = 0;
    let remainingBlobs = 0;
    let keptAuditAnchorBlobs = 0;
    for await (const container of this.d.storage.blobService.listContainers()) {
      containersScanned++;
      if (container.name === CONTAINERS.backups) continue;
      for await (const _ of this.d.storage.blobService
        .getContainerClient(container.name)
        .listBlobsFlat({ prefix: `${tenant}/`, includeSnapshots: true, includeVersions: true })) {
        if (container.name === CONTAINERS.auditArchive) keptAuditAnchorBlobs++;
        else remainingBlobs++;
      }
    }
    return { tablesScanned, containersScanned, remainingRows, remainingBlobs, keptAuditAnchorBlobs };
  }

  async certify(
    tenant: string,
    facts: {
      startedAt: string;
      rows: Record<string, number>;
      blobs: { blobs: number; bytes: number };
      keys: DestroyedSecret[];
      verification: Awaited<ReturnType<DeletionService['verify']>>;
    },
  ): Promise<DeletionCertificate> {
    const finishedAt = this.#now().toISOString();
    recordWorkflow('deletion', (new Date(finishedAt).getTime() - new Date(facts.startedAt).getTime()) / 1000);
    const latestPurge =
      facts.keys
        .map((k) => k.purgedAt ?? k.purgeScheduledAt ?? finishedAt)
        .sort()
        .at(-1) ?? finishedAt;
    const certificate = {
      type: 'labvault-deletion-certificate',
      version: 1,
      id: randomBytes(8).toString('hex'),
      tenant,
      method: [
        'physical deletion of rows, blobs, blob versions and snapshots',
        'cryptographic erase: destruction of the tenant data and pseudonym keys (AES-256, HMAC-SHA256)',
      ],
      // What is kept on purpose, without tenant data: the audit chains' anchors in write-once storage.
      kept: ['audit anchors: stream names, sequence numbers and SHA-256 hashes of the audit entries (WORM)'],
      deleted: { rowsByKind: facts.rows, blobs: facts.blobs.blobs, bytes: facts.blobs.bytes },
      keysDestroyed: facts.keys.map((k) => ({
        key: k.name,
        deletedAt: k.deletedAt,
        ...(k.purgedAt ? { purgedAt: k.purgedAt } : { purgeScheduledAt: k.purgeScheduledAt }),
      })),
      startedAt: facts.startedAt,
      finishedAt,
      verification: {
        ...facts.verification,
        passed: facts.verification.remainingRows === 0 && facts.verification.remainingBlobs === 0,
      },
      // Soft-deleted copies (blob soft delete, Key Vault soft delete) are gone, at the latest, by then.
      softDeletedCopiesPurgedBy: new Date(
        Math.max(Date.parse(latestPurge), Date.parse(finishedAt) + this.d.keyVaultSoftDeleteDays * DAY),
      ).toISOString(),
    };
    const signed = await this.signCertificate(certificate, 'labvault-deletion-certificate+jws');
    await this.d.platform.upsertEntity(
      {
        partitionKey: PARTITION,
        rowKey: tenant,
        status: 'completed',
        certificate: JSON.stringify(signed),
        legalHold: false,
      },
      'Merge',
    );
    this.d.logger.log('info', 'deletion.completed', {
      tenant,
      certificate: certificate.id,
      passed: certificate.verification.passed,
    });
    return signed;
  }

  /** A step failed for good (after its retries): logged with its cause, for the operator on call. */
  failed(tenant: string, cause: string): void {
    this.d.logger.log('error', 'deletion.failed', { tenant, cause: cause.slice(0, 200) });
  }

  /**
   * Signs a certificate (ES256 compact JWS) with the key the JWKS at /api/deletion-certificates/keys
   * publishes: tenant deletions and data-subject erasures are verified the same way.
   */
  async signCertificate(certificate: Record<string, unknown>, typ: string): Promise<DeletionCertificate> {
    const { kid, key } = await this.#signingKey();
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(certificate)))
      .setProtectedHeader({ alg: 'ES256', kid, typ })
      .sign(key);
    return { certificate, jws };
  }

  /** The public keys that verify deletion certificates (JWKS). */
  async verificationKeys(): Promise<{ keys: JWK[] }> {
    const secret = await this.d.secrets.get(SIGNING_SECRET);
    if (!secret) return { keys: [] };
    const { d: _private, ...publicJwk } = JSON.parse(Buffer.from(secret.value, 'base64').toString('utf8')) as JWK;
    return { keys: [{ ...publicJwk, kid: secret.version, alg: 'ES256', use: 'sig' }] };
  }

  async #signingKey(): Promise<{ kid: string; key: Awaited<ReturnType<typeof importJWK>> }> {
    let secret = await this.d.secrets.get(SIGNING_SECRET);
    if (!secret) {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      await this.d.secrets.set(
        SIGNING_SECRET,
        Buffer.from(JSON.stringify(await exportJWK(privateKey))).toString('base64'),
      );
      secret = await this.d.secrets.get(SIGNING_SECRET);
    }
    if (!secret) throw new Error('no certificate signing key');
    const key = await importJWK(JSON.parse(Buffer.from(secret.value, 'base64').toString('utf8')) as JWK, 'ES256');
    return { kid: secret.version, key };
  }
}

function stateOf(row: LifecycleRow): DeletionState {
  return {
    status: row.status,
    deleteAt: row.deleteAt ?? null,
    contractEndsAt: row.contractEndsAt ?? null,
    recordedAt: row.recordedAt ?? null,
    noticeEndsAt: row.noticeEndsAt ?? null,
    legalHold: row.legalHold,
    ...(row.confirmedAt ? { confirmedAt: row.confirmedAt } : {}),
    ...(row.withdrawnAt ? { withdrawnAt: row.withdrawnAt } : {}),
    ...(row.startedAt ? { startedAt: row.startedAt } : {}),
    ...(row.certificate ? { certificate: JSON.parse(row.certificate) as DeletionCertificate } : {}),
  };
}
