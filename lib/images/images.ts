import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer as streamToBuffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { odata, type TableClient } from '@azure/data-tables';
import type { BlobClient } from '@azure/storage-blob';
import type { AuditLog } from '../audit/audit-log.js';
import type { AuditEventInput, RequestMeta } from '../audit/types.js';
import { createDecryptStream, createEncryptStream } from '../crypto/chunked.js';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import type { TenantKeyring } from '../crypto/keyring.js';
import { notFound, restricted } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { OrderService } from '../orders/orders.js';
import { CONTAINERS, type StorageClients } from '../storage/clients.js';
import { discardBlob, purgeBlob } from '../storage/blobs.js';
import { isNotFound } from '../storage/errors.js';
import { SHARDS } from '../storage/keys.js';
import { blobSasUrl } from '../storage/sas.js';
import { TransactionFailedError } from '../storage/transaction.js';
import { IMAGE_LIMITS, inspectAndClean, type RejectionReason } from './processing.js';
import { auditEvent } from '../audit/events.js';

const UPLOAD_URL_MINUTES = 15;
const QUARANTINE_DAYS = 7;
/** Stored forms up to this size are written with one Put Blob; larger ones in 4 MiB blocks. */
const SINGLE_PUT_BYTES = 8 * 1024 * 1024;

export type ImageStatus = 'pending' | 'ready' | 'rejected';

export type ImageRow = {
  partitionKey: string;
  rowKey: string;
  imageId: string;
  orderId: string;
  specimenId: string;
  status: ImageStatus;
  reason?: RejectionReason | 'unreadable';
  declaredContentType: string;
  encFileName: string;
  patientRef: string;
  createdAt: string;
  updatedAt: string;
  contentType?: string;
  detectedFormat?: string;
  width?: number;
  height?: number;
  uploadBytes?: number;
  uploadSha256?: string;
  cleanSha256?: string;
  imageBytes?: number;
  thumbnailBytes?: number;
};

export interface ImageRecord {
  imageId: string;
  orderId: string;
  specimenId: string;
  status: ImageStatus;
  reason?: string;
  fileName: string;
  declaredContentType: string;
  contentType?: string;
  width?: number;
  height?: number;
  uploadBytes?: number;
  uploadSha256?: string;
  sha256?: string;
  bytes?: number;
  thumbnailBytes?: number;
  createdAt: string;
  updatedAt: string;
}

const ROW = (orderId: string, specimenId: string, imageId: string) => `image~${orderId}~${specimenId}~${imageId}`;
/** An upload as read: its bytes, or, over the limit, only its size and SHA-256. */
type BoundedRead = { kind: 'content'; content: Buffer } | { kind: 'too-large'; bytes: number; sha256: string };

export const uploadPath = (tenant: string, orderId: string, specimenId: string, imageId: string) =>
  `${tenant}/${orderId}/${specimenId}/${imageId}`;
const storedPath = (
  tenant: string,
  orderId: string,
  specimenId: string,
  imageId: string,
  kind: 'image' | 'thumbnail',
) => `${tenant}/${orderId}/${specimenId}/${imageId}/${kind}`;

export interface ImageServiceDependencies {
  table: TableClient;
  storage: StorageClients;
  audit: AuditLog;
  crypto: TenantCrypto;
  keyring: TenantKeyring;
  orders: OrderService;
  logger: Logger;
  clock?: () => Date;
}

/**
 * Specimen images: a write-only upload URL per image, the processing of an upload (checks, cleaning,
 * thumbnail, chunked encryption with the tenant's data key) and the audited reads. Image records sit
 * in their order's partition, so each change commits with its audit entry.
 */
