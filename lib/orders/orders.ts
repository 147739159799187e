import { createHash } from 'node:crypto';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { AuditEventInput, RequestMeta } from '../audit/types.js';

export type { RequestMeta };
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { pooledRandomBytes } from '../crypto/random-pool.js';
import { conflict, notFound, restricted, staleVersion, unprocessable } from '../errors.js';
import { isConflict, isNotFound } from '../storage/errors.js';
import { SHARDS, shardOf, tenantPartition } from '../storage/keys.js';
import { TransactionFailedError } from '../storage/transaction.js';
import {
  type CreateOrderInput,
  type OrderFilters,
  type Order,
  type OrderStatus,
  STATUS_TRANSITIONS,
  type UpdateOrderInput,
} from './schemas.js';
import { auditEvent } from '../audit/events.js';

/**
 * Orders of a tenant. Rows live in `tenantdata`, spread over 16 partitions per tenant
 * (`{tenant}~orders~{shard}`), so no partition grows with the tenant. The shard comes from the
 * order's external id, which makes the uniqueness row, the order, its patient index row and the
 * audit entry one entity-group transaction. An order id starts with its shard digit.
 *
 * Plaintext columns: ids, codes, status, timestamps and keyed pseudonyms. Everything about the
 * patient, the physician and the specimens is encrypted, bound to tenant + order + field.
 */
const AREA = 'orders';
const IDEMPOTENCY_AREA = 'idempotency';

type OrderRow = {
  partitionKey: string;
  rowKey: string;
  id: string;
  status: OrderStatus;
  createdAt: string;
  updatedAt: string;
  priority: string;
  examinations: string;
  patientRef: string;
  externalRef: string;
  requestHash: string;
  /** Specimen ids are the lab's codes (no personal data): plain, so images can check them. */
  specimenIds?: string;
  encExternalId: string;
  encPatient: string;
  encPhysician: string;
  encSpecimens: string;
  encClinicalInformation?: string;
  encCancellationReason?: string;
  /** Set while a data subject's restriction of processing (Art. 18 GDPR) stands: read-only, unlisted. */
  restricted?: boolean;
  etag?: string;
};

/** What the subject-request inventory shows of an order: ids, dates, status; no personal data. */
export interface SubjectOrder {
  id: string;
  status: OrderStatus;
  createdAt: string;
  restricted: boolean;
}

export interface StoredOrder {
  order: Order;
  etag: string;
  /** The patient's pseudonym (what FHIR views name the Patient by; never the plaintext id). */
  patientRef: string;
}

export interface OrderCreated extends StoredOrder {
  /** True when an Idempotency-Key retry answered the first request's result again. */
  replayed: boolean;
}

export interface OrderPage {
  items: Order[];
  /** Storage's own continuation (opaque): the API signs it before handing it out. */
  continuation?: string;
}

export interface OrderServiceDependencies {
  table: TableClient;
  audit: AuditLog;
  crypto: TenantCrypto;
  /** Whether a data subject's processing is restricted (Art. 18): their new orders are stored restricted. */
  restrictions?: { isRestricted(tenant: string, patientRef: string): Promise<boolean> };
  clock?: () => Date;
}

const ORDER_ROW = (id: string) => `order~${id}`;
const EXTERNAL_ROW = (ref: string) => `external~${ref}`;
const PATIENT_ROW = (ref: string, id: string) => `patient~${ref}~${id}`;

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

export class OrderService {
  readonly #table: TableClient;
  readonly #audit: AuditLog;
  readonly #crypto: TenantCrypto;
  readonly #restrictions: OrderServiceDependencies['restrictions'];
  readonly #clock: () => Date;

