import { odata, type TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import { isNotFound, statusOf } from '../storage/errors.js';
import { streamOf, tenantPartitionRange } from '../storage/keys.js';
import { AUDIT_HEAD_ROW } from './types.js';

/** What was anchored of one realm: every (stream, seq) → the hashes written for it, and when. */
export interface AnchoredHeads {
  points: Map<string, Map<number, Set<string>>>;
  lines: number;
  /** Lines that are not anchors (appended by someone else): counted, never trusted. */
  unreadable: number;
  lastAt?: string;
}

interface AnchorLine {
  v: 1;
  at: string;
  /** stream → [seq, hash] of its head at `at`. */
  heads: Record<string, [number, string]>;
}

const isAnchorLine = (value: unknown): value is AnchorLine => {
  if (typeof value !== 'object' || value === null) return false;
  const line = value as Partial<AnchorLine>;
  return (
    line.v === 1 &&
    typeof line.at === 'string' &&
    typeof line.heads === 'object' &&
    line.heads !== null &&
    Object.values(line.heads).every(
      (h) => Array.isArray(h) && Number.isInteger(h[0]) && typeof h[1] === 'string' && /^[0-9a-f]{64}$/.test(h[1]),
    )
  );
};

/**
 * Anchors of the audit chains in write-once storage.
 *
 * A chain's hashes show an entry changed by someone who cannot write the table again after it; but
 * whoever can write the table (an operator holding the storage key, a stolen deployment identity)
 * can change an entry and recompute every hash after it, and the chain verifies. So each run
 * appends the heads (sequence number and hash) of the realm's streams that moved since its last
 * anchor to an append blob in `audit-archive`, which production makes WORM: a time-based retention
 * policy with protected append writes, so lines can be added and none changed or removed, by anyone.
 * Verification checks the chain against every anchored head: a past rewritten after it was
 * anchored no longer leads to the hash anchored for it, and a forged line appended later cannot take
 * the earlier ones away. The lines hold stream names, sequence numbers and hashes: no tenant data.
 *
 * One blob per realm and month (`{realm}/{yyyy-mm}.ndjson`), so a verification reads a year's
 * anchors in twelve downloads.
 */
export class AuditAnchors {
  readonly #table: TableClient;
  readonly #container: ContainerClient;
  readonly #secondary: ContainerClient | undefined;
  readonly #clock: () => Date;
  /** Per realm, the seq last anchored per stream (this instance's knowledge; read once from storage). */
  readonly #anchored = new Map<string, Map<string, number>>();
  /** A realm's run in progress: calls meanwhile share it instead of appending the same heads again. */
  readonly #running = new Map<string, Promise<{ streams: number }>>();

  constructor(dependencies: {
    table: TableClient;
    container: ContainerClient;
    /** The same container at the read-access secondary: verification reads it while the primary is lost. */
    secondary?: ContainerClient;
    clock?: () => Date;
  }) {
    this.#table = dependencies.table;
    this.#container = dependencies.container;
    this.#secondary = dependencies.secondary;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  /**
   * Anchors each realm in turn (the hourly timer). A realm that fails does not keep the others
   * from their anchor: the run tries them all, then fails with every error (the next run retries).
   */
  async anchorAll(
    realms: readonly string[],
    options: { abortSignal?: AbortSignal } = {},
  ): Promise<{ realms: number; streams: number }> {
    let streams = 0;
    const failed: unknown[] = [];
    for (const realm of realms) {
      try {
        streams += (await this.anchor(realm, options)).streams;
      } catch (error) {
        failed.push(error);
      }
    }
    if (failed.length > 0) throw new AggregateError(failed, `anchoring failed for ${failed.length} realm(s)`);
    return { realms: realms.length, streams };
  }

  /** Appends the heads of the realm's streams that moved since they were last anchored; how many. */
  anchor(realm: string, options: { abortSignal?: AbortSignal } = {}): Promise<{ streams: number }> {
    const running = this.#running.get(realm);
    if (running) return running;
    const run = this.#anchorOnce(realm, options).finally(() => this.#running.delete(realm));
    this.#running.set(realm, run);
    return run;
  }

  async #anchorOnce(realm: string, options: { abortSignal?: AbortSignal }): Promise<{ streams: number }> {
    let last = this.#anchored.get(realm);
    if (!last) {
      last = new Map();
      for (const [stream, seqs] of (await this.read(realm, options)).points) last.set(stream, Math.max(...seqs.keys()));
      this.#anchored.set(realm, last);
    }
    const heads: AnchorLine['heads'] = {};
    const { from, to } = tenantPartitionRange(realm);
    const filter = odata`PartitionKey ge ${from} and PartitionKey lt ${to} and RowKey eq ${AUDIT_HEAD_ROW}`;
    for await (const row of this.#table.listEntities<{ seq: number; hash: string }>({
      queryOptions: { filter, select: ['PartitionKey', 'seq', 'hash'] },
      abortSignal: options.abortSignal,
    })) {
      const stream = streamOf(realm, row.partitionKey as string);
      if (row.seq > (last.get(stream) ?? 0)) heads[stream] = [row.seq, row.hash];
    }
    const streams = Object.keys(heads).length;
    if (streams === 0) return { streams };
    const at = this.#clock().toISOString();
    const line = `${JSON.stringify({ v: 1, at, heads } satisfies AnchorLine)}\n`;
    const blob = this.#container.getAppendBlobClient(`${realm}/${at.slice(0, 7)}.ndjson`);
    await blob.createIfNotExists({ abortSignal: options.abortSignal });
    await blob.appendBlock(line, Buffer.byteLength(line), { abortSignal: options.abortSignal });
    for (const [stream, [seq]] of Object.entries(heads)) last.set(stream, seq);
    return { streams };
  }

  /**
   * Every anchor of the realm, as verification checks them: from the primary, or, while it cannot
   * answer (no connection, 5xx), from the read-access secondary, which geo-replication keeps too.
   */
  async read(realm: string, options: { abortSignal?: AbortSignal } = {}): Promise<AnchoredHeads> {
    try {
      return await this.#readFrom(this.#container, realm, options);
    } catch (error) {
      const status = statusOf(error);
      if (!this.#secondary || (status !== undefined && status < 500)) throw error;
      return this.#readFrom(this.#secondary, realm, options);
    }
  }

  async #readFrom(
    container: ContainerClient,
    realm: string,
    options: { abortSignal?: AbortSignal },
  ): Promise<AnchoredHeads> {
    const result: AnchoredHeads = { points: new Map(), lines: 0, unreadable: 0 };
    for await (const item of container.listBlobsFlat({ prefix: `${realm}/`, abortSignal: options.abortSignal })) {
      let text: string;
      try {
        text = (await container.getBlobClient(item.name).downloadToBuffer(0, undefined, options)).toString('utf8');
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
      for (const raw of text.split('\n')) {
        if (raw === '') continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw);
        } catch {
          parsed = undefined;
        }
        if (!isAnchorLine(parsed)) {
          result.unreadable++;
          continue;
        }
        result.lines++;
        if (!result.lastAt || parsed.at > result.lastAt) result.lastAt = parsed.at;
        for (const [stream, [seq, hash]] of Object.entries(parsed.heads)) {
          const seqs = result.points.get(stream) ?? new Map<number, Set<string>>();
          result.points.set(stream, seqs);
          const hashes = seqs.get(seq) ?? new Set<string>();
          seqs.set(seq, hashes.add(hash));
        }
      }
    }
    return result;
  }
}