export class ImageService {
  readonly #d: ImageServiceDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: ImageServiceDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async createUpload(
    tenant: string,
    orderId: string,
    specimenId: string,
    input: { contentType: string; fileName: string },
    meta: RequestMeta,
  ): Promise<{ imageId: string; uploadUrl: string; expiresAt: string }> {
    const ref = await this.#d.orders.specimenRef(tenant, orderId, specimenId);
    if (!ref) throw notFound('No such order or specimen.');
    if (ref.restricted) throw restricted();
    const imageId = randomBytes(16).toString('hex');
    const now = this.#clock();
    const expiresAt = new Date(now.getTime() + UPLOAD_URL_MINUTES * 60_000);
    const row: ImageRow = {
      partitionKey: ref.partitionKey,
      rowKey: ROW(orderId, specimenId, imageId),
      imageId,
      orderId,
      specimenId,
      status: 'pending',
      declaredContentType: input.contentType,
      // File names often carry a patient's name: encrypted like any personal field.
      encFileName: await this.#d.crypto.encryptJson({ tenant, record: imageId, field: 'fileName' }, input.fileName),
      patientRef: ref.patientRef,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    };
    await this.#d.audit.commit(tenant, ref.partitionKey, () => [['create', row]], [
      this.#event('image.upload-url', 'C', row, meta, { expiresAt: expiresAt.toISOString() }),
    ]);
    const uploadUrl = await blobSasUrl(this.#d.storage, {
      container: CONTAINERS.uploads,
      blob: uploadPath(tenant, orderId, specimenId, imageId),
      permissions: 'cw',
      expiresOn: expiresAt,
    });
    return { imageId, uploadUrl, expiresAt: expiresAt.toISOString() };
  }

  /**
   * Processes one uploaded blob, reading it itself, once: its size comes from the download's headers
   * first, and an upload over the limit is refused without being held (it streams through a hash;
   * its size and that hash are recorded, never its bytes). At most one bounded upload is in memory
   * per call.
   * Whatever the holder of the upload link did to the blob (leases, snapshots, uncommitted blocks,
   * uploads again), every trace of it is removed at the end. Safe to repeat: a record leaves
   * `pending` only after its encrypted bytes are stored, and a repeat only removes the upload.
   */
  async processUpload(path: {
    tenant: string;
    orderId: string;
    specimenId: string;
    imageId: string;
  }): Promise<ImageStatus | 'unknown'> {
    const { tenant, orderId, specimenId, imageId } = path;
    const uploads = this.#d.storage.blobService.getContainerClient(CONTAINERS.uploads);
    const name = uploadPath(tenant, orderId, specimenId, imageId);
    const upload = uploads.getBlobClient(name);
    const row = await this.#row(tenant, orderId, specimenId, imageId);
    if (!row) {
      // Nothing asked for this upload (no URL was issued): it is not kept.
      this.#d.logger.log('warn', 'image.upload.unknown', { tenantKnown: false });
      await discardBlob(uploads, name);
      return 'unknown';
    }
    if (row.status !== 'pending') {
      await discardBlob(uploads, name);
      return row.status;
    }
    const meta: RequestMeta = { actor: { type: 'system', id: 'image-processor' }, correlationId: `blob-${imageId}` };
    const now = this.#clock().toISOString();
    let next: ImageRow;
    let event: AuditEventInput;
    let read: BoundedRead;
    try {
      // One request: the download's own headers say the size, so nothing is read twice.
      read = await this.#downloadBounded(upload);
    } catch (error) {
      // Nothing (committed) there yet, or gone since (another delivery of this event processed it):
      // the record says where it stands; a later event brings a later upload.
      if (isNotFound(error)) return row.status;
      throw error;
    }
    if (read.kind === 'too-large') {
      // Too large (or it grew while we read it): refused from its size; the hash was streamed, nothing kept.
      const { bytes, sha256 } = read;
      next = {
        ...row,
        status: 'rejected',
        reason: 'too-large',
        updatedAt: now,
        uploadBytes: bytes,
        uploadSha256: sha256,
      };
      event = { ...this.#event('image.reject', 'U', next, meta, { reason: 'too-large', bytes }), outcome: 'failure' };
    } else {
      const content = read.content;
      const result = await inspectAndClean(content);
      if (result.ok) {
        const img = result.image;
        await Promise.all([
          this.#storeEncrypted(
            tenant,
            imageId,
            'image',
            CONTAINERS.images,
            storedPath(tenant, orderId, specimenId, imageId, 'image'),
            img.image,
            img.contentType,
          ),
          this.#storeEncrypted(
            tenant,
            imageId,
            'thumbnail',
            CONTAINERS.images,
            storedPath(tenant, orderId, specimenId, imageId, 'thumbnail'),
            img.thumbnail,
            'image/jpeg',
          ),
        ]);
        next = {
          ...row,
          status: 'ready',
          updatedAt: now,
          contentType: img.contentType,
          detectedFormat: img.detectedFormat,
          width: img.width,
          height: img.height,
          uploadBytes: img.uploadBytes,
          uploadSha256: img.uploadSha256,
          cleanSha256: img.cleanSha256,
          imageBytes: img.image.length,
          thumbnailBytes: img.thumbnail.length,
        };
        event = this.#event('image.process', 'U', next, meta, {
          width: img.width,
          height: img.height,
          format: img.detectedFormat,
        });
      } else {
        // Quarantined for inspection, encrypted like everything else, and deleted after 7 days.
        await this.#storeEncrypted(
          tenant,
          imageId,
          'quarantine',
          CONTAINERS.quarantine,
          uploadPath(tenant, orderId, specimenId, imageId),
          content,
          'application/octet-stream',
        );
        next = {
          ...row,
          status: 'rejected',
          reason: result.reason,
          updatedAt: now,
          uploadBytes: content.length,
          uploadSha256: createHash('sha256').update(content).digest('hex'),
        };
        event = { ...this.#event('image.reject', 'U', next, meta, { reason: result.reason }), outcome: 'failure' };
      }
    }
    delete (next as Partial<ImageRow & { etag: string }>).etag;
    try {
      await this.#d.audit.commit(tenant, row.partitionKey, () => [['update', next, 'Replace', { etag: row.etag }]], [
        event,
      ]);
    } catch (error) {
      // Another run finished first; its record stands.
      if (!(error instanceof TransactionFailedError && error.failedIndex === 0)) throw error;
    }
    await discardBlob(uploads, name);
    return next.status;
  }

  /**
   * The upload's bytes, read once: up to the limit into memory; past it (from the download's own
   * length, or when more arrives than it said) only through a SHA-256, one chunk at a time, so an
   * oversized upload is refused with its size and hash without being held or downloaded again.
   */
  async #downloadBounded(upload: BlobClient): Promise<BoundedRead> {
    const download = await upload.download(0);
    const chunks: Buffer[] = [];
    let bytes = 0;
    // Set once the upload is known to be over the limit: from then on chunks go through it only.
    let hash = (download.contentLength ?? 0) > IMAGE_LIMITS.maxBytes ? createHash('sha256') : undefined;
    for await (const chunk of download.readableStreamBody as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (!hash && bytes > IMAGE_LIMITS.maxBytes) {
        hash = createHash('sha256');
        for (const held of chunks.splice(0)) hash.update(held);
      }
      if (hash) hash.update(chunk);
      else chunks.push(chunk);
    }
    return hash
      ? { kind: 'too-large', bytes, sha256: hash.digest('hex') }
      : { kind: 'content', content: Buffer.concat(chunks) };
  }

  async list(tenant: string, orderId: string, specimenId: string, meta: RequestMeta): Promise<ImageRecord[]> {
    const ref = await this.#d.orders.specimenRef(tenant, orderId, specimenId);
    if (!ref) throw notFound('No such order or specimen.');
    if (ref.restricted) return []; // a restricted subject's images stay out of listings
    const prefix = `image~${orderId}~${specimenId}~`;
    const filter = odata`PartitionKey eq ${ref.partitionKey} and RowKey ge ${prefix} and RowKey lt ${prefix + '~'}`;
    const rows: ImageRow[] = [];
    for await (const row of this.#d.table.listEntities<ImageRow>({ queryOptions: { filter } })) rows.push(row);
    if (rows.length > 0)
      await this.#d.audit.record(
        tenant,
        ref.partitionKey,
        rows.map((r) => this.#event('image.list', 'R', r, meta)),
      );
    return Promise.all(rows.map((r) => this.#toRecord(tenant, r)));
  }

  /** The decrypted image or thumbnail; only ready images, only in the caller's tenant. */
  async read(
    tenant: string,
    ids: { orderId: string; specimenId: string; imageId: string },
    kind: 'image' | 'thumbnail',
    meta: RequestMeta,
  ): Promise<{ bytes: Buffer; contentType: string }> {
    const ref = await this.#d.orders.specimenRef(tenant, ids.orderId, ids.specimenId);
    const row = ref ? await this.#row(tenant, ids.orderId, ids.specimenId, ids.imageId) : undefined;
    if (!row || row.status !== 'ready') throw notFound('No such image (or it is not ready).');
    await this.#d.audit.record(tenant, row.partitionKey, [
      this.#event(kind === 'image' ? 'image.read' : 'image.thumbnail.read', 'R', row, meta),
    ]);
    const blob = this.#d.storage.blobService
      .getContainerClient(CONTAINERS.images)
      .getBlobClient(storedPath(tenant, ids.orderId, ids.specimenId, ids.imageId, kind));
    const download = await blob.download();
    const chunks: Buffer[] = [];
    const decrypt = createDecryptStream((version) => this.#d.keyring.dataKeyVersion(tenant, version), {
      tenant,
      record: ids.imageId,
      field: kind,
    });
    decrypt.on('data', (c: Buffer) => chunks.push(c));
    await pipeline(download.readableStreamBody as NodeJS.ReadableStream, decrypt);
    return {
      bytes: Buffer.concat(chunks),
      contentType: kind === 'image' ? (row.contentType ?? 'application/octet-stream') : 'image/jpeg',
    };
  }

  /** Image records of one order shard, for the tenant's export. */
  /** The image record a raw row of an order partition holds (for the tenant's export); else undefined. */
  async exportRow(
    tenant: string,
    row: Record<string, unknown>,
  ): Promise<(ImageRecord & { patientRef: string }) | undefined> {
    if (typeof row.rowKey !== 'string' || !row.rowKey.startsWith('image~')) return undefined;
    const image = row as unknown as ImageRow;
    return { ...(await this.#toRecord(tenant, image)), patientRef: image.patientRef };
  }

  async openDecrypted(
    tenant: string,
    record: { orderId: string; specimenId: string; imageId: string },
    kind: 'image' | 'thumbnail',
  ): Promise<NodeJS.ReadableStream> {
    const blob = this.#d.storage.blobService
      .getContainerClient(CONTAINERS.images)
      .getBlobClient(storedPath(tenant, record.orderId, record.specimenId, record.imageId, kind));
    const download = await blob.download();
    const decrypt = createDecryptStream((version) => this.#d.keyring.dataKeyVersion(tenant, version), {
      tenant,
      record: record.imageId,
      field: kind,
    });
    return (download.readableStreamBody as NodeJS.ReadableStream).pipe(decrypt);
  }

  /** Deletes an image: its blobs (every version and snapshot), its record, audited. */
  async deleteImage(
    tenant: string,
    row: ImageRow & { etag?: string },
    meta: RequestMeta,
    reason: string,
  ): Promise<{ blobs: number; bytes: number }> {
    const counts = { blobs: 0, bytes: 0 };
    const targets: [string, string][] = [
      [CONTAINERS.images, storedPath(tenant, row.orderId, row.specimenId, row.imageId, 'image')],
      [CONTAINERS.images, storedPath(tenant, row.orderId, row.specimenId, row.imageId, 'thumbnail')],
      [CONTAINERS.quarantine, uploadPath(tenant, row.orderId, row.specimenId, row.imageId)],
      [CONTAINERS.uploads, uploadPath(tenant, row.orderId, row.specimenId, row.imageId)],
    ];
    for (const [container, name] of targets) {
      const r = await purgeBlob(this.#d.storage.blobService.getContainerClient(container), name);
      counts.blobs += r.blobs;
      counts.bytes += r.bytes;
    }
    try {
      await this.#d.audit.commit(
        tenant,
        row.partitionKey,
        () => [['delete', { partitionKey: row.partitionKey, rowKey: row.rowKey }]],
        [{ ...this.#event('image.delete', 'D', row, meta, { reason, blobs: counts.blobs }) }],
      );
    } catch (error) {
      if (!(error instanceof TransactionFailedError && error.statusCode === 404)) throw error; // deleted already
    }
    return counts;
  }

  /** Images of one order (all), or every image created before `before` (retention). */
  async *rows(tenant: string, filter: { orderId: string } | { before: string }): AsyncGenerator<ImageRow> {
    for (const shard of 'orderId' in filter ? [filter.orderId[0] ?? '0'] : SHARDS) {
      const partitionKey = `${tenant}~orders~${shard}`;
      const prefix = 'orderId' in filter ? `image~${filter.orderId}~` : 'image~';
      let query = odata`PartitionKey eq ${partitionKey} and RowKey ge ${prefix} and RowKey lt ${prefix + '~'}`;
      if ('before' in filter) query += ' and ' + odata`createdAt lt ${filter.before}`;
      for await (const row of this.#d.table.listEntities<ImageRow>({ queryOptions: { filter: query } })) yield row;
    }
  }

  /** Deletes quarantined uploads older than 7 days (the timer calls this daily). */
  async purgeQuarantine(): Promise<number> {
    const container = this.#d.storage.blobService.getContainerClient(CONTAINERS.quarantine);
    const cutoff = this.#clock().getTime() - QUARANTINE_DAYS * 24 * 3600 * 1000;
    let deleted = 0;
    for await (const blob of container.listBlobsFlat()) {
      const created = blob.properties.createdOn ?? blob.properties.lastModified;
      if (created.getTime() < cutoff) {
        await purgeBlob(container, blob.name);
        deleted++;
      }
    }
    return deleted;
  }

  async #storeEncrypted(
    tenant: string,
    record: string,
    field: string,
    container: string,
    blobName: string,
    bytes: Buffer,
    contentType: string,
  ): Promise<void> {
    const key = await this.#d.keyring.currentDataKey(tenant);
    const encrypt = createEncryptStream(key.key, key.version, { tenant, record, field });
    const blob = this.#d.storage.blobService.getContainerClient(container).getBlockBlobClient(blobName);
    const options = {
      blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
      // Only what an operator may see: the plaintext content type, never names or hashes.
      metadata: { encryption: 'labvault-aes256gcm-chunked', plaincontenttype: contentType },
    };
    Readable.from([bytes]).pipe(encrypt);
    if (bytes.length <= SINGLE_PUT_BYTES) {
      // One Put Blob instead of a block and a block list: the bytes are in memory already.
      const encrypted = await streamToBuffer(encrypt);
      await blob.upload(encrypted, encrypted.length, options);
      return;
    }
    await blob.uploadStream(encrypt, 4 * 1024 * 1024, 2, options);
  }

  async #row(
    tenant: string,
    orderId: string,
    specimenId: string,
    imageId: string,
  ): Promise<(ImageRow & { etag: string }) | undefined> {
    if (!/^[0-9a-f]{32}$/.test(orderId) || !/^[0-9a-f]{32}$/.test(imageId)) return undefined;
    try {
      return await this.#d.table.getEntity<ImageRow>(
        `${tenant}~orders~${orderId[0]}`,
        ROW(orderId, specimenId, imageId),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async #toRecord(tenant: string, row: ImageRow): Promise<ImageRecord> {
    return {
      imageId: row.imageId,
      orderId: row.orderId,
      specimenId: row.specimenId,
      status: row.status,
      ...(row.reason ? { reason: row.reason } : {}),
      fileName: await this.#d.crypto.decryptJson<string>(
        { tenant, record: row.imageId, field: 'fileName' },
        row.encFileName,
      ),
      declaredContentType: row.declaredContentType,
      ...(row.contentType ? { contentType: row.contentType } : {}),
      ...(row.width ? { width: row.width, height: row.height } : {}),
      ...(row.uploadBytes !== undefined ? { uploadBytes: row.uploadBytes } : {}),
      ...(row.uploadSha256 ? { uploadSha256: row.uploadSha256 } : {}),
      ...(row.cleanSha256 ? { sha256: row.cleanSha256 } : {}),
      ...(row.imageBytes ? { bytes: row.imageBytes, thumbnailBytes: row.thumbnailBytes } : {}),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  #event(
    event: string,
    action: AuditEventInput['action'],
    row: ImageRow,
    meta: RequestMeta,
    details?: AuditEventInput['details'],
  ): AuditEventInput {
    return auditEvent(event, action, { type: 'Media', id: row.imageId }, meta, {
      purpose: 'specimen-imaging',
      patientRef: row.patientRef,
      details: { order: row.orderId, specimen: row.specimenId, ...(details ?? {}) },
    });
  }
}