  constructor(dependencies: OrderServiceDependencies) {
    this.#table = dependencies.table;
    this.#audit = dependencies.audit;
    this.#crypto = dependencies.crypto;
    this.#restrictions = dependencies.restrictions;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async create(
    tenant: string,
    input: CreateOrderInput,
    meta: RequestMeta,
    idempotencyKey?: string,
  ): Promise<OrderCreated> {
    const requestHash = sha256(JSON.stringify(input));
    const externalRef = await this.#crypto.pseudonym(tenant, 'external-id', input.externalId);
    const shard = shardOf(externalRef);
    const orderId = idempotencyKey
      ? await this.#reserveIdempotencyKey(tenant, idempotencyKey, requestHash, shard)
      : newOrderId(shard);
    const partitionKey = tenantPartition(tenant, AREA, shard);
    const patientRef = await this.#crypto.pseudonym(tenant, 'patient-id', input.patient.id);
    const restricted = (await this.#restrictions?.isRestricted(tenant, patientRef)) ?? false;
    const now = this.#clock().toISOString();
    const bind = (field: string) => ({ tenant, record: orderId, field });

    const row: OrderRow = {
      partitionKey,
      rowKey: ORDER_ROW(orderId),
      id: orderId,
      status: 'received',
      createdAt: now,
      updatedAt: now,
      priority: input.priority,
      examinations: JSON.stringify(input.examinations),
      patientRef,
      externalRef,
      requestHash,
      // Stored, but read-only and out of every listing while the subject's restriction stands.
      ...(restricted ? { restricted: true } : {}),
      specimenIds: JSON.stringify(input.specimens.map((sp) => sp.id)),
      encExternalId: await this.#crypto.encryptJson(bind('externalId'), input.externalId),
      encPatient: await this.#crypto.encryptJson(bind('patient'), input.patient),
      encPhysician: await this.#crypto.encryptJson(bind('orderingPhysician'), input.orderingPhysician),
      encSpecimens: await this.#crypto.encryptJson(bind('specimens'), input.specimens),
      ...(input.clinicalInformation !== undefined
        ? {
            encClinicalInformation: await this.#crypto.encryptJson(
              bind('clinicalInformation'),
              input.clinicalInformation,
            ),
          }
        : {}),
    };
    const actions: TransactionAction[] = [
      ['create', { partitionKey, rowKey: EXTERNAL_ROW(externalRef), orderId }],
      ['create', row],
      ['create', { partitionKey, rowKey: PATIENT_ROW(patientRef, orderId), orderId }],
    ];
    const event: AuditEventInput = auditEvent('order.create', 'C', { type: 'Order', id: orderId }, meta, {
      purpose: 'order-intake',
      patientRef,
      details: {
        specimens: input.specimens.length,
        idempotent: idempotencyKey !== undefined,
        ...(restricted ? { restricted: true } : {}),
      },
    });
    let etag: string | undefined;
    try {
      etag = (await this.#audit.commit(tenant, partitionKey, () => actions, [event])).domainEtags[1];
    } catch (error) {
      if (!(error instanceof TransactionFailedError) || error.statusCode !== 409) throw error;
      // The external id is taken: by this very order (a retry) or by another one.
      const existing = await this.#externalIndex(partitionKey, externalRef);
      if (existing === orderId) {
        const stored = await this.get(tenant, orderId, meta, 'order.create.replay');
        return { ...stored, replayed: true };
      }
      throw conflict('An order with this externalId exists already.');
    }
    // The answer is what was just stored: built from the validated input, not decrypted back.
    const order: Order = { id: orderId, status: 'received', createdAt: now, updatedAt: now, ...input };
    return { order, etag: etag ?? (await this.#etagOf(partitionKey, orderId)), patientRef, replayed: false };
  }

  /** The order a raw row of an order partition holds, decrypted (for the tenant's export); else undefined. */
  async exportRow(tenant: string, row: Record<string, unknown>): Promise<(Order & { patientRef: string }) | undefined> {
    if (typeof row.rowKey !== 'string' || !row.rowKey.startsWith(ORDER_ROW(''))) return undefined;
    const order = row as unknown as OrderRow;
    return { ...(await this.#toOrder(tenant, order)), patientRef: order.patientRef };
  }

  /** Order ids of orders created before `before`, shard by shard (retention). */
  async *dueOrders(tenant: string, before: string): AsyncGenerator<string> {
    for (const shard of SHARDS) {
      const filter = odata`PartitionKey eq ${tenantPartition(tenant, AREA, shard)} and RowKey ge ${'order~'} and RowKey lt ${'order~~'} and createdAt lt ${before}`;
      for await (const row of this.#table.listEntities<OrderRow>({ queryOptions: { filter, select: ['id'] } }))
        yield row.id;
    }
  }

  /**
   * Deletes an order with its uniqueness and patient-index rows, in one transaction with its audit
   * entry (images first, by the images domain). Deleting a deleted order is a no-op.
   */
  async deleteOrder(tenant: string, orderId: string, meta: RequestMeta, reason: string): Promise<boolean> {
    const partitionKey = orderPartition(tenant, orderId);
    const row = await this.#row(partitionKey, orderId);
    if (!row) return false;
    const event: AuditEventInput = auditEvent('order.delete', 'D', { type: 'Order', id: orderId }, meta, {
      purpose: 'retention',
      patientRef: row.patientRef,
      details: { reason },
    });
    await this.#audit.commit(
      tenant,
      partitionKey,
      () => [
        ['delete', { partitionKey, rowKey: ORDER_ROW(orderId) }],
        ['delete', { partitionKey, rowKey: EXTERNAL_ROW(row.externalRef) }],
        ['delete', { partitionKey, rowKey: PATIENT_ROW(row.patientRef, orderId) }],
      ],
      [event],
    );
    return true;
  }

  /** Whether the order exists in the tenant and has this specimen; reads no personal data. */
  async specimenRef(
    tenant: string,
    orderId: string,
    specimenId: string,
  ): Promise<{ partitionKey: string; patientRef: string; restricted: boolean } | undefined> {
    if (!/^[0-9a-f]{32}$/.test(orderId)) return undefined;
    const partitionKey = orderPartition(tenant, orderId);
    const row = await this.#row(partitionKey, orderId);
    if (!row) return undefined;
    const ids = row.specimenIds
      ? (JSON.parse(row.specimenIds) as string[])
      : (
          await this.#crypto.decryptJson<{ id: string }[]>(
            { tenant, record: orderId, field: 'specimens' },
            row.encSpecimens,
          )
        ).map((sp) => sp.id);
    return ids.includes(specimenId)
      ? { partitionKey, patientRef: row.patientRef, restricted: row.restricted === true }
      : undefined;
  }

  /** Reads one order; the read of patient data is audited before the data is returned. */
  async get(tenant: string, orderId: string, meta: RequestMeta, event = 'order.read'): Promise<StoredOrder> {
    const partitionKey = tenantPartition(tenant, AREA, orderId[0]);
    const row = await this.#row(partitionKey, orderId);
    if (!row) throw notFound('No such order.');
    await this.#audit.record(tenant, partitionKey, [this.#readEvent(row, meta, event)]);
    return { order: await this.#toOrder(tenant, row), etag: row.etag ?? '', patientRef: row.patientRef };
  }

  /**
   * Changes an order when `precondition` accepts its current version (the storage ETag; the API
   * compares its own strong tag derived from it). The write is conditional on that version too, so
   * a change that lands in between is a 412, not a lost update.
   */
  async update(
    tenant: string,
    orderId: string,
    change: UpdateOrderInput,
    precondition: (currentVersion: string) => boolean,
    meta: RequestMeta,
  ): Promise<StoredOrder> {
    const partitionKey = tenantPartition(tenant, AREA, orderId[0]);
    const row = await this.#row(partitionKey, orderId);
    if (!row) throw notFound('No such order.');
    const ifMatch = row.etag ?? '';
    if (!precondition(ifMatch)) throw staleVersion();
    if (row.restricted) throw restricted();
    const next = change.status ?? row.status;
    if (next !== row.status && !STATUS_TRANSITIONS[row.status].includes(next)) {
      throw unprocessable(`An order in status "${row.status}" cannot change to "${next}".`, [
        { path: '/status', message: `allowed: ${STATUS_TRANSITIONS[row.status].join(', ') || 'none (final status)'}` },
      ]);
    }
    const updated: OrderRow = { ...row, status: next, updatedAt: this.#clock().toISOString() };
    delete updated.etag;
    if (change.cancellationReason !== undefined) {
      updated.encCancellationReason = await this.#crypto.encryptJson(
        { tenant, record: orderId, field: 'cancellationReason' },
        change.cancellationReason,
      );
    }
    const event: AuditEventInput = auditEvent(
      next === 'cancelled' && row.status !== 'cancelled' ? 'order.cancel' : 'order.update',
      'U',
      { type: 'Order', id: orderId },
      meta,
      { purpose: 'order-processing', patientRef: row.patientRef, details: { from: row.status, to: next } },
    );
    let etag: string | undefined;
    try {
      etag = (
        await this.#audit.commit(tenant, partitionKey, () => [['update', updated, 'Replace', { etag: ifMatch }]], [
          event,
        ])
      ).domainEtags[0];
    } catch (error) {
      if (
        error instanceof TransactionFailedError &&
        error.failedIndex === 0 &&
        (error.statusCode === 412 || error.statusCode === 409)
      ) {
        throw staleVersion();
      }
      throw error;
    }
    return {
      order: await this.#toOrder(tenant, updated),
      etag: etag ?? (await this.#etagOf(partitionKey, orderId)),
      patientRef: updated.patientRef,
    };
  }

  /**
   * Lists orders (optionally by patient, external id or status), one audited read per order. `continuation`
   * is storage's own, as an earlier page returned it (the API verifies its signature before).
   */
  async list(
    tenant: string,
    query: OrderFilters & { limit: number; continuation?: string },
    meta: RequestMeta,
  ): Promise<OrderPage> {
    let rows: OrderRow[];
    let continuation: string | undefined;
    if (query.externalId !== undefined) {
      const externalRef = await this.#crypto.pseudonym(tenant, 'external-id', query.externalId);
      const partitionKey = tenantPartition(tenant, AREA, shardOf(externalRef));
      const orderId = await this.#externalIndex(partitionKey, externalRef);
      const row = orderId ? await this.#row(partitionKey, orderId) : undefined;
      rows = row && (query.status === undefined || row.status === query.status) ? [row] : [];
    } else if (query.patientId !== undefined) {
      const patientRef = await this.#crypto.pseudonym(tenant, 'patient-id', query.patientId);
      const filter = odata`PartitionKey ge ${tenantPartition(tenant, AREA, '')} and PartitionKey lt ${tenantPartition(tenant, AREA, '~')} and RowKey ge ${`patient~${patientRef}~`} and RowKey lt ${`patient~${patientRef}~~`}`;
      const page = await this.#page<{ partitionKey: string; orderId: string }>(filter, query.limit, query.continuation);
      continuation = page.continuation;
      const found = await Promise.all(page.rows.map((r) => this.#row(r.partitionKey, r.orderId)));
      rows = found.filter(
        (r): r is OrderRow => r !== undefined && (query.status === undefined || r.status === query.status),
      );
    } else {
      let filter = odata`PartitionKey ge ${tenantPartition(tenant, AREA, '')} and PartitionKey lt ${tenantPartition(tenant, AREA, '~')} and RowKey ge ${'order~'} and RowKey lt ${'order~~'}`;
      if (query.status !== undefined) filter += ' and ' + odata`status eq ${query.status}`;
      const page = await this.#page<OrderRow>(filter, query.limit, query.continuation);
      continuation = page.continuation;
      rows = page.rows;
    }
    // A restricted subject's orders stay stored but out of listings (a page may come back shorter).
    rows = rows.filter((row) => !row.restricted);
    if (rows.length > 0) {
      await this.#audit.record(
        tenant,
        tenantPartition(tenant, 'access'),
        rows.map((row) => this.#readEvent(row, meta, 'order.list')),
      );
    }
    const items = await Promise.all(rows.map((row) => this.#toOrder(tenant, row)));
    return { items, ...(continuation ? { continuation } : {}) };
  }

  /** A data subject's orders, found through the patient index of every shard (never by decrypting). */
  async subjectOrders(tenant: string, patientRef: string): Promise<SubjectOrder[]> {
    const filter = odata`PartitionKey ge ${tenantPartition(tenant, AREA, '')} and PartitionKey lt ${tenantPartition(tenant, AREA, '~')} and RowKey ge ${`patient~${patientRef}~`} and RowKey lt ${`patient~${patientRef}~~`}`;
    const found: SubjectOrder[] = [];
    for await (const index of this.#table.listEntities<{ partitionKey: string; orderId: string }>({
      queryOptions: { filter },
    })) {
      const row = await this.#row(index.partitionKey, index.orderId);
      if (row)
        found.push({ id: row.id, status: row.status, createdAt: row.createdAt, restricted: row.restricted === true });
    }
    return found;
  }

  /**
   * Marks an order restricted (or lifts it), in one transaction with its audit entry; conditional on
   * the version read, so a concurrent change is read again and decided again, never overwritten.
   * True when this call made the change.
   */
  async setRestricted(tenant: string, orderId: string, restrictedNow: boolean, meta: RequestMeta): Promise<boolean> {
    const partitionKey = orderPartition(tenant, orderId);
    // A concurrent change (another restriction of the same subject, a status change) moves the
    // version: read again and decide again, a few times, rather than overwrite or fail.
    for (let attempt = 1; ; attempt++) {
      const row = await this.#row(partitionKey, orderId);
      if (!row || (row.restricted === true) === restrictedNow) return false;
      const event = auditEvent(
        restrictedNow ? 'order.restrict' : 'order.restriction-lift',
        'U',
        { type: 'Order', id: orderId },
        meta,
        { purpose: 'data-subject-request', patientRef: row.patientRef },
      );
      try {
        await this.#audit.commit(
          tenant,
          partitionKey,
          () => [
            [
              'update',
              { partitionKey, rowKey: ORDER_ROW(orderId), restricted: restrictedNow },
              'Merge',
              { etag: row.etag },
            ],
          ],
          [event],
        );
        return true;
      } catch (error) {
        const moved = error instanceof TransactionFailedError && error.failedIndex === 0 && error.statusCode === 412;
        if (!moved || attempt >= 5) throw error;
      }
    }
  }

  async #page<T extends object>(
    filter: string,
    limit: number,
    continuation: string | undefined,
  ): Promise<{ rows: (T & { etag?: string })[]; continuation?: string }> {
    const iterator = this.#table
      .listEntities<T>({ queryOptions: { filter } })
      .byPage({ maxPageSize: limit, ...(continuation ? { continuationToken: continuation } : {}) });
    const page = await iterator.next();
    if (page.done) return { rows: [] };
    const next = (page.value as { continuationToken?: string }).continuationToken;
    return { rows: [...page.value], ...(next ? { continuation: next } : {}) };
  }

  #readEvent(row: OrderRow, meta: RequestMeta, event: string): AuditEventInput {
    return auditEvent(event, 'R', { type: 'Order', id: row.id }, meta, {
      purpose: 'order-processing',
      patientRef: row.patientRef,
    });
  }

  /**
   * The order id an Idempotency-Key stands for: a new one, reserved by inserting the key's row (one
   * round trip when the key is new, as it is on every first attempt), or the id of the first request
   * with this key and body. The row lives in a partition chosen by the key, not in the order's own
   * transaction: a reused key with another body may carry another externalId, hence another shard,
   * and only a place found by the key alone sees both requests.
   */
  async #reserveIdempotencyKey(tenant: string, key: string, requestHash: string, shard: string): Promise<string> {
    const keyHash = sha256(`${tenant}\u0000${key}`);
    const partitionKey = tenantPartition(tenant, IDEMPOTENCY_AREA, keyHash[0]);
    for (;;) {
      const orderId = newOrderId(shard);
      try {
        await this.#table.createEntity({
          partitionKey,
          rowKey: `idem~${keyHash}`,
          requestHash,
          orderId,
          createdAt: this.#clock().toISOString(),
        });
        return orderId;
      } catch (error) {
        if (!isConflict(error)) throw error; // taken: by an earlier attempt of this request, or another body
      }
      try {
        const row = await this.#table.getEntity<{ requestHash: string; orderId: string }>(
          partitionKey,
          `idem~${keyHash}`,
        );
        if (row.requestHash !== requestHash) throw conflict('This Idempotency-Key was used with another request body.');
        return row.orderId;
      } catch (error) {
        if (!isNotFound(error)) throw error; // removed meanwhile (retention): reserve it again
      }
    }
  }

  async #externalIndex(partitionKey: string, externalRef: string): Promise<string | undefined> {
    try {
      return (await this.#table.getEntity<{ orderId: string }>(partitionKey, EXTERNAL_ROW(externalRef))).orderId;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async #row(partitionKey: string, orderId: string): Promise<OrderRow | undefined> {
    try {
      return await this.#table.getEntity<OrderRow>(partitionKey, ORDER_ROW(orderId));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async #etagOf(partitionKey: string, orderId: string): Promise<string> {
    return (await this.#row(partitionKey, orderId))?.etag ?? '';
  }

  async #toOrder(tenant: string, row: OrderRow): Promise<Order> {
    const bind = (field: string) => ({ tenant, record: row.id, field });
    return {
      id: row.id,
      status: row.status,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      externalId: await this.#crypto.decryptJson<string>(bind('externalId'), row.encExternalId),
      patient: await this.#crypto.decryptJson<Order['patient']>(bind('patient'), row.encPatient),
      orderingPhysician: await this.#crypto.decryptJson<Order['orderingPhysician']>(
        bind('orderingPhysician'),
        row.encPhysician,
      ),
      priority: row.priority as Order['priority'],
      ...(row.encClinicalInformation !== undefined
        ? {
            clinicalInformation: await this.#crypto.decryptJson<string>(
              bind('clinicalInformation'),
              row.encClinicalInformation,
            ),
          }
        : {}),
      specimens: await this.#crypto.decryptJson<Order['specimens']>(bind('specimens'), row.encSpecimens),
      examinations: JSON.parse(row.examinations) as string[],
      ...(row.encCancellationReason !== undefined
        ? {
            cancellationReason: await this.#crypto.decryptJson<string>(
              bind('cancellationReason'),
              row.encCancellationReason,
            ),
          }
        : {}),
    };
  }
}

/** One of a tenant's order partitions; orders, their index rows, images and audit streams live there. */
export function shardPartition(tenant: string, shard: string): string {
  return tenantPartition(tenant, AREA, shard);
}

export const ORDERS_AREA = AREA;

/** The partition of an order (its id's first digit is its shard); other domains keep rows beside it. */
function orderPartition(tenant: string, orderId: string): string {
  return tenantPartition(tenant, AREA, orderId[0]);
}

/** 32 hex digits; the first is the storage shard. */
function newOrderId(shard: string): string {
  return shard + pooledRandomBytes(16).toString('hex').slice(1);
}
