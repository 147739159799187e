import { recordWorkflow } from '../observability/instruments.js';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { PassThrough, Readable } from 'node:stream';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import yazl from 'yazl';
import { z } from 'zod';
import { auditEntrySchema } from '../audit/schemas.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { AuditEntry, AuditEventInput, RequestMeta } from '../audit/types.js';
import { DomainError, notFound } from '../errors.js';
import { integrationSchema, roleSchema, userSchema } from '../identity/schemas.js';
import type { IntegrationService } from '../identity/integrations.js';
import type { RoleService } from '../identity/roles.js';
import type { UserService } from '../identity/users.js';
import { imageRecordSchema } from '../images/schemas.js';
import type { ImageService } from '../images/images.js';
import type { Logger } from '../observability/logger.js';
import { ORDERS_AREA, type OrderService, shardPartition } from '../orders/orders.js';
import { orderSchema, specimenSchema } from '../orders/schemas.js';
import { CONTAINERS, type StorageClients } from '../storage/clients.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { SHARDS, tenantPartition } from '../storage/keys.js';
import { blobSasUrl } from '../storage/sas.js';
import { TransactionFailedError } from '../storage/transaction.js';
import type { TenantService } from '../tenants/tenants.js';
import { auditEventResource, mediaResource, orderResources } from './fhir.js';
import { auditEvent } from '../audit/events.js';

const EXPORT_SCHEMA_VERSION = '1.0';
const GENERATOR = { name: 'LabVault', version: '0.1.0' };
export const ARCHIVE_DAYS = { request: 7, 'contract-end': 30, 'subject-access': 7 } as const;

export type ExportFormat = 'ndjson' | 'fhir';
export type ExportPurpose = keyof typeof ARCHIVE_DAYS;
type ExportStatus = 'pending' | 'running' | 'completed' | 'failed' | 'expired';

type ExportRow = {
  partitionKey: string;
  rowKey: string;
  id: string;
  status: ExportStatus;
  format: ExportFormat;
  purpose: ExportPurpose;
  requestedBy: string;
  createdAt: string;
  completedAt?: string;
  archiveBytes?: number;
  archiveSha256?: string;
  /** The manifest's summary (JSON): file count and record counts by type, for the console. */
  archiveSummary?: string;
  deleteAt?: string;
  failure?: string;
  /** A data subject's access export: only the records of this patient pseudonym. */
  subjectRef?: string;
};

export interface ExportRecord {
  id: string;
  status: ExportStatus;
  format: ExportFormat;
  purpose: ExportPurpose;
  requestedBy: string;
  createdAt: string;
  completedAt?: string;
  archive?: { bytes: number; sha256: string; deleteAt: string; summary?: ArchiveSummary };
}

/** What the archive's manifest.json counts, kept beside the export so it is shown without unzipping. */
export interface ArchiveSummary {
  files: number;
  counts: Record<string, number>;
}

/** One file a part wrote: its place in the archive, what it holds, and its checksum. */
export interface PartFile {
  path: string;
  blob: string;
  type: string;
  count: number;
  bytes: number;
  sha256: string;
  from?: string;
  to?: string;
}

const AREA = 'exports';
// Block sizes of the streamed uploads. The SDK holds up to three blocks per upload (two in flight,
// one filling), and a part writes several files at once with four parts running: small blocks keep
// the export's memory flat whatever the tenant's size (a 50,000-block blob limit still allows
// 12 GB per part file).
const PART_BLOCK_BYTES = 256 * 1024;
const ARCHIVE_BLOCK_BYTES = 1024 * 1024;
/** A shard part's working list of the ready images to pack into the archive (not itself archived). */
const PACKING_LIST = 'packing-list';
/** A shard part's working list of shared FHIR resources (patients, practitioners…), one per bucket. */
const SHARED_LIST = 'shared-list';
/** Buckets of shared resources: the dedup step holds one bucket's identities in memory at a time. */
export const SHARED_BUCKETS = 4;
const WORKING_LISTS = new Set([PACKING_LIST, SHARED_LIST]);

/** The working lists one dedup step reads: a bucket's list from every shard. */
export const sharedListsOf = (files: readonly PartFile[], bucket: number): PartFile[] =>
  files.filter((f) => f.type === SHARED_LIST && f.path.startsWith(`${SHARED_LIST}-${bucket}-`));

