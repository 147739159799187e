import { randomBytes } from 'node:crypto';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import { auditEvent } from '../audit/events.js';
import type { AuditEntry, RequestMeta } from '../audit/types.js';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { conflict, forbidden, notFound } from '../errors.js';
import type { ExportFormat, ExportRecord, ExportService } from '../exports/exports.js';
import type { ImageService } from '../images/images.js';
import type { Logger } from '../observability/logger.js';
import type { OrderService, SubjectOrder } from '../orders/orders.js';
import type { DeletionCertificate, DeletionService } from '../retention/deletion.js';
import type { RetentionService } from '../retention/retention.js';
import { CONTAINERS, type StorageClients } from '../storage/clients.js';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { TransactionFailedError } from '../storage/transaction.js';
import { type RestrictionRegister, SUBJECT_REQUESTS_AREA } from './restrictions.js';

export type SubjectRequestType = 'access' | 'erasure' | 'restriction';
export type SubjectRequestStatus =
  | 'running'
  | 'completed'
  | 'failed'
  | 'awaiting-confirmation'
  | 'scheduled'
  | 'erasing'
  | 'refused'
  | 'cancelled'
  | 'active'
  | 'lifted';

/** One data subject's request as the tenant's request log shows it: ids, dates, status, evidence. */
export interface SubjectRequest {
  id: string;
  type: SubjectRequestType;
  status: SubjectRequestStatus;
  receivedAt: string;
  /** One month after receipt (Art. 12(3) GDPR). */
  dueAt: string;
  requestedBy: string;
  completedAt?: string;
  /** Access: the export holding the subject's records (its status, manifest and link at /api/exports/{id}). */
  exportId?: string;
  format?: ExportFormat;
  /** Erasure: who confirmed it (never the requester), and when it runs unless cancelled. */
  confirmedBy?: string;
  executeAt?: string;
  cancelledBy?: string;
  /** Erasure: when its run gave up (storage failing past every retry), and who ran it again. */
  failedAt?: string;
  retriedBy?: string;
  /** Erasure: why it was refused (a legal hold, a declared duty to keep records). */
  refusal?: string;
  /** Restriction: who lifted it, when. */
  liftedBy?: string;
  liftedAt?: string;
  /** Counts of what was done (orders restricted, rows and blobs erased). */
  evidence?: Record<string, number>;
  /** Access: the archive while it is kept (the requester takes it with their password). */
  archive?: { sha256: string; bytes: number; availableUntil: string };
  /** Erasure: the signed certificate (verify with /api/deletion-certificates/keys). */
  certificate?: DeletionCertificate;
}

/** Everything held about one data subject, as references: what the controller answers from. */
export interface SubjectInventory {
  orders: SubjectOrder[];
  images: { id: string; orderId: string; specimenId: string; status: string; createdAt: string }[];
  auditEntries: {
    total: number;
    /** The latest 200 entries about the subject (event, time, actor, entity): the rest is in the audit log. */
    latest: Pick<AuditEntry, 'event' | 'action' | 'at' | 'actor' | 'entity' | 'stream' | 'seq'>[];
  };
  requests: SubjectRequest[];
}

type RequestRow = {
  partitionKey: string;
  rowKey: string;
  id: string;
  type: SubjectRequestType;
  status: SubjectRequestStatus;
  /** The subject's keyed pseudonym: how every domain finds the records, never the plaintext id. */
  patientRef: string;
  receivedAt: string;
  dueAt: string;
  requestedBy: string;
  completedAt?: string;
  exportId?: string;
  format?: ExportFormat;
  confirmedBy?: string;
  executeAt?: string;
  startedAt?: string;
  cancelledBy?: string;
  failedAt?: string;
  retriedBy?: string;
  refusal?: string;
  liftedBy?: string;
  liftedAt?: string;
  evidence?: string;
  certificate?: string;
  etag?: string;
};

export interface ErasureFacts {
  orders: number;
  images: number;
  blobs: number;
  bytes: number;
  exportArchives: number;
  /** Erased order ids (ids only): the verification looks for anything left under them. */
  orderIds: string[];
}

/** Where erasures are kept for a restore to apply again (the backups' store). */
export interface ErasureJournal {
  recordErasure(record: ErasureRecord): Promise<void>;
}

/**
 * An erasure as a restore applies it again: the orders it erased (or, when its run failed, had
 * set out to erase: what it deleted stays deleted) and the request as stored then (ids, the
 * subject's pseudonym, dates, counts, the signed certificate; no identifier), for the restored
 * request log. A completed erasure has one record; each failed run of it one more.
 */
