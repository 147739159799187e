import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TableClient, TransactionAction } from '@azure/data-tables';
import { createDecryptStream, createEncryptStream } from '../crypto/chunked.js';
import type { SecretStore } from '../crypto/secret-store.js';
import { conflict, DomainError, notFound } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { StorageClients } from '../storage/clients.js';
import type { ErasureRecord } from '../subjects/subject-requests.js';
import { isConflict, isPreconditionFailed } from '../storage/errors.js';

const BACKUP_CONTAINER = 'backups';
/** The nightly backup's timer (NCRONTAB, UTC): 01:30 every day. */
export const BACKUP_SCHEDULE = '0 30 1 * * *';
const BACKUP_KEY = 'backup-key';

export interface TableBackup {
  table: string;
  entities: number;
  /** SHA-256 of the NDJSON (plaintext) and of the stored ciphertext. */
  sha256: string;
  encryptedSha256: string;
  bytes: number;
}

export interface BackupSummary {
  backupId: string;
  createdAt: string;
  tables: number;
  entities: number;
  lastDrill: { at: string; kind: RestoreDrill['kind']; passed: boolean } | null;
}

/** What a restore drill found: each table read back and counted, or why it could not be. */
export interface RestoreDrill {
  backupId: string;
  /** `verification`: read back without a target (console, API); `restore`: into an empty account (admin CLI). */
  kind: 'verification' | 'restore';
  at: string;
  passed: boolean;
  durationMs: number;
  tables: { table: string; entities: number; verified: boolean; reason?: string }[];
}

export interface BackupManifest {
  backupId: string;
  createdAt: string;
  format: 'ndjson+aes256gcm-chunked';
  tables: TableBackup[];
}

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

/**
 * Erasure records beside the backups: `erasures/{tenant}/{requestId}.json.enc` for a completed
 * erasure, `…/{requestId}.failed-{time}.json.enc` for each run that failed after it began.
 */
const ERASURES = 'erasures/';
const FAILED_RUN = '.failed-';
/** A completed erasure's record is named by its request; a failed run's by the request and the time. */
const erasureRecordName = (record: ErasureRecord) =>
  record.outcome === 'failed'
    ? `${record.requestId}${FAILED_RUN}${record.erasedAt.replace(/[^0-9]/g, '')}.json.enc`
    : `${record.requestId}.json.enc`;

/**
 * Table backups (Azure has no point-in-time restore for tables): each table streamed as NDJSON,
 * encrypted with the platform's backup key in authenticated chunks and checksummed, into the
 * `backups` container (WORM in production) with a manifest. Tenant data inside stays encrypted
 * with the tenant's own keys, so a crypto-shredded tenant stays unreadable in every old backup.
 */
export interface BackupServiceDependencies {
  storage: StorageClients;
  secrets: SecretStore;
  logger: Logger;
  clock?: () => Date;
}

export class BackupService {
  readonly #storage: StorageClients;
  readonly #secrets: SecretStore;
  readonly #logger: Logger;
  readonly #clock: () => Date;

  constructor(dependencies: BackupServiceDependencies) {
    this.#storage = dependencies.storage;
    this.#secrets = dependencies.secrets;
    this.#logger = dependencies.logger;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  newBackupId(): string {
    return `${this.#clock().toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(4).toString('hex')}`;
  }

  async tables(): Promise<string[]> {
    const names: string[] = [];
    for await (const t of this.#storage.tableService.listTables()) if (t.name) names.push(t.name);
    return names.sort();
  }

  async #key(version?: string): Promise<{ version: string; key: Buffer }> {
    let secret = await this.#secrets.get(BACKUP_KEY, version);
    if (!secret && !version) {
      await this.#secrets.set(BACKUP_KEY, randomBytes(32).toString('base64'));
      secret = await this.#secrets.get(BACKUP_KEY);
    }
    if (!secret) throw notFound('The backup key of this backup is not available.');
    return { version: secret.version, key: Buffer.from(secret.value, 'base64') };
  }