/** What the archive step needs: every file but the shared lists, which the dedup steps consumed. */
export const archiveInputsOf = (files: readonly PartFile[]): PartFile[] => files.filter((f) => f.type !== SHARED_LIST);
const sharedBucket = (resource: Record<string, unknown>): number =>
  (createHash('sha256')
    .update(`${String(resource.resourceType)}/${String(resource.id)}`)
    .digest()[0] ?? 0) % SHARED_BUCKETS;
type PackedImage = { orderId: string; specimenId: string; imageId: string; contentType: string };
const ROW = (id: string) => `export~${id}`;
const LOCK = 'lock';

/** JSON Schemas of the NDJSON record types, shipped in every archive (generated from the API's zod schemas). */
function recordSchemas(): Record<string, unknown> {
  const schemas: Record<string, z.ZodType> = {
    order: orderSchema,
    specimen: specimenSchema.extend({ orderId: z.string() }),
    image: imageRecordSchema,
    user: userSchema,
    role: roleSchema,
    integration: integrationSchema,
    'audit-entry': auditEntrySchema,
    'retention-policy': z.object({
      imagesDays: z.number().optional(),
      ordersDays: z.number().optional(),
      afterContractEndDays: z.number().optional(),
    }),
  };
  return Object.fromEntries(
    Object.entries(schemas).map(([name, schema]) => [
      name,
      z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }),
    ]),
  );
}

export interface ExportDependencies {
  table: TableClient;
  storage: StorageClients;
  audit: AuditLog;
  orders: OrderService;
  images: ImageService;
  users: UserService;
  roles: RoleService;
  integrations: IntegrationService;
  tenants: TenantService;
  logger: Logger;
  /** Hours a storage download link stays valid (LABVAULT_EXPORT_LINK_HOURS, at most 24). */
  linkHours: number;
  clock?: () => Date;
}

/** The tenant's export lock is held: a tenant-wide export or a patient's erasure runs (409). */
export class ExportLockHeldError extends DomainError {
  override name = 'ExportLockHeldError';
  constructor() {
    super('conflict', "An export of this tenant, or a patient's erasure, is running; wait for it to finish.");
  }
}

/** What holds the tenant's export lock: an export (as its row stands) or a patient's erasure. */
export type ExportLockHolder =
  { kind: 'export'; exportId: string; createdAt: string } | { kind: 'erasure'; requestId: string };

const ERASURE_HOLDER = 'erasure:';

/**
 * A tenant's data handed over in machine-readable form: NDJSON (with a JSON Schema per record type)
 * or FHIR R4 Bulk Data NDJSON, plus the image files and a manifest of counts and checksums, in one
 * ZIP written as a stream. The steps are idempotent; the durable orchestration runs them.
 */