export interface ErasureRecord {
  tenant: string;
  requestId: string;
  outcome: 'completed' | 'failed';
  orderIds: string[];
  /** When the erasure completed, or its run failed. */
  erasedAt: string;
  request?: Record<string, unknown>;
}

export interface SubjectRequestDependencies {
  table: TableClient;
  storage: StorageClients;
  audit: AuditLog;
  crypto: TenantCrypto;
  orders: OrderService;
  /** The markers of the subjects under restriction, which intake consults too. */
  restrictions: RestrictionRegister;
  images: ImageService;
  exports: ExportService;
  retention: RetentionService;
  deletion: DeletionService;
  journal: ErasureJournal;
  logger: Logger;
  /** Seconds between an erasure's confirmation and its execution (LABVAULT_SUBJECT_ERASURE_DELAY_SECONDS). */
  erasureDelaySeconds: number;
  clock?: () => Date;
}

const AREA = SUBJECT_REQUESTS_AREA;
const ROW = (id: string) => `request~${id}`;
/** How soon an erasure waiting for a tenant export looks again. */
const EXPORT_RECHECK_MS = 30_000;
const DAY = 24 * 3600 * 1000;
const LATEST_ENTRIES = 200;

/**
 * Data subjects' requests, answered by the tenant (the controller) with the processor's help
 * (Art. 28(3)(e) GDPR): the inventory of one subject, an access export, erasure after a second
 * person's confirmation and a window to cancel, with a signed certificate, and restriction of
 * processing. Every record is found through the patient pseudonym; the log keeps no plaintext id.
 */