  /** One table to `backups/{id}/{table}.ndjson.enc`; overwrites, so a retried step is harmless. */
  async backupTable(backupId: string, table: string): Promise<TableBackup> {
    const key = await this.#key();
    const plain = new PassThrough();
    const encrypt = createEncryptStream(key.key, key.version, { tenant: 'platform', record: backupId, field: table });
    const plainHash = createHash('sha256');
    const cipherHash = createHash('sha256');
    let bytes = 0;
    encrypt.on('data', (c: Buffer) => {
      cipherHash.update(c);
      bytes += c.length;
    });
    const tap = new PassThrough();
    const upload = this.#storage.blobService
      .getContainerClient(BACKUP_CONTAINER)
      .getBlockBlobClient(`${backupId}/${table}.ndjson.enc`)
      .uploadStream(tap, 4 * 1024 * 1024, 2);
    const done = pipeline(plain, encrypt, tap);
    let entities = 0;
    for await (const entity of this.#storage.table(table).listEntities<Entity>()) {
      const { etag: _etag, timestamp: _timestamp, ...data } = entity as Entity & { etag?: string; timestamp?: string };
      const line = Buffer.from(JSON.stringify(data) + '\n');
      plainHash.update(line);
      entities++;
      if (!plain.write(line)) await once(plain, 'drain');
    }
    plain.end();
    await done;
    await upload;
    this.#logger.log('info', 'backup.progress', { backupId, table, entities, bytes });
    return { table, entities, sha256: plainHash.digest('hex'), encryptedSha256: cipherHash.digest('hex'), bytes };
  }