export class ExportService {
  readonly #d: ExportDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: ExportDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  /**
   * Records the request; one export of the whole tenant runs at a time (409 otherwise). A data
   * subject's export (`subjectRef`) is small and takes no lock: it never waits for a tenant export.
   */
  async request(
    tenant: string,
    format: ExportFormat,
    purpose: ExportPurpose,
    requestedBy: string,
    meta: RequestMeta,
    options: { subjectRef?: string } = {},
  ): Promise<ExportRecord> {
    const id = randomBytes(12).toString('hex');
    const partitionKey = tenantPartition(tenant, AREA);
    const row: ExportRow = {
      partitionKey,
      rowKey: ROW(id),
      id,
      status: 'pending',
      format,
      purpose,
      requestedBy,
      createdAt: this.#clock().toISOString(),
      ...(options.subjectRef ? { subjectRef: options.subjectRef } : {}),
    };
    try {
      await this.#d.audit.commit(
        tenant,
        partitionKey,
        () =>
          options.subjectRef
            ? [['create', row]]
            : [
                ['create', { partitionKey, rowKey: LOCK, exportId: id }],
                ['create', row],
              ],
        [
          auditEvent('export.request', 'C', { type: 'Export', id }, meta, {
            purpose: 'data-portability',
            ...(options.subjectRef ? { patientRef: options.subjectRef } : {}),
            details: { format, purpose },
          }),
        ],
      );
    } catch (error) {
      if (error instanceof TransactionFailedError && error.failedIndex === 0) throw new ExportLockHeldError();
      throw error;
    }
    return toRecord(row);
  }

  async get(tenant: string, id: string): Promise<ExportRecord> {
    return toRecord(await this.#row(tenant, id));
  }

  /** Every export of the tenant by id, in one query (a handful of rows in one partition). */
  async records(tenant: string): Promise<Map<string, ExportRecord>> {
    const filter = odata`PartitionKey eq ${tenantPartition(tenant, AREA)} and RowKey ge ${ROW('')} and RowKey lt ${ROW('~')}`;
    const records = new Map<string, ExportRecord>();
    for await (const row of this.#d.table.listEntities<ExportRow>({ queryOptions: { filter } }))
      records.set(row.id, toRecord(row));
    return records;
  }

  /**
   * The parts to write: one per order shard, one for accounts and settings, one for the audit log;
   * a data subject's export has the shards and the audit entries about that subject.
   */
  async plan(tenant: string, id: string): Promise<string[]> {
    const row = await this.#row(tenant, id);
    const shards = SHARDS.map((s) => `shard-${s}`);
    return row.subjectRef ? [...shards, 'subject-audit'] : [...shards, 'identity', 'audit'];
  }

  async markRunning(tenant: string, id: string): Promise<void> {
    const row = await this.#row(tenant, id);
    if (row.status === 'pending')
      await this.#d.table.updateEntity(
        { partitionKey: row.partitionKey, rowKey: row.rowKey, status: 'running' },
        'Merge',
        { etag: (row as ExportRow & { etag: string }).etag },
      );
    this.#d.logger.log('info', 'export.started', { tenant, exportId: id, format: row.format });
  }

  /** Writes the NDJSON files of one part to blobs (overwriting: safe to repeat). */
  async writePart(tenant: string, id: string, part: string, format: ExportFormat): Promise<PartFile[]> {
    const writers = new Map<string, PartWriter>();
    const writer = (type: string, path: string): PartWriter => {
      let w = writers.get(path);
      if (!w) {
        w = new PartWriter(this.#d.storage, `${tenant}/${id}/parts/${part}/${path.replaceAll('/', '_')}`, path, type);
        writers.set(path, w);
      }
      return w;
    };
    // A data subject's export keeps the rows whose pseudonym is the subject's (orders, images, entries).
    const subjectRef = (await this.#row(tenant, id)).subjectRef;
    const aboutSubject = (row: Record<string, unknown>) => subjectRef === undefined || row.patientRef === subjectRef;
    if (part.startsWith('shard-')) {
      // One pass over the shard's partition: orders, images and the partition's audit stream live
      // there together, and storage reads a whole partition for any query of it.
      const shard = part.slice('shard-'.length);
      const filter = odata`PartitionKey eq ${shardPartition(tenant, shard)}`;
      for await (const row of this.#d.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
        if (!aboutSubject(row)) continue;
        const order = await this.#d.orders.exportRow(tenant, row);
        if (order) {
          if (format === 'fhir') {
            const { own, shared } = orderResources(order);
            for (const resource of own)
              await writer(String(resource.resourceType), `${resource.resourceType}-${shard}.ndjson`).write(
                resource,
                order.createdAt,
              );
            // Patients, practitioners and practices recur across orders and shards: bucketed by
            // identity for the dedup step, which writes each one once.
            for (const resource of shared) {
              const bucket = sharedBucket(resource);
              await writer(SHARED_LIST, `${SHARED_LIST}-${bucket}-${shard}.ndjson`).write({
                bucket,
                at: order.updatedAt,
                resource,
              });
            }
          } else {
            const { patientRef: _ref, ...plain } = order;
            await writer('order', `orders/orders-${shard}.ndjson`).write(plain, order.createdAt);
            for (const sp of order.specimens)
              await writer('specimen', `orders/specimens-${shard}.ndjson`).write(
                { orderId: order.id, ...sp },
                order.createdAt,
              );
          }
          continue;
        }
        const image = await this.#d.images.exportRow(tenant, row);
        if (image) {
          if (image.status === 'ready') {
            const file: PackedImage = {
              orderId: image.orderId,
              specimenId: image.specimenId,
              imageId: image.imageId,
              contentType: image.contentType ?? 'image/jpeg',
            };
            await writer(PACKING_LIST, `${PACKING_LIST}-${shard}.ndjson`).write(file);
          }
          if (format === 'fhir') {
            if (image.status === 'ready')
              await writer('Media', `Media-${shard}.ndjson`).write(
                mediaResource(image, imageArchivePath(image)),
                image.createdAt,
              );
          } else {
            const { patientRef: _ref, ...plain } = image;
            await writer('image', `images/images-${shard}.ndjson`).write(plain, image.createdAt);
          }
          continue;
        }
        const entry = this.#d.audit.entryOfRow(tenant, row);
        if (entry) await this.#writeAuditEntry(writer, format, entry, shard);
      }
    } else if (part === 'subject-audit' && subjectRef !== undefined) {
      for await (const entry of this.#d.audit.entriesOutside(tenant, ORDERS_AREA))
        if (entry.patientRef === subjectRef) await this.#writeAuditEntry(writer, format, entry);
    } else if (part === 'identity' && format === 'ndjson') {
      for (const user of await this.#d.users.list(tenant))
        await writer('user', 'accounts/users.ndjson').write(user, user.createdAt);
      for (const role of await this.#d.roles.listRoles(tenant))
        await writer('role', 'accounts/roles.ndjson').write(role);
      for (const integration of await this.#d.integrations.list(tenant))
        await writer('integration', 'accounts/integrations.ndjson').write(integration, integration.createdAt);
      await writer('retention-policy', 'settings/retention-policy.ndjson').write(
        (await this.#d.tenants.retention(tenant)) ?? {},
      );
    } else if (part === 'audit') {
      // The streams of the order partitions are written by their shard parts.
      for await (const entry of this.#d.audit.entriesOutside(tenant, ORDERS_AREA))
        await this.#writeAuditEntry(writer, format, entry);
    }
    const files: PartFile[] = [];
    for (const w of writers.values()) files.push(await w.close());
    this.#d.logger.log('info', 'export.progress', {
      tenant,
      exportId: id,
      part,
      records: files.reduce((n, f) => n + f.count, 0),
    });
    return files;
  }

  /**
   * One bucket of the shared FHIR resources: every shard's list of it read line by line, each
   * identity kept once (the version of its latest order), written as the archive's files.
   */
  async writeShared(tenant: string, id: string, bucket: number, parts: PartFile[]): Promise<PartFile[]> {
    const latest = new Map<string, { at: string; resource: Record<string, unknown> }>();
    for (const list of sharedListsOf(parts, bucket)) {
      for await (const line of this.#lines(list.blob)) {
        const { at, resource } = JSON.parse(line) as { at: string; resource: Record<string, unknown> };
        const key = `${String(resource.resourceType)}/${String(resource.id)}`;
        const known = latest.get(key);
        if (!known || at > known.at) latest.set(key, { at, resource });
      }
    }
    const writers = new Map<string, PartWriter>();
    for (const { at, resource } of latest.values()) {
      const type = String(resource.resourceType);
      const path = `${type}-b${bucket}.ndjson`;
      let w = writers.get(path);
      if (!w) {
        w = new PartWriter(this.#d.storage, `${tenant}/${id}/parts/shared-${bucket}/${path}`, path, type);
        writers.set(path, w);
      }
      await w.write(resource, at);
    }
    const files: PartFile[] = [];
    for (const w of writers.values()) files.push(await w.close());
    this.#d.logger.log('info', 'export.progress', {
      tenant,
      exportId: id,
      part: `shared-${bucket}`,
      records: latest.size,
    });
    return files;
  }

  async #writeAuditEntry(
    writer: (type: string, path: string) => PartWriter,
    format: ExportFormat,
    entry: AuditEntry,
    shard?: string,
  ): Promise<void> {
    const suffix = shard === undefined ? '' : `-${shard}`;
    if (format === 'fhir') {
      await writer('AuditEvent', `AuditEvent${suffix}.ndjson`).write(auditEventResource(entry), entry.at);
    } else {
      const { tenant: _t, ...plain } = entry;
      await writer('audit-entry', `audit/audit-log${suffix}.ndjson`).write(plain, entry.at);
    }
  }

  /**
   * Streams parts, image files and the manifest into one ZIP in the `exports` container; memory
   * holds one chunk per stream and the manifest, whatever the tenant's size.
   */
  async assemble(
    tenant: string,
    id: string,
    format: ExportFormat,
    parts: PartFile[],
    options: { assembledAt?: Date } = {},
  ): Promise<{ bytes: number; sha256: string } & ArchiveSummary> {
    // The same inputs give the same bytes (entry times and the manifest's date are the orchestration's,
    // never the clock's), so an attempt repeated after a lost answer writes the archive it reports.
    const assembledAt = options.assembledAt ?? this.#clock();
    const entry = { mtime: assembledAt };
    const container = this.#d.storage.blobService.getContainerClient(CONTAINERS.exports);
    const zip = new yazl.ZipFile();
    const manifestFiles: { path: string; bytes: number; sha256: string }[] = [];
    for (const part of parts) {
      if (WORKING_LISTS.has(part.type)) continue; // working lists, not part of the archive
      manifestFiles.push({ path: part.path, bytes: part.bytes, sha256: part.sha256 });
      zip.addReadStreamLazy(part.path, { ...entry, compress: true }, (callback) => {
        container
          .getBlobClient(part.blob)
          .download()
          .then(
            (d) => callback(null, d.readableStreamBody as NodeJS.ReadableStream),
            (error: Error) => callback(error, undefined as never),
          );
      });
    }
    const schemas = format === 'ndjson' ? recordSchemas() : {};
    for (const [name, schema] of Object.entries(schemas)) {
      const text = Buffer.from(JSON.stringify(schema, null, 2));
      manifestFiles.push({ path: `schemas/${name}.schema.json`, bytes: text.length, sha256: sha256(text) });
      zip.addBuffer(text, `schemas/${name}.schema.json`, entry);
    }
    let imageFiles = 0;
    for (const list of parts.filter((p) => p.type === PACKING_LIST)) {
      for await (const image of this.#packedImages(list.blob)) {
        const path = imageArchivePath(image);
        imageFiles++;
        // Images are compressed already: stored as they are.
        zip.addReadStreamLazy(path, { ...entry, compress: false }, (callback) => {
          this.#d.images.openDecrypted(tenant, image, 'image').then(
            (stream) => {
              const hash = createHash('sha256');
              let bytes = 0;
              const tap = new PassThrough();
              tap.on('data', (c: Buffer) => {
                hash.update(c);
                bytes += c.length;
              });
              tap.on('end', () => manifestFiles.push({ path, bytes, sha256: hash.digest('hex') }));
              stream.on('error', (e) => tap.destroy(e));
              callback(null, stream.pipe(tap));
            },
            (error: Error) => callback(error, undefined as never),
          );
        });
      }
    }
    const counts: Record<string, number> = {};
    let from: string | undefined;
    let to: string | undefined;
    for (const part of parts) {
      if (WORKING_LISTS.has(part.type)) continue;
      counts[part.type] = (counts[part.type] ?? 0) + part.count;
      if (part.from && (!from || part.from < from)) from = part.from;
      if (part.to && (!to || part.to > to)) to = part.to;
    }
    // The image files themselves (a FHIR export describes them with Media resources, counted apart).
    counts['image-file'] = imageFiles;
    // Written last, when every file's checksum is known.
    zip.addReadStreamLazy('manifest.json', { ...entry, compress: true }, (callback) => {
      const manifest = {
        schemaVersion: EXPORT_SCHEMA_VERSION,
        generator: GENERATOR,
        tenant,
        exportId: id,
        format,
        ...(format === 'fhir' ? { fhirVersion: '4.0.1', outputFormat: 'application/fhir+ndjson' } : {}),
        createdAt: assembledAt.toISOString(),
        timeRange: { from: from ?? null, to: to ?? null },
        counts,
        files: [...manifestFiles].sort((a, b) => a.path.localeCompare(b.path)),
      };
      callback(null, Readable.from([Buffer.from(JSON.stringify(manifest, null, 2))]));
    });
    zip.end();
    const hash = createHash('sha256');
    let bytes = 0;
    const out = new PassThrough();
    zip.outputStream.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    zip.outputStream.on('error', (e: Error) => out.destroy(e));
    zip.outputStream.pipe(out);
    await container
      .getBlockBlobClient(archiveBlob(tenant, id))
      .uploadStream(out, ARCHIVE_BLOCK_BYTES, 2, { blobHTTPHeaders: { blobContentType: 'application/zip' } });
    // The parts stay until the archive is recorded (discardParts): a repeated attempt needs them.
    return { bytes, sha256: hash.digest('hex'), files: manifestFiles.length + 1, counts };
  }

  /** The images a shard part listed for packing, read line by line from its working blob. */
  async *#packedImages(blob: string): AsyncGenerator<PackedImage> {
    for await (const line of this.#lines(blob)) yield JSON.parse(line) as PackedImage;
  }

  /** A working blob's lines, streamed. */
  async *#lines(blob: string): AsyncGenerator<string> {
    const download = await this.#d.storage.blobService
      .getContainerClient(CONTAINERS.exports)
      .getBlobClient(blob)
      .download();
    const lines = createInterface({ input: download.readableStreamBody as NodeJS.ReadableStream, crlfDelay: Infinity });
    for await (const line of lines) if (line) yield line;
  }

  async complete(
    tenant: string,
    id: string,
    archive: { bytes: number; sha256: string } & Partial<ArchiveSummary>,
    meta: RequestMeta,
  ): Promise<ExportRecord> {
    const row = await this.#row(tenant, id);
    if (row.status === 'completed') return toRecord(row);
    const now = this.#clock();
    const next: ExportRow = {
      ...row,
      status: 'completed',
      completedAt: now.toISOString(),
      archiveBytes: archive.bytes,
      archiveSha256: archive.sha256,
      ...(archive.files !== undefined && archive.counts
        ? { archiveSummary: JSON.stringify({ files: archive.files, counts: archive.counts }) }
        : {}),
      deleteAt: new Date(now.getTime() + ARCHIVE_DAYS[row.purpose] * 24 * 3600 * 1000).toISOString(),
    };
    delete (next as Partial<ExportRow & { etag: string }>).etag;
    await this.#finish(
      tenant,
      row,
      next,
      this.#event('export.complete', 'E', id, meta, { bytes: archive.bytes, sha256: archive.sha256 }),
    );
    recordWorkflow('export', (now.getTime() - new Date(row.createdAt).getTime()) / 1000);
    this.#d.logger.log('info', 'export.completed', { tenant, exportId: id, bytes: archive.bytes });
    return toRecord(next);
  }

  async fail(tenant: string, id: string, reason: string, meta: RequestMeta): Promise<void> {
    const row = await this.#row(tenant, id);
    if (row.status === 'completed' || row.status === 'failed') return;
    this.#d.logger.log('error', 'export.failed', { tenant, exportId: id, cause: reason.slice(0, 200) });
    const next: ExportRow = {
      ...row,
      status: 'failed',
      completedAt: this.#clock().toISOString(),
      failure: reason.slice(0, 500),
    };
    delete (next as Partial<ExportRow & { etag: string }>).etag;
    await this.#finish(tenant, row, next, { ...this.#event('export.fail', 'E', id, meta), outcome: 'failure' });
  }

  /**
   * A read-only storage link for the requester only, valid `linkHours` (24 at most), audited. Not
   * for an operator under a staff grant (the route refuses): a storage link cannot be revoked before
   * its expiry, and an operator's download must end with the grant.
   */
  async downloadLink(
    tenant: string,
    id: string,
    requesterId: string,
    meta: RequestMeta,
  ): Promise<{ url: string; expiresAt: string } | undefined> {
    const row = await this.#row(tenant, id);
    if (row.status !== 'completed' || row.requestedBy !== requesterId) return undefined;
    const expiresOn = new Date(this.#clock().getTime() + this.#d.linkHours * 3600_000);
    const url = await blobSasUrl(this.#d.storage, {
      container: CONTAINERS.exports,
      blob: archiveBlob(tenant, id),
      permissions: 'r',
      expiresOn,
    });
    const expiresAt = expiresOn.toISOString();
    await this.#d.audit.record(tenant, tenantPartition(tenant, AREA), [
      this.#event('export.link', 'E', id, meta, { expiresAt }),
    ]);
    return { url, expiresAt };
  }

  /** The archive's bytes as a stream, for the requester (the route behind an operator's link). */
  async openArchive(
    tenant: string,
    id: string,
    requesterId: string,
    meta: RequestMeta,
  ): Promise<{ stream: NodeJS.ReadableStream; bytes: number; sha256: string }> {
    const row = await this.#row(tenant, id);
    if (row.status !== 'completed' || row.requestedBy !== requesterId || !row.archiveSha256)
      throw notFound('No such archive.');
    await this.#d.audit.record(tenant, tenantPartition(tenant, AREA), [this.#event('export.download', 'R', id, meta)]);
    const download = await this.#d.storage.blobService
      .getContainerClient(CONTAINERS.exports)
      .getBlobClient(archiveBlob(tenant, id))
      .download();
    return {
      stream: download.readableStreamBody as NodeJS.ReadableStream,
      bytes: row.archiveBytes ?? 0,
      sha256: row.archiveSha256,
    };
  }

  /** Deletes the working copies of the parts once the archive is recorded; only the archive stays. */
  async discardParts(tenant: string, id: string): Promise<number> {
    const container = this.#d.storage.blobService.getContainerClient(CONTAINERS.exports);
    let deleted = 0;
    for await (const blob of container.listBlobsFlat({ prefix: `${tenant}/${id}/parts/` })) {
      await container.getBlobClient(blob.name).deleteIfExists({ deleteSnapshots: 'include' });
      deleted++;
    }
    return deleted;
  }

  /** Deletes the archive once its retrieval period ends (the orchestration's timer calls this). */
  async deleteArchive(tenant: string, id: string, meta: RequestMeta): Promise<void> {
    const row = await this.#row(tenant, id);
    const container = this.#d.storage.blobService.getContainerClient(CONTAINERS.exports);
    for await (const blob of container.listBlobsFlat({ prefix: `${tenant}/${id}/` }))
      await container.getBlobClient(blob.name).deleteIfExists({ deleteSnapshots: 'include' });
    if (row.status === 'expired') return;
    const next: ExportRow = { ...row, status: 'expired' };
    delete (next as Partial<ExportRow & { etag: string }>).etag;
    await this.#d.audit.commit(
      tenant,
      row.partitionKey,
      () => [['update', next, 'Replace', { etag: (row as ExportRow & { etag: string }).etag }]],
      [this.#event('export.delete', 'D', id, meta)],
    );
  }

  async #finish(tenant: string, row: ExportRow, next: ExportRow, event: AuditEventInput): Promise<void> {
    await this.#d.audit.commit(
      tenant,
      row.partitionKey,
      async () => {
        const actions: TransactionAction[] = [
          ['update', next, 'Replace', { etag: (row as ExportRow & { etag: string }).etag }],
        ];
        try {
          const lock = await this.#d.table.getEntity<{ exportId: string }>(row.partitionKey, LOCK);
          if (lock.exportId === row.id) actions.push(['delete', { partitionKey: row.partitionKey, rowKey: LOCK }]);
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
        return actions;
      },
      [event],
    );
  }

  async #row(tenant: string, id: string): Promise<ExportRow> {
    if (!/^[0-9a-f]{24}$/.test(id)) throw notFound('No such export.');
    try {
      return await this.#d.table.getEntity<ExportRow>(tenantPartition(tenant, AREA), ROW(id));
    } catch (error) {
      if (isNotFound(error)) throw notFound('No such export.');
      throw error;
    }
  }

  /**
   * Who holds the tenant's export lock, or undefined when nobody does. The caller decides whether
   * the holder's run still goes (the durable runtime knows; this domain does not).
   */
  async lockHolder(tenant: string): Promise<ExportLockHolder | undefined> {
    const partitionKey = tenantPartition(tenant, AREA);
    let holder: string;
    try {
      holder = (await this.#d.table.getEntity<{ exportId: string }>(partitionKey, LOCK)).exportId;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    if (holder.startsWith(ERASURE_HOLDER)) return { kind: 'erasure', requestId: holder.slice(ERASURE_HOLDER.length) };
    // The lock and its export's row are created in one transaction: the row is there.
    const row = await this.#d.table.getEntity<ExportRow>(partitionKey, ROW(holder));
    return { kind: 'export', exportId: holder, createdAt: row.createdAt };
  }

  /**
   * Ends an export whose run stopped without finishing (its last step failed for good, or the host
   * stopped between recording the request and starting the run): `failed`, audited, and the lock
   * given back in the same transaction. Nothing when it finished, or another caller ended it, meanwhile.
   */
  async abandon(tenant: string, id: string, meta: RequestMeta): Promise<void> {
    try {
      await this.fail(tenant, id, 'its run ended without finishing', meta);
    } catch (error) {
      // The row changed since it was read (its ETag no longer matches): someone else ended it.
      if (!(error instanceof TransactionFailedError && error.failedIndex === 0)) throw error;
    }
  }

  /**
   * The tenant's export lock, held for a patient's erasure: no tenant-wide export starts while the
   * erasure runs, and the erasure does not begin while one runs (an archive finished after the
   * erasure could keep the patient's records). 'held' when this erasure has it (also again after a
   * crash), 'busy' while an export has it.
   */
  async holdForErasure(tenant: string, requestId: string): Promise<'held' | 'busy'> {
    const partitionKey = tenantPartition(tenant, AREA);
    const holder = `${ERASURE_HOLDER}${requestId}`;
    try {
      await this.#d.table.createEntity({ partitionKey, rowKey: LOCK, exportId: holder });
      return 'held';
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
    try {
      return (await this.#d.table.getEntity<{ exportId: string }>(partitionKey, LOCK)).exportId === holder
        ? 'held'
        : 'busy';
    } catch (error) {
      if (isNotFound(error)) return 'busy'; // released just now: the next attempt takes it
      throw error;
    }
  }

  /** Gives the lock back once the erasure has ended (or will not run); a no-op when it holds none. */
  async releaseForErasure(tenant: string, requestId: string): Promise<void> {
    const partitionKey = tenantPartition(tenant, AREA);
    try {
      const lock = await this.#d.table.getEntity<{ exportId: string }>(partitionKey, LOCK);
      if (lock.exportId === `${ERASURE_HOLDER}${requestId}`)
        await this.#d.table.deleteEntity(partitionKey, LOCK, { etag: lock.etag });
    } catch (error) {
      if (!isNotFound(error) && !isPreconditionFailed(error)) throw error;
    }
  }

  /**
   * The archives an erasure of this subject must take: the subject's own access exports, and every
   * tenant-wide archive still held (made before the erasure, it may hold the subject's records; the
   * tenant can export again). One partition per tenant, a handful of rows.
   */
  async archivesHoldingSubject(tenant: string, subjectRef: string): Promise<string[]> {
    const filter = odata`PartitionKey eq ${tenantPartition(tenant, AREA)} and RowKey ge ${'export~'} and RowKey lt ${'export~~'}`;
    const ids: string[] = [];
    for await (const row of this.#d.table.listEntities<ExportRow>({
      queryOptions: { filter, select: ['id', 'status', 'subjectRef'] },
    }))
      if (row.subjectRef === subjectRef || (!row.subjectRef && row.status === 'completed')) ids.push(row.id);
    return ids;
  }

  #event(
    event: string,
    action: AuditEventInput['action'],
    id: string,
    meta: RequestMeta,
    details?: AuditEventInput['details'],
  ): AuditEventInput {
    return auditEvent(event, action, { type: 'Export', id }, meta, {
      purpose: 'data-portability',
      ...(details ? { details } : {}),
    });
  }
}