export class SubjectRequestService {
  readonly #d: SubjectRequestDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: SubjectRequestDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  /** The subject's orders, images, audit entries and earlier requests; the search itself is audited. */
  async inventory(tenant: string, patientId: string, meta: RequestMeta): Promise<SubjectInventory> {
    const patientRef = await this.#ref(tenant, patientId);
    const orders = await this.#d.orders.subjectOrders(tenant, patientRef);
    const images: SubjectInventory['images'] = [];
    for (const order of orders)
      for await (const row of this.#d.images.rows(tenant, { orderId: order.id }))
        images.push({
          id: row.imageId,
          orderId: row.orderId,
          specimenId: row.specimenId,
          status: row.status,
          createdAt: row.createdAt,
        });
    const entries: AuditEntry[] = [];
    for await (const entry of this.#d.audit.entriesAbout(tenant, patientRef)) entries.push(entry);
    entries.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    const requests = (await this.#rows(odata` and patientRef eq ${patientRef}`)(tenant)).map(toRequest);
    await this.#d.audit.record(tenant, tenantPartition(tenant, AREA), [
      auditEvent('subject.search', 'R', { type: 'DataSubject', id: 'inventory' }, meta, {
        purpose: 'data-subject-request',
        patientRef,
        details: { orders: orders.length, images: images.length, auditEntries: entries.length },
      }),
    ]);
    return {
      orders,
      images,
      auditEntries: {
        total: entries.length,
        latest: entries.slice(0, LATEST_ENTRIES).map((e) => ({
          event: e.event,
          action: e.action,
          at: e.at,
          actor: e.actor,
          entity: e.entity,
          stream: e.stream,
          seq: e.seq,
        })),
      },
      requests,
    };
  }

  /** Access (Art. 15): records the request and the export of just this subject (the caller starts it). */
  async requestAccess(
    tenant: string,
    patientId: string,
    format: ExportFormat,
    requestedBy: string,
    meta: RequestMeta,
  ): Promise<SubjectRequest> {
    const patientRef = await this.#ref(tenant, patientId);
    const exported = await this.#d.exports.request(tenant, format, 'subject-access', requestedBy, meta, {
      subjectRef: patientRef,
    });
    return this.#create(
      tenant,
      { type: 'access', status: 'running', patientRef, requestedBy, exportId: exported.id, format },
      meta,
    );
  }

  /**
   * Erasure (Art. 17): refused at once, with the reason, under a legal hold or a declared duty to
   * keep records (the refusal is logged too); otherwise it waits for a second person's confirmation.
   */
  async requestErasure(
    tenant: string,
    patientId: string,
    requestedBy: string,
    meta: RequestMeta,
  ): Promise<SubjectRequest> {
    const patientRef = await this.#ref(tenant, patientId);
    const refusal = await this.#erasureRefusal(tenant, patientRef);
    if (refusal) {
      const refused = await this.#create(
        tenant,
        { type: 'erasure', status: 'refused', patientRef, requestedBy, refusal },
        meta,
      );
      throw conflict(`Erasure refused: ${refusal} The refusal is recorded as request ${refused.id}.`);
    }
    return this.#create(tenant, { type: 'erasure', status: 'awaiting-confirmation', patientRef, requestedBy }, meta);
  }

  /** A second person (not the requester) confirms an erasure; it runs after the cancellation window. */
  async confirmErasure(tenant: string, id: string, confirmedBy: string, meta: RequestMeta): Promise<SubjectRequest> {
    const row = await this.#row(tenant, id);
    if (row.type !== 'erasure') throw notFound('No such erasure request.');
    if (row.status !== 'awaiting-confirmation') throw conflict(`This erasure is ${row.status}; nothing to confirm.`);
    if (row.requestedBy === confirmedBy)
      throw forbidden('An erasure is confirmed by a second person, not by the one who requested it.');
    const refusal = await this.#erasureRefusal(tenant, row.patientRef);
    if (refusal) {
      await this.#update(tenant, row, { status: 'refused', refusal }, 'subject-request.refuse', meta);
      throw conflict(`Erasure refused: ${refusal}`);
    }
    const executeAt = new Date(this.#clock().getTime() + this.#d.erasureDelaySeconds * 1000).toISOString();
    return this.#update(tenant, row, { status: 'scheduled', confirmedBy, executeAt }, 'subject-request.confirm', meta);
  }

  /** Cancels an erasure before it runs (awaiting confirmation or within its window). */
  async cancelErasure(tenant: string, id: string, cancelledBy: string, meta: RequestMeta): Promise<SubjectRequest> {
    const row = await this.#row(tenant, id);
    if (row.type !== 'erasure') throw notFound('No such erasure request.');
    if (row.status !== 'awaiting-confirmation' && row.status !== 'scheduled')
      throw conflict(`This erasure is ${row.status}; it can no longer be cancelled.`);
    return this.#update(tenant, row, { status: 'cancelled', cancelledBy }, 'subject-request.cancel', meta);
  }

  /**
   * The orchestration's first step once the window is over: the request must still be scheduled,
   * and the legal hold and duty checks are made again (a hold placed meanwhile wins).
   */
  async beginErasure(
    tenant: string,
    id: string,
    meta: RequestMeta,
  ): Promise<
    | { proceed: true }
    | { proceed: false; status: SubjectRequestStatus; executeAt?: string; waitingForExportLock?: true }
  > {
    const row = await this.#row(tenant, id);
    if (row.status === 'erasing') {
      // Resumed after a crash (the lock is still this erasure's) or retried after a failure, which
      // gave the lock back: an export may hold it now, and the erasure waits for it as at first.
      if ((await this.#d.exports.holdForErasure(tenant, id)) === 'busy') return this.#waitForExportLock(row.status);
      return { proceed: true };
    }
    if (row.status !== 'scheduled') {
      // Cancelled or refused after a try that took the export lock: give it back.
      await this.#d.exports.releaseForErasure(tenant, id);
      return { proceed: false, status: row.status };
    }
    if (row.executeAt && Date.parse(row.executeAt) > this.#clock().getTime())
      return { proceed: false, status: row.status, executeAt: row.executeAt };
    const refusal = await this.#erasureRefusal(tenant, row.patientRef);
    if (refusal) {
      await this.#update(tenant, row, { status: 'refused', refusal }, 'subject-request.refuse', meta);
      await this.#d.exports.releaseForErasure(tenant, id);
      return { proceed: false, status: 'refused' };
    }
    // One at a time with the tenant's exports: an archive finished after the erasure could keep the
    // patient's records. While one runs, the erasure looks again a little later.
    if ((await this.#d.exports.holdForErasure(tenant, id)) === 'busy') return this.#waitForExportLock(row.status);
    await this.#update(
      tenant,
      row,
      { status: 'erasing', startedAt: this.#clock().toISOString() },
      'subject-request.start',
      meta,
    );
    return { proceed: true };
  }

  /** Not yet: an export (or another erasure) holds the tenant's export lock; look again a little later. */
  #waitForExportLock(status: SubjectRequestStatus) {
    const executeAt = new Date(this.#clock().getTime() + EXPORT_RECHECK_MS).toISOString();
    return { proceed: false as const, status, executeAt, waitingForExportLock: true as const };
  }

  /**
   * The orchestration gave up (storage failing past every retry): the request says so, and the
   * tenant's export lock is given back, so a contract-end export is not blocked by an erasure
   * nobody runs. What was erased stays erased; `retryErasure` finishes the rest. An archive made
   * meanwhile may hold the subject's remaining records: the retried erasure deletes it like any
   * archive still held. Ids only in the log.
   */
  async failErasure(tenant: string, id: string, meta: RequestMeta): Promise<SubjectRequest> {
    const row = await this.#row(tenant, id);
    let request = toRequest(row);
    if (row.type === 'erasure' && (row.status === 'scheduled' || row.status === 'erasing')) {
      const failedAt = this.#clock().toISOString();
      const failed: Partial<RequestRow> = { status: 'failed', failedAt };
      if (row.status === 'erasing')
        // It may have deleted some of the orders already: a restore of an older backup must not
        // bring those back, nor forget the request (the failed request goes into the restored log,
        // to be run again there). Recorded before the request says failed, as a completion is.
        await this.#d.journal.recordErasure({
          tenant,
          requestId: row.id,
          outcome: 'failed',
          orderIds: erasedOrderIds(row),
          erasedAt: failedAt,
          request: storedAfter(row, failed),
        });
      request = await this.#update(tenant, row, failed, 'subject-request.fail', meta);
      this.#d.logger.log('error', 'subject-erasure.failed', { tenant, request: id, phase: row.status });
    }
    await this.#d.exports.releaseForErasure(tenant, id);
    return request;
  }

  /**
   * Runs a failed erasure again: the decision two persons confirmed stands, so no new confirmation
   * and no new window. One that had begun erasing resumes as `erasing` (it can no longer be
   * cancelled), one that failed before it began is `scheduled` again, for the end of its window or
   * now if that has passed (it can still be cancelled until then). A legal hold
   * or duty to keep records placed since refuses the retry and changes nothing (409).
   */
  async retryErasure(tenant: string, id: string, retriedBy: string, meta: RequestMeta): Promise<SubjectRequest> {
    const row = await this.#row(tenant, id);
    if (row.type !== 'erasure') throw notFound('No such erasure request.');
    if (row.status !== 'failed') throw conflict(`This erasure is ${row.status}; only a failed one is run again.`);
    const refusal = await this.#erasureRefusal(tenant, row.patientRef);
    if (refusal) throw conflict(`Erasure refused: ${refusal}`);
    const now = this.#clock().toISOString();
    // One that failed before it began keeps what is left of its cancellation window.
    const executeAt = row.executeAt !== undefined && row.executeAt > now ? row.executeAt : now;
    const change: Partial<RequestRow> =
      row.startedAt !== undefined ? { status: 'erasing', retriedBy } : { status: 'scheduled', retriedBy, executeAt };
    return this.#update(tenant, row, change, 'subject-request.retry', meta);
  }

  /**
   * Deletes the subject's orders with their images (rows, blobs with versions and snapshots, the
   * thumbnails) and the archives of earlier access exports of the subject. Safe to repeat.
   */
  async erase(tenant: string, id: string, meta: RequestMeta): Promise<ErasureFacts> {
    const row = await this.#row(tenant, id);
    if (row.status !== 'erasing') throw conflict(`This erasure is ${row.status}.`);
    const facts: ErasureFacts = { orders: 0, images: 0, blobs: 0, bytes: 0, exportArchives: 0, orderIds: [] };
    const subjectOrders = await this.#d.orders.subjectOrders(tenant, row.patientRef);
    // The ids are kept before anything is deleted: a repeat after a crash finds fewer orders, and
    // the verification must still look under every one erased.
    facts.orderIds = [...new Set([...erasedOrderIds(row), ...subjectOrders.map((o) => o.id)])];
    await this.#d.table.updateEntity(
      { partitionKey: row.partitionKey, rowKey: row.rowKey, evidence: JSON.stringify({ orderIds: facts.orderIds }) },
      'Merge',
    );
    for (const order of subjectOrders) {
      for await (const image of this.#d.images.rows(tenant, { orderId: order.id })) {
        const removed = await this.#d.images.deleteImage(tenant, image, meta, 'subject-erasure');
        facts.images++;
        facts.blobs += removed.blobs;
        facts.bytes += removed.bytes;
      }
      if (await this.#d.orders.deleteOrder(tenant, order.id, meta, 'subject-erasure')) facts.orders++;
    }
    for (const exportId of await this.#d.exports.archivesHoldingSubject(tenant, row.patientRef)) {
      await this.#d.exports.deleteArchive(tenant, exportId, meta);
      facts.exportArchives++;
    }
    return facts;
  }

  /**
   * After a restore from a backup older than these erasures: erases again each recorded order with
   * its images and index rows, audited as the first time was (reason `subject-erasure-reapplied`),
   * puts the request as recorded back into the log (completed with its certificate, or failed to
   * be run again; the backup may hold it waiting, running or not at all) and gives back an export
   * lock the backup caught it holding.
   * Orders the patient placed after an erasure are not in its record and stay. Safe to repeat.
   */
  async reapplyErasures(
    records: readonly ErasureRecord[],
    meta: RequestMeta,
  ): Promise<{ erasures: number; orders: number; images: number }> {
    const counts = { erasures: records.length, orders: 0, images: 0 };
    for (const { tenant, requestId, orderIds, request } of records) {
      for (const orderId of orderIds) {
        for await (const image of this.#d.images.rows(tenant, { orderId })) {
          await this.#d.images.deleteImage(tenant, image, meta, 'subject-erasure-reapplied');
          counts.images++;
        }
        if (await this.#d.orders.deleteOrder(tenant, orderId, meta, 'subject-erasure-reapplied')) counts.orders++;
      }
      if (request) {
        const partitionKey = tenantPartition(tenant, AREA);
        const row = { ...request, partitionKey, rowKey: ROW(requestId) } as RequestRow;
        await this.#d.audit.commit(tenant, partitionKey, () => [['upsert', row, 'Replace']], [
          auditEvent('subject-request.reapply', 'U', { type: 'SubjectRequest', id: requestId }, meta, {
            purpose: 'data-subject-request',
            patientRef: row.patientRef,
            details: { status: row.status },
          }),
        ]);
      }
      await this.#d.exports.releaseForErasure(tenant, requestId);
    }
    return counts;
  }

  /** Looks for anything left: index rows, orders and images of the subject, blobs under the erased orders. */
  async verifyErasure(
    tenant: string,
    id: string,
    orderIds: readonly string[],
  ): Promise<{ remainingOrders: number; remainingImages: number; remainingBlobs: number; containersScanned: number }> {
    const row = await this.#row(tenant, id);
    const remainingOrders = (await this.#d.orders.subjectOrders(tenant, row.patientRef)).length;
    let remainingImages = 0;
    for (const orderId of orderIds) for await (const _ of this.#d.images.rows(tenant, { orderId })) remainingImages++;
    let remainingBlobs = 0;
    const containers = [CONTAINERS.images, CONTAINERS.uploads, CONTAINERS.quarantine];
    for (const container of containers) {
      const client = this.#d.storage.blobService.getContainerClient(container);
      for (const orderId of orderIds)
        for await (const _ of client.listBlobsFlat({ prefix: `${tenant}/${orderId}/`, includeVersions: true }))
          remainingBlobs++;
    }
    return { remainingOrders, remainingImages, remainingBlobs, containersScanned: containers.length };
  }

  /** Signs the erasure's certificate (no personal data: the request id, counts, the verification). */
  async certifyErasure(
    tenant: string,
    id: string,
    facts: Omit<ErasureFacts, 'orderIds'>,
    verification: Awaited<ReturnType<SubjectRequestService['verifyErasure']>>,
    meta: RequestMeta,
  ): Promise<SubjectRequest> {
    const row = await this.#row(tenant, id);
    if (row.status === 'completed') {
      await this.#d.exports.releaseForErasure(tenant, id);
      return toRequest(row);
    }
    const finishedAt = this.#clock().toISOString();
    const passed =
      verification.remainingOrders === 0 && verification.remainingImages === 0 && verification.remainingBlobs === 0;
    const certificate = {
      type: 'labvault-subject-erasure-certificate',
      version: 1,
      id: randomBytes(8).toString('hex'),
      tenant,
      request: row.id,
      // The subject's keyed pseudonym, as the tenant's audit log names it; never the identifier.
      subjectRef: row.patientRef,
      method: [
        'physical deletion of the order rows with their index rows, the image rows',
        'deletion of image, thumbnail, upload and quarantine blobs with their versions and snapshots',
        "deletion of the subject's earlier access-export archives and of the tenant's export archives held at the time (made before the erasure, they may hold the subject's records; the tenant exports again)",
      ],
      deleted: {
        orders: facts.orders,
        images: facts.images,
        blobs: facts.blobs,
        bytes: facts.bytes,
        exportArchives: facts.exportArchives,
      },
      requestedAt: row.receivedAt,
      confirmedBy: row.confirmedBy,
      startedAt: row.startedAt,
      finishedAt,
      verification: { ...verification, passed },
      // What this erasure cannot reach at once, said plainly.
      remainingCopies:
        'Encrypted table backups taken before the erasure keep these rows until the backups expire; the erasure is recorded beside them (order ids only) and a restore applies it again. Audit entries stay (pseudonymous, no content) so the chain still verifies.',
    };
    const signed = await this.#d.deletion.signCertificate(certificate, 'labvault-subject-erasure-certificate+jws');
    const completed: Partial<RequestRow> = {
      status: 'completed',
      completedAt: finishedAt,
      evidence: JSON.stringify({ ...certificate.deleted, ...verification }),
      certificate: JSON.stringify(signed),
    };
    // Before the request says completed: a backup taken before this erasure holds these orders, and
    // a restore of it applies the erasure again from this record and puts the completed request
    // (with its certificate) back into the restored log.
    await this.#d.journal.recordErasure({
      tenant,
      requestId: row.id,
      outcome: 'completed',
      orderIds: erasedOrderIds(row),
      erasedAt: finishedAt,
      request: storedAfter(row, completed),
    });
    const done = await this.#update(tenant, row, completed, 'subject-request.complete', meta, { passed });
    await this.#d.exports.releaseForErasure(tenant, id);
    this.#d.logger.log('info', 'subject-erasure.completed', { tenant, request: row.id, passed });
    return done;
  }

  /** Restriction (Art. 18): the subject's orders become read-only and leave every listing until lifted. */
  async restrict(tenant: string, patientId: string, requestedBy: string, meta: RequestMeta): Promise<SubjectRequest> {
    const patientRef = await this.#ref(tenant, patientId);
    const standing = await this.#rows(
      odata` and patientRef eq ${patientRef} and type eq 'restriction' and status eq 'active'`,
    )(tenant);
    if (standing[0]) throw conflict(`A restriction of this data subject stands already (request ${standing[0].id}).`);
    // Every order of the subject is restricted before the request says so (setting it twice is a
    // no-op, so a concurrent request for the same subject changes nothing more).
    const subjectOrders = await this.#d.orders.subjectOrders(tenant, patientRef);
    for (const order of subjectOrders)
      if (!order.restricted) await this.#d.orders.setRestricted(tenant, order.id, true, meta);
    let request: SubjectRequest;
    try {
      request = await this.#create(
        tenant,
        {
          type: 'restriction',
          status: 'active',
          patientRef,
          requestedBy,
          evidence: JSON.stringify({ orders: subjectOrders.length }),
        },
        meta,
        (id) => [this.#d.restrictions.marker(tenant, patientRef, id)],
      );
    } catch (error) {
      // Another restriction of this subject was recorded between the check above and this one.
      if (error instanceof TransactionFailedError && error.failedIndex === 1 && error.statusCode === 409)
        throw conflict('A restriction of this data subject stands already.');
      throw error;
    }
    // New orders are restricted at intake from the marker on; those an instance took while its copy
    // of the markers was older are caught here, before the call returns.
    await this.#d.restrictions.settle();
    await this.#sweep(tenant, patientRef, true, meta);
    return request;
  }

  /** Lifts a restriction: the orders are writable and listed again. */
  async lift(tenant: string, id: string, liftedBy: string, meta: RequestMeta): Promise<SubjectRequest> {
    const row = await this.#row(tenant, id);
    if (row.type !== 'restriction') throw notFound('No such restriction.');
    if (row.status !== 'active') throw conflict(`This restriction is ${row.status}.`);
    const orders = await this.#sweep(tenant, row.patientRef, false, meta);
    // This restriction's marker, if it has one (those recorded before markers existed have none).
    const marker = (await this.#d.restrictions.restrictingRequest(tenant, row.patientRef)) === row.id;
    const lifted = await this.#update(
      tenant,
      row,
      {
        status: 'lifted',
        liftedBy,
        liftedAt: this.#clock().toISOString(),
        evidence: JSON.stringify({ ...(JSON.parse(row.evidence ?? '{}') as object), ordersReleased: orders }),
      },
      'subject-request.lift',
      meta,
      {},
      marker ? [this.#d.restrictions.removal(tenant, row.patientRef)] : [],
    );
    // Orders taken while an instance's copy still had the marker were restricted at intake: released
    // here, unless a new restriction of the subject began meanwhile.
    await this.#d.restrictions.settle();
    if (!(await this.#d.restrictions.restrictingRequest(tenant, row.patientRef)))
      await this.#sweep(tenant, row.patientRef, false, meta);
    return lifted;
  }

  /** Sets every order of the subject restricted (or not); how many this call changed. */
  async #sweep(tenant: string, patientRef: string, restricted: boolean, meta: RequestMeta): Promise<number> {
    let changed = 0;
    for (const order of await this.#d.orders.subjectOrders(tenant, patientRef))
      if (order.restricted !== restricted && (await this.#d.orders.setRestricted(tenant, order.id, restricted, meta)))
        changed++;
    return changed;
  }

  async get(tenant: string, id: string): Promise<SubjectRequest> {
    const request = toRequest(await this.#row(tenant, id));
    if (request.type !== 'access' || !request.exportId) return request;
    return withExport(request, await this.#d.exports.get(tenant, request.exportId));
  }

  /** The request log, newest first; the access requests' exports read in one query, not one by one. */
  async list(tenant: string): Promise<SubjectRequest[]> {
    const requests = (await this.#rows('')(tenant)).map(toRequest);
    const exported = requests.some((r) => r.type === 'access')
      ? await this.#d.exports.records(tenant)
      : new Map<string, ExportRecord>();
    return requests
      .map((r) => withExport(r, r.type === 'access' && r.exportId ? exported.get(r.exportId) : undefined))
      .sort((a, b) => b.receivedAt.localeCompare(a.receivedAt));
  }

  /** Why an erasure cannot run now, or undefined: a legal hold on the tenant, a declared duty to keep records. */
  async #erasureRefusal(tenant: string, patientRef: string): Promise<string | undefined> {
    if ((await this.#d.deletion.state(tenant))?.legalHold)
      return "A legal hold stands on the tenant's data (Art. 17(3)(e) GDPR).";
    const duty = (await this.#d.retention.policy(tenant)).legalDuty;
    if (!duty) return undefined;
    const now = this.#clock().getTime();
    const keptUntil = (await this.#d.orders.subjectOrders(tenant, patientRef))
      .map((o) => Date.parse(o.createdAt) + duty.days * DAY)
      .filter((until) => until > now)
      .sort((a, b) => b - a)[0];
    return keptUntil === undefined
      ? undefined
      : `Orders of this data subject fall under the tenant's declared duty to keep records (${duty.basis}) until ${new Date(keptUntil).toISOString().slice(0, 10)} (Art. 17(3)(b) GDPR).`;
  }

  async #ref(tenant: string, patientId: string): Promise<string> {
    return this.#d.crypto.pseudonym(tenant, 'patient-id', patientId);
  }

  async #create(
    tenant: string,
    fields: Pick<RequestRow, 'type' | 'status' | 'patientRef' | 'requestedBy'> & Partial<RequestRow>,
    meta: RequestMeta,
    /** Further rows of the request's partition, in the same transaction (after the request's own). */
    alongside: (id: string) => TransactionAction[] = () => [],
  ): Promise<SubjectRequest> {
    const id = randomBytes(12).toString('hex');
    const now = this.#clock();
    const due = oneMonthAfter(now);
    const partitionKey = tenantPartition(tenant, AREA);
    const row: RequestRow = {
      ...fields,
      partitionKey,
      rowKey: ROW(id),
      id,
      receivedAt: now.toISOString(),
      dueAt: due.toISOString(),
      ...(fields.status === 'refused' ? { completedAt: now.toISOString() } : {}),
    };
    await this.#d.audit.commit(tenant, partitionKey, () => [['create', row], ...alongside(id)], [
      auditEvent('subject-request.create', 'C', { type: 'SubjectRequest', id }, meta, {
        purpose: 'data-subject-request',
        patientRef: fields.patientRef,
        details: { type: fields.type, status: fields.status },
      }),
    ]);
    return toRequest(row);
  }

  /** A conditional change (the version read) with its audit entry: two confirmations cannot both win. */
  async #update(
    tenant: string,
    row: RequestRow,
    change: Partial<RequestRow>,
    event: string,
    meta: RequestMeta,
    details: Record<string, string | number | boolean> = {},
    alongside: TransactionAction[] = [],
  ): Promise<SubjectRequest> {
    const next: RequestRow = { ...row, ...change };
    delete next.etag;
    try {
      await this.#d.audit.commit(
        tenant,
        row.partitionKey,
        () => [['update', next, 'Replace', { etag: row.etag }], ...alongside],
        [
          auditEvent(event, 'U', { type: 'SubjectRequest', id: row.id }, meta, {
            purpose: 'data-subject-request',
            patientRef: row.patientRef,
            details: { status: next.status, ...details },
          }),
        ],
      );
    } catch (error) {
      if (error instanceof Error && 'statusCode' in error && (error.statusCode === 412 || error.statusCode === 409))
        throw conflict('The request changed meanwhile; read it again.');
      throw error;
    }
    return toRequest(next);
  }

  async #row(tenant: string, id: string): Promise<RequestRow> {
    if (!/^[0-9a-f]{24}$/.test(id)) throw notFound('No such data-subject request.');
    try {
      return await this.#d.table.getEntity<RequestRow>(tenantPartition(tenant, AREA), ROW(id));
    } catch (error) {
      if (isNotFound(error)) throw notFound('No such data-subject request.');
      throw error;
    }
  }

  #rows(extraFilter: string): (tenant: string) => Promise<RequestRow[]> {
    return async (tenant) => {
      const filter =
        odata`PartitionKey eq ${tenantPartition(tenant, AREA)} and RowKey ge ${'request~'} and RowKey lt ${'request~~'}` +
        extraFilter;
      const rows: RequestRow[] = [];
      for await (const row of this.#d.table.listEntities<RequestRow>({ queryOptions: { filter } })) rows.push(row);
      return rows;
    };
  }
}

function toRequest(row: RequestRow): SubjectRequest {
  const evidence = row.evidence ? (JSON.parse(row.evidence) as Record<string, unknown>) : undefined;
  const counts = evidence
    ? (Object.fromEntries(Object.entries(evidence).filter(([, v]) => typeof v === 'number')) as Record<string, number>)
    : undefined;
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    receivedAt: row.receivedAt,
    dueAt: row.dueAt,
    requestedBy: row.requestedBy,
    ...(row.completedAt ? { completedAt: row.completedAt } : {}),
    ...(row.exportId ? { exportId: row.exportId } : {}),
    ...(row.format ? { format: row.format } : {}),
    ...(row.confirmedBy ? { confirmedBy: row.confirmedBy } : {}),
    ...(row.executeAt ? { executeAt: row.executeAt } : {}),
    ...(row.cancelledBy ? { cancelledBy: row.cancelledBy } : {}),
    ...(row.failedAt ? { failedAt: row.failedAt } : {}),
    ...(row.retriedBy ? { retriedBy: row.retriedBy } : {}),
    ...(row.refusal ? { refusal: row.refusal } : {}),
    ...(row.liftedBy ? { liftedBy: row.liftedBy } : {}),
    ...(row.liftedAt ? { liftedAt: row.liftedAt } : {}),
    ...(counts && Object.keys(counts).length > 0 ? { evidence: counts } : {}),
    ...(row.certificate ? { certificate: JSON.parse(row.certificate) as DeletionCertificate } : {}),
  };
}

/** An access request's status is its export's: read, not copied, so it never lags behind. */
function withExport(request: SubjectRequest, exported: ExportRecord | undefined): SubjectRequest {
  if (!exported) return request;
  if (exported.status === 'failed') return { ...request, status: 'failed' };
  if (exported.status === 'completed' || exported.status === 'expired')
    return {
      ...request,
      status: 'completed',
      ...(exported.completedAt ? { completedAt: exported.completedAt } : {}),
      ...(exported.archive?.summary ? { evidence: exported.archive.summary.counts } : {}),
      ...(exported.status === 'completed' && exported.archive
        ? {
            archive: {
              sha256: exported.archive.sha256,
              bytes: exported.archive.bytes,
              availableUntil: exported.archive.deleteAt,
            },
          }
        : {}),
    };
  return request;
}

/** The request's row as it will be stored after `change`, without its storage keys (for an erasure record). */
function storedAfter(row: RequestRow, change: Partial<RequestRow>): Record<string, unknown> {
  const after: RequestRow & { etag?: string } = { ...row, ...change };
  const { partitionKey: _p, rowKey: _r, etag: _e, ...stored } = after;
  return stored;
}

/** The erased orders' ids, which `erase` keeps in the request's evidence until the certificate replaces it. */
function erasedOrderIds(row: RequestRow): string[] {
  if (!row.evidence) return [];
  const evidence = JSON.parse(row.evidence) as { orderIds?: unknown };
  return Array.isArray(evidence.orderIds) ? evidence.orderIds.filter((id) => typeof id === 'string') : [];
}

/** The same day of the next month, or its last day when it has none (31 January → 28/29 February). */
function oneMonthAfter(date: Date): Date {
  const due = new Date(date);
  due.setUTCDate(1);
  due.setUTCMonth(due.getUTCMonth() + 1);
  const lastDay = new Date(Date.UTC(due.getUTCFullYear(), due.getUTCMonth() + 1, 0)).getUTCDate();
  due.setUTCDate(Math.min(date.getUTCDate(), lastDay));
  return due;
}