  async writeManifest(backupId: string, tables: TableBackup[]): Promise<BackupManifest> {
    const manifest: BackupManifest = {
      backupId,
      createdAt: this.#clock().toISOString(),
      format: 'ndjson+aes256gcm-chunked',
      tables,
    };
    const text = JSON.stringify(manifest, null, 2);
    await this.#storage.blobService
      .getContainerClient(BACKUP_CONTAINER)
      .getBlockBlobClient(`${backupId}/manifest.json`)
      .upload(text, Buffer.byteLength(text));
    this.#logger.log('info', 'backup.completed', {
      backupId,
      tables: tables.length,
      entities: tables.reduce((n, t) => n + t.entities, 0),
    });
    return manifest;
  }

  /** Every backup with a manifest (finished ones), newest first, with its last restore drill. */
  async list(): Promise<BackupSummary[]> {
    const container = this.#storage.blobService.getContainerClient(BACKUP_CONTAINER);
    const manifests: string[] = [];
    const drills = new Map<string, string[]>();
    for await (const blob of container.listBlobsFlat()) {
      const [backupId, second] = blob.name.split('/');
      if (!backupId) continue;
      if (second === 'manifest.json') manifests.push(backupId);
      if (second === 'drills') drills.set(backupId, [...(drills.get(backupId) ?? []), blob.name]);
    }
    const out: BackupSummary[] = [];
    for (const backupId of manifests) {
      const manifest = await this.manifest(backupId);
      const drill = await this.#lastDrill(backupId, drills.get(backupId) ?? []);
      out.push({
        backupId: manifest.backupId,
        createdAt: manifest.createdAt,
        tables: manifest.tables.length,
        entities: manifest.tables.reduce((n, t) => n + t.entities, 0),
        lastDrill: drill && { at: drill.at, kind: drill.kind, passed: drill.passed },
      });
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /**
   * Deletes a backup's blobs (runs only after a second operator approved it). In production the
   * container's time-based immutability policy refuses this until the retention period ends.
   */
  async delete(backupId: string): Promise<{ blobs: number }> {
    await this.manifest(backupId);
    const container = this.#storage.blobService.getContainerClient(BACKUP_CONTAINER);
    let blobs = 0;
    for await (const blob of container.listBlobsFlat({ prefix: `${backupId}/` })) {
      await container.getBlobClient(blob.name).deleteIfExists({ deleteSnapshots: 'include' });
      blobs++;
    }
    return { blobs };
  }

  /**
   * Keeps an erasure beside the backups, write-once like them (the `backups` container is WORM in
   * production) and encrypted like them with the backup key, bound to its name: a backup taken
   * before it still holds the erased rows, and a restore of it applies the erasure again
   * (`erasuresToReapply`), so a restore never brings an erased patient's records back. A completed
   * erasure is written once per request (a repeated certificate step finds it there); each failed
   * run once more, under its time. Only that time is readable, as metadata, so a restore picks its
   * records without decrypting the others.
   */
  async recordErasure(record: ErasureRecord): Promise<void> {
    const name = `${ERASURES}${record.tenant}/${erasureRecordName(record)}`;
    const sealed = await this.#seal(Buffer.from(JSON.stringify(record)), { record: 'erasures', field: name });
    try {
      await this.#storage.blobService
        .getContainerClient(BACKUP_CONTAINER)
        .getBlockBlobClient(name)
        .upload(sealed, sealed.length, {
          conditions: { ifNoneMatch: '*' },
          metadata: { erasedat: record.erasedAt },
        });
    } catch (error) {
      if (!isConflict(error) && !isPreconditionFailed(error)) throw error; // recorded already
    }
  }

  /** How many completed erasures are kept beside the backups: of one tenant, or of every tenant. */
  async erasuresRecorded(tenant?: string): Promise<number> {
    const container = this.#storage.blobService.getContainerClient(BACKUP_CONTAINER);
    let count = 0;
    for await (const blob of container.listBlobsFlat({
      prefix: `${ERASURES}${tenant === undefined ? '' : `${tenant}/`}`,
    }))
      if (!blob.name.includes(FAILED_RUN)) count++;
    return count;
  }

  /**
   * The erasures a restore of this backup must apply again, oldest first: those completed since the
   * backup began. Its id carries the day it began (its manifest only when it ended, and an erasure
   * finishing meanwhile may or may not be in the tables), so every erasure from that day on:
   * applying one again that the backup already reflects deletes nothing.
   */
  async erasuresToReapply(backupId: string): Promise<ErasureRecord[]> {
    await this.manifest(backupId);
    const since = `${backupId.slice(0, 4)}-${backupId.slice(4, 6)}-${backupId.slice(6, 8)}T00:00:00.000Z`;
    const container = this.#storage.blobService.getContainerClient(BACKUP_CONTAINER);
    const records: ErasureRecord[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: ERASURES, includeMetadata: true })) {
      if ((blob.metadata?.erasedat ?? '') < since) continue;
      const sealed = await container.getBlobClient(blob.name).downloadToBuffer();
      records.push(
        JSON.parse(
          (await this.#open(sealed, { record: 'erasures', field: blob.name })).toString('utf8'),
        ) as ErasureRecord,
      );
    }
    return records.sort((a, b) => a.erasedAt.localeCompare(b.erasedAt));
  }

  /** Encrypts what fits in memory with the backup key, bound to what it is (`record`, `field`). */
  async #seal(plain: Buffer, binding: { record: string; field: string }): Promise<Buffer> {
    const key = await this.#key();
    const chunks: Buffer[] = [];
    const encrypt = createEncryptStream(key.key, key.version, { tenant: 'platform', ...binding });
    encrypt.on('data', (c: Buffer) => chunks.push(c));
    await pipeline(new PassThrough().end(plain), encrypt);
    return Buffer.concat(chunks);
  }

  /** Decrypts what `#seal` or a table's backup wrote, with the backup key version it names. */
  async #open(sealed: Buffer, binding: { record: string; field: string }): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const decrypt = createDecryptStream(async (version) => (await this.#key(version)).key, {
      tenant: 'platform',
      ...binding,
    });
    decrypt.on('data', (c: Buffer) => chunks.push(c));
    await pipeline(new PassThrough().end(sealed), decrypt);
    return Buffer.concat(chunks);
  }

  async manifest(backupId: string): Promise<BackupManifest> {
    try {
      const buffer = await this.#storage.blobService
        .getContainerClient(BACKUP_CONTAINER)
        .getBlobClient(`${backupId}/manifest.json`)
        .downloadToBuffer();
      return JSON.parse(buffer.toString('utf8')) as BackupManifest;
    } catch {
      throw notFound('No such backup.');
    }
  }

  /**
   * Reads one table of a backup as a restore would: both checksums checked (the stored ciphertext,
   * then the NDJSON after decryption with the backup key from the secret store), every line parsed.
   */
  async #readTable(backupId: string, entry: TableBackup): Promise<Entity[]> {
    const blob = this.#storage.blobService
      .getContainerClient(BACKUP_CONTAINER)
      .getBlobClient(`${backupId}/${entry.table}.ndjson.enc`);
    const encrypted = await blob.downloadToBuffer();
    if (createHash('sha256').update(encrypted).digest('hex') !== entry.encryptedSha256)
      throw conflict(`The backup of ${entry.table} does not match its checksum.`);
    const plain = await this.#open(encrypted, { record: backupId, field: entry.table });
    if (createHash('sha256').update(plain).digest('hex') !== entry.sha256)
      throw conflict(`The content of ${entry.table} does not match its checksum.`);
    return plain
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Entity);
  }

  /**
   * Restores a backup into `target` (an empty account), verifying both checksums of every table
   * before its first entity is written. The outcome is recorded as a restore drill.
   */
  async restore(backupId: string, target: StorageClients): Promise<RestoreDrill> {
    const manifest = await this.manifest(backupId);
    const started = Date.now();
    const tables: RestoreDrill['tables'] = [];
    for (const entry of manifest.tables) {
      const client = target.table(entry.table);
      await target.tableService.createTable(entry.table);
      for await (const _ of client.listEntities({ queryOptions: { select: ['PartitionKey'] } }))
        throw conflict(`The target table ${entry.table} is not empty.`);
      const entities = await this.#readTable(backupId, entry);
      await writeBatches(client, entities);
      tables.push({ table: entry.table, entities: entities.length, verified: entities.length === entry.entities });
    }
    return this.#recordDrill(backupId, 'restore', started, tables);
  }

  /**
   * The restore drill an operator starts from the console or the API: every table read back as a
   * restore reads it (ciphertext checksum, decryption with the current backup key, plaintext
   * checksum, every entity parsed and counted against the manifest), without a target account to
   * write to. A backup that fails is a drill that found something: recorded with its reason, not thrown.
   */
  async drill(backupId: string, options: { signal?: AbortSignal } = {}): Promise<RestoreDrill> {
    const manifest = await this.manifest(backupId);
    const started = Date.now();
    const tables: RestoreDrill['tables'] = [];
    for (const entry of manifest.tables) {
      options.signal?.throwIfAborted();
      try {
        const entities = await this.#readTable(backupId, entry);
        tables.push({ table: entry.table, entities: entities.length, verified: entities.length === entry.entities });
      } catch (error) {
        if (options.signal?.aborted) throw error;
        // Our own words only: a storage or cipher error's message may carry URLs or internals.
        const reason =
          error instanceof DomainError ? error.detail : 'The backup of this table could not be read or decrypted.';
        tables.push({ table: entry.table, entities: 0, verified: false, reason });
      }
    }
    return this.#recordDrill(backupId, 'verification', started, tables);
  }

  /** Drills are kept beside the backup (new blobs: allowed under the container's WORM policy). */
  async #recordDrill(
    backupId: string,
    kind: RestoreDrill['kind'],
    started: number,
    tables: RestoreDrill['tables'],
  ): Promise<RestoreDrill> {
    const at = this.#clock().toISOString();
    const drill: RestoreDrill = {
      backupId,
      kind,
      at,
      passed: tables.every((t) => t.verified),
      durationMs: Date.now() - started,
      tables,
    };
    const text = JSON.stringify(drill, null, 2);
    await this.#storage.blobService
      .getContainerClient(BACKUP_CONTAINER)
      .getBlockBlobClient(`${backupId}/drills/${at.replaceAll(':', '')}-${randomBytes(3).toString('hex')}.json`)
      .upload(text, Buffer.byteLength(text));
    this.#logger.log(drill.passed ? 'info' : 'warn', 'backup.drill', { backupId, kind, passed: drill.passed });
    return drill;
  }

  async #lastDrill(backupId: string, names: string[]): Promise<RestoreDrill | null> {
    const latest = names.sort().at(-1);
    if (!latest) return null;
    const buffer = await this.#storage.blobService
      .getContainerClient(BACKUP_CONTAINER)
      .getBlobClient(latest)
      .downloadToBuffer();
    const drill = JSON.parse(buffer.toString('utf8')) as RestoreDrill;
    return drill.backupId === backupId ? drill : null;
  }
}

/** Entity-group transactions of up to 100 entities of one partition, as Azure allows. */
async function writeBatches(client: TableClient, entities: Entity[]): Promise<void> {
  const byPartition = new Map<string, Entity[]>();
  for (const e of entities) {
    const list = byPartition.get(e.partitionKey) ?? [];
    list.push(e);
    byPartition.set(e.partitionKey, list);
  }
  const partitions = [...byPartition.values()];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < partitions.length; i = next++) {
        const rows = partitions[i] ?? [];
        for (let j = 0; j < rows.length; j += 100) {
          await client.submitTransaction(
            rows.slice(j, j + 100).map((e): TransactionAction => ['upsert', e, 'Replace']),
          );
        }
      }
    }),
  );
}