const archiveBlob = (tenant: string, id: string) => `${tenant}/${id}/archive.zip`;
const imageArchivePath = (image: { imageId: string; contentType?: string }) =>
  `images/${image.imageId}.${image.contentType === 'image/png' ? 'png' : image.contentType === 'image/webp' ? 'webp' : 'jpg'}`;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function toRecord(row: ExportRow): ExportRecord {
  return {
    id: row.id,
    status: row.status,
    format: row.format,
    purpose: row.purpose,
    requestedBy: row.requestedBy,
    createdAt: row.createdAt,
    ...(row.completedAt ? { completedAt: row.completedAt } : {}),
    ...(row.archiveSha256
      ? {
          archive: {
            bytes: row.archiveBytes ?? 0,
            sha256: row.archiveSha256,
            deleteAt: row.deleteAt ?? '',
            ...(row.archiveSummary ? { summary: JSON.parse(row.archiveSummary) as ArchiveSummary } : {}),
          },
        }
      : {}),
  };
}

/** Writes NDJSON lines to one blob as a stream, counting and hashing as it goes. */
class PartWriter {
  readonly #stream = new PassThrough();
  readonly #upload: Promise<unknown>;
  readonly #hash = createHash('sha256');
  #count = 0;
  #bytes = 0;
  #from: string | undefined;
  #to: string | undefined;

  constructor(
    storage: StorageClients,
    readonly blob: string,
    readonly path: string,
    readonly type: string,
  ) {
    this.#upload = storage.blobService
      .getContainerClient(CONTAINERS.exports)
      .getBlockBlobClient(blob)
      .uploadStream(this.#stream, PART_BLOCK_BYTES, 2, {
        blobHTTPHeaders: { blobContentType: 'application/x-ndjson' },
      });
  }

  /** Waits when the upload falls behind, so memory stays bounded. */
  async write(record: unknown, at?: string): Promise<void> {
    const line = Buffer.from(JSON.stringify(record) + '\n');
    this.#hash.update(line);
    this.#bytes += line.length;
    this.#count++;
    if (at) {
      if (!this.#from || at < this.#from) this.#from = at;
      if (!this.#to || at > this.#to) this.#to = at;
    }
    if (!this.#stream.write(line)) await once(this.#stream, 'drain');
  }

  async close(): Promise<PartFile> {
    this.#stream.end();
    await this.#upload;
    return {
      path: this.path,
      blob: this.blob,
      type: this.type,
      count: this.#count,
      bytes: this.#bytes,
      sha256: this.#hash.digest('hex'),
      ...(this.#from ? { from: this.#from } : {}),
      ...(this.#to ? { to: this.#to } : {}),
    };
  }
}
