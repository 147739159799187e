import { createHash } from 'node:crypto';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import { isNotFound } from '../storage/errors.js';
import { KeyedQueue } from '../storage/keyed-queue.js';
import { padSeq, streamOf, tenantPartitionRange } from '../storage/keys.js';
import { TABLE_LIMITS } from '../storage/errors.js';
import { submitTransaction, TransactionFailedError } from '../storage/transaction.js';
import type { AuditAnchors } from './anchors.js';
import {
  AUDIT_HEAD_ROW as HEAD_ROW,
  type AuditEntry,
  type AuditEventInput,
  type ChainBreak,
  type VerifyResult,
} from './types.js';
const ENTRY_PREFIX = 'audit~';
const ENTRY_FROM = 'audit~0';
const ENTRY_TO = 'audit~:'; // ':' sorts right after '9'
const MAX_COMMIT_ATTEMPTS = 40;
/** Entries per transaction when only entries are written: 99 rows and the stream's head. */
const MAX_EVENTS_PER_COMMIT = 99;

interface Head {
  seq: number;
  hash: string;
  /** When the stream's last entry was written: entries of a stream never go back in time. */
  at?: string;
  etag: string | undefined;
}

type EntryRow = {
  partitionKey: string;
  rowKey: string;
  tenant: string;
  seq: number;
  at: string;
  prevHash: string;
  hash: string;
  event: string;
  action: string;
  outcome: string;
  actorType: string;
  actorId: string;
  actorAddress?: string;
  entityType: string;
  entityId: string;
  patientRef?: string;
  purpose?: string;
  correlationId?: string;
  details?: string;
};

function genesisHash(tenant: string, stream: string): string {
  return createHash('sha256').update(`labvault-audit-genesis|${tenant}|${stream}`).digest('hex');
}

/** The hash covers every field of the entry in a fixed order, plus the previous entry's hash. */
function entryHash(row: Omit<EntryRow, 'partitionKey' | 'rowKey' | 'hash'> & { stream: string }): string {
  const canonical = JSON.stringify([
    1,
    row.tenant,
    row.stream,
    row.seq,
    row.at,
    row.event,
    row.action,
    row.outcome,
    row.actorType,
    row.actorId,
    row.actorAddress ?? null,
    row.entityType,
    row.entityId,
    row.patientRef ?? null,
    row.purpose ?? null,
    row.correlationId ?? null,
    row.details ?? null,
  ]);
  return createHash('sha256').update(row.prevHash).update('\n').update(canonical).digest('hex');
}

function toEntry(tenant: string, row: EntryRow): AuditEntry {
  return {
    tenant,
    stream: streamOf(tenant, row.partitionKey),
    seq: row.seq,
    at: row.at,
    prevHash: row.prevHash,
    hash: row.hash,
    event: row.event,
    action: row.action as AuditEntry['action'],
    outcome: row.outcome as AuditEntry['outcome'],
    actor: {
      type: row.actorType as AuditEntry['actor']['type'],
      id: row.actorId,
      ...(row.actorAddress ? { address: row.actorAddress } : {}),
    },
    entity: { type: row.entityType, id: row.entityId },
    ...(row.patientRef ? { patientRef: row.patientRef } : {}),
    ...(row.purpose ? { purpose: row.purpose } : {}),
    ...(row.correlationId ? { correlationId: row.correlationId } : {}),
    ...(row.details ? { details: JSON.parse(row.details) as AuditEntry['details'] } : {}),
  };
}

export interface CommitResult {
  entries: AuditEntry[];
  /** ETags of the domain actions' entities, in order (undefined where the service sent none). */
  domainEtags: (string | undefined)[];
}

export interface AuditQuery {
  from?: string;
  to?: string;
  actor?: string;
  event?: string;
  /** An action code: C, R, U, D or E. */
  action?: string;
  entity?: string;
}

/** Where an entry sits in the tenant's log: the listing's order, and where a next page resumes. */
export interface AuditPosition {
  at: string;
  stream: string;
  seq: number;
}

function comparePositions(a: AuditPosition, b: AuditPosition): number {
  return a.at < b.at ? -1 : a.at > b.at ? 1 : a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : a.seq - b.seq;
}

interface StreamCursor {
  stream: string;
  pages: AsyncIterator<EntryRow[]>;
  buffer: AuditEntry[];
  done: boolean;
}

/** Reads the cursor's next page (skipping what an earlier page showed); false once the stream has nothing more. */
async function fill(cursor: StreamCursor, tenant: string, after: AuditPosition | undefined): Promise<boolean> {
  while (cursor.buffer.length === 0 && !cursor.done) {
    const page = await cursor.pages.next();
    if (page.done) {
      cursor.done = true;
      break;
    }
    for (const row of page.value) {
      const entry = toEntry(tenant, row);
      if (!after || comparePositions(entry, after) > 0) cursor.buffer.push(entry);
    }
  }
  return cursor.buffer.length > 0;
}

/** A commit waiting for its partition's turn (see `AuditLog.commit`). */
interface PendingCommit {
  tenant: string;
  buildActions: () => TransactionAction[] | Promise<TransactionAction[]>;
  events: readonly AuditEventInput[];
  resolve: (result: CommitResult) => void;
  reject: (reason: unknown) => void;
}

/** Commits at most in one group: small transactions keep a failure's retry cheap. */
const MAX_GROUP = 8;

export interface AuditLogOptions {
  clock?: () => Date;
  /** Where the chains' heads are anchored in write-once storage; verification checks them. */
  anchors?: AuditAnchors;
}

/**
 * The tenant's append-only, hash-chained audit log.
 *
 * Entries live in the same partition as the rows whose change they record, and are committed in the
 * same entity-group transaction, so a change and its audit record can never be separated. Each
 * partition therefore carries its own chain (a "stream", with a head row updated under ETag
 * concurrency); a tenant's log is the union of its streams, ordered by time.
 */
export class AuditLog {
  readonly #table: TableClient;
  readonly #clock: () => Date;
  readonly #anchors: AuditAnchors | undefined;
  readonly #heads = new Map<string, Head>();
  readonly #queue = new KeyedQueue();
  /** Commits waiting for their partition's turn, in arrival order. */
  readonly #waiting = new Map<string, PendingCommit[]>();

  constructor(dependencies: { table: TableClient } & AuditLogOptions) {
    this.#table = dependencies.table;
    this.#clock = dependencies.clock ?? (() => new Date());
    this.#anchors = dependencies.anchors;
  }

  /**
   * Commits `domainActions` (all in `partitionKey`) together with audit entries for `events`, in
   * one transaction. `buildActions` is called again when the chain head moved under us.
   * A conflict in a domain action is rethrown as TransactionFailedError with its index (in the
   * caller's own actions).
   *
   * Commits to one partition run one at a time in this process (its chain head is one row); those
   * that arrive while one is in flight go together in the next transaction (a group commit), each
   * with its own entries in arrival order, as long as they fit in one (at most 100 rows, 4 MiB). A
   * group costs one round trip instead of one per commit, and a commit no longer waits for each one
   * queued before it. A member whose own action fails is answered with its failure; the others are
   * retried without it.
   */
  commit(
    tenant: string,
    partitionKey: string,
    buildActions: () => TransactionAction[] | Promise<TransactionAction[]>,
    events: readonly AuditEventInput[],
  ): Promise<CommitResult> {
    return new Promise<CommitResult>((resolve, reject) => {
      const waiting = this.#waiting.get(partitionKey);
      const pending: PendingCommit = { tenant, buildActions, events, resolve, reject };
      if (waiting) waiting.push(pending);
      else this.#waiting.set(partitionKey, [pending]);
      // One turn per commit: a turn whose commit an earlier group took finds less (or nothing) to do.
      // `#flush` answers every commit it takes, failures included, and never rejects itself.
      void this.#queue.run(partitionKey, () => this.#flush(partitionKey)).catch(() => undefined);
    });
  }

  /** Commits the partition's waiting commits, as many as fit in one transaction, until each is answered. */
  async #flush(partitionKey: string): Promise<void> {
    const waiting = this.#waiting.get(partitionKey);
    if (!waiting || waiting.length === 0) return;
    try {
      await this.#commitGroup(partitionKey, waiting);
    } catch (error) {
      // Not expected (every failure above answers its members); never leave a caller waiting.
      for (const member of waiting.slice(0, MAX_GROUP)) this.#settle(waiting, member, () => member.reject(error));
    } finally {
      if (waiting.length === 0 && this.#waiting.get(partitionKey) === waiting) this.#waiting.delete(partitionKey);
    }
  }

  async #commitGroup(partitionKey: string, waiting: PendingCommit[]): Promise<void> {
    let group: PendingCommit[] = [];
    for (let attempt = 1; ; attempt++) {
      // Build every member's actions (again, on a retry) and take as many as fit, in arrival order.
      const built: { member: PendingCommit; actions: TransactionAction[] }[] = [];
      let rowCount = 1; // the head
      const rowKeys = new Set<string>();
      const candidates = group.length > 0 ? group : waiting.slice(0, MAX_GROUP);
      for (const member of candidates) {
        let actions: TransactionAction[];
        try {
          actions = await member.buildActions();
        } catch (error) {
          this.#settle(waiting, member, () => member.reject(error));
          continue;
        }
        const rows = actions.length + member.events.length;
        if (built.length > 0 && rowCount + rows > TABLE_LIMITS.actionsPerTransaction) break;
        // A row may appear once per transaction (two retries of one request touch the same rows):
        // such a commit waits for the next turn, where it meets the first one's result.
        const keys = actions.map((a) => a[1].rowKey);
        if (built.length > 0 && keys.some((k) => rowKeys.has(k))) continue;
        for (const k of keys) rowKeys.add(k);
        rowCount += rows;
        built.push({ member, actions });
      }
      group = built.map((b) => b.member);
      if (group.length === 0) return;

      const head = await this.#head(partitionKey).catch((error: unknown) => {
        for (const member of group) this.#settle(waiting, member, () => member.reject(error));
        return undefined;
      });
      if (!head) return;
      const tenant = group[0]?.tenant ?? '';
      const stream = streamOf(tenant, partitionKey);
      // Within a stream, time never goes backwards (the listing merges streams by time, page by page).
      const now = this.#clock().toISOString();
      const at = head.at !== undefined && head.at > now ? head.at : now;
      let prev = head.hash;
      let seq = head.seq;
      const actions: TransactionAction[] = [];
      const parts = built.map(({ member, actions: domainActions }) => {
        const firstAction = actions.length;
        actions.push(...domainActions);
        const rows: EntryRow[] = [];
        for (const event of member.events) {
          seq += 1;
          const row = toRow(tenant, partitionKey, seq, at, prev, event, stream);
          rows.push(row);
          prev = row.hash;
        }
        actions.push(...rows.map((r): TransactionAction => ['create', r]));
        return { member, firstAction, domainCount: domainActions.length, rows };
      });
      const headEntity = { partitionKey, rowKey: HEAD_ROW, seq, hash: prev, updatedAt: at };
      actions.push(
        head.etag === undefined ? ['create', headEntity] : ['update', headEntity, 'Replace', { etag: head.etag }],
      );
      const answer = (etagOf: (i: number) => string | undefined) => {
        for (const part of parts)
          this.#settle(waiting, part.member, () =>
            part.member.resolve({
              entries: part.rows.map((r) => toEntry(tenant, r)),
              domainEtags: Array.from({ length: part.domainCount }, (_, i) => etagOf(part.firstAction + i)),
            }),
          );
      };
      try {
        const response = await submitTransaction(this.#table, actions);
        const headEtag = response.subResponses[actions.length - 1]?.etag;
        if (headEtag) this.#heads.set(partitionKey, { seq, hash: prev, at, etag: headEtag });
        else this.#heads.delete(partitionKey);
        answer((i) => response.subResponses[i]?.etag);
        return;
      } catch (error) {
        this.#heads.delete(partitionKey);
        // The answer may have been lost after the transaction was applied (the SDK's retry then
        // meets its own rows): if this attempt's last entry is stored, the commit happened.
        const last = parts.flatMap((p) => p.rows).at(-1);
        if (last && (await this.#landed(partitionKey, last.rowKey, last.hash))) {
          answer(() => undefined);
          return;
        }
        const failAll = (reason: unknown) => {
          for (const member of group) this.#settle(waiting, member, () => member.reject(reason));
        };
        if (!(error instanceof TransactionFailedError)) return failAll(error);
        const culprit =
          error.failedIndex === undefined
            ? undefined
            : parts.find(
                (p) =>
                  error.failedIndex !== undefined &&
                  error.failedIndex >= p.firstAction &&
                  error.failedIndex < p.firstAction + p.domainCount,
              );
        if (culprit) {
          // One member's own action failed: answer it, retry the others without it.
          const local = (error.failedIndex ?? 0) - culprit.firstAction;
          this.#settle(waiting, culprit.member, () =>
            culprit.member.reject(new TransactionFailedError(error.statusCode, local, { cause: error.cause })),
          );
          group = group.filter((m) => m !== culprit.member);
          if (group.length === 0) return;
          continue;
        }
        if (error.failedIndex === undefined) {
          if (group.length > 1) {
            // Unknown culprit among several: try them one by one.
            group = group.slice(0, 1);
            continue;
          }
          // Unknown culprit: retry only if the head really moved; otherwise it was a domain conflict.
          const fresh = await this.#head(partitionKey).catch(() => head);
          if (fresh.seq === head.seq && fresh.hash === head.hash) return failAll(error);
        }
        if (attempt >= MAX_COMMIT_ATTEMPTS) return failAll(error);
        // Another instance appended to this stream: back off a little, with jitter, and retry.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 * attempt)));
      }
    }
  }

  /** Takes a commit off the partition's waiting list and answers it (once). */
  #settle(waiting: PendingCommit[], member: PendingCommit, answer: () => void): void {
    const index = waiting.indexOf(member);
    if (index < 0) return;
    waiting.splice(index, 1);
    answer();
  }

  /** Whether an entry with this row key and hash is stored (its hash is unique to one attempt). */
  async #landed(partitionKey: string, rowKey: string, hash: string): Promise<boolean> {
    try {
      return (await this.#table.getEntity<{ hash: string }>(partitionKey, rowKey)).hash === hash;
    } catch {
      return false;
    }
  }

  /**
   * Audits events that change nothing else (reads, failed attempts). Many events (the reads of a
   * page of 200 orders) go in transactions of at most 99 entries and the head: Azure's limit is 100.
   */
  async record(tenant: string, partitionKey: string, events: readonly AuditEventInput[]): Promise<AuditEntry[]> {
    const entries: AuditEntry[] = [];
    for (let i = 0; i < events.length; i += MAX_EVENTS_PER_COMMIT) {
      entries.push(
        ...(await this.commit(tenant, partitionKey, () => [], events.slice(i, i + MAX_EVENTS_PER_COMMIT))).entries,
      );
    }
    return entries;
  }

  /**
   * Entries of one tenant matching the query, oldest first (by time, then stream, then position).
   * Each stream is read from a server-side query of its own partition and the streams are merged
   * as they are read (a k-way merge): memory holds at most one page per stream, whatever the log's
   * size. `after` resumes behind an entry an earlier page ended with.
   */
  async *list(
    tenant: string,
    query: AuditQuery = {},
    options: { after?: AuditPosition; pageSize?: number } = {},
  ): AsyncGenerator<AuditEntry> {
    const pageSize = options.pageSize ?? 100;
    const after = options.after;
    const from = after && (!query.from || after.at > query.from) ? after.at : query.from;
    const cursors: StreamCursor[] = [];
    for (const partitionKey of await this.#streams(tenant)) {
      let filter = odata`PartitionKey eq ${partitionKey} and RowKey ge ${ENTRY_FROM} and RowKey lt ${ENTRY_TO}`;
      if (from) filter += ' and ' + odata`at ge ${from}`;
      if (query.to) filter += ' and ' + odata`at lt ${query.to}`;
      if (query.actor) filter += ' and ' + odata`actorId eq ${query.actor}`;
      if (query.event) filter += ' and ' + odata`event eq ${query.event}`;
      if (query.action) filter += ' and ' + odata`action eq ${query.action}`;
      if (query.entity) filter += ' and ' + odata`entityId eq ${query.entity}`;
      const pages = this.#table
        .listEntities<EntryRow>({ queryOptions: { filter } })
        .byPage({ maxPageSize: pageSize })
        [Symbol.asyncIterator]();
      const cursor: StreamCursor = { stream: streamOf(tenant, partitionKey), pages, buffer: [], done: false };
      if (await fill(cursor, tenant, after)) cursors.push(cursor);
    }
    for (;;) {
      let best: StreamCursor | undefined;
      for (const c of cursors)
        if (
          c.buffer.length > 0 &&
          (!best || comparePositions(c.buffer[0] as AuditEntry, best.buffer[0] as AuditEntry) < 0)
        )
          best = c;
      if (!best) return;
      const entry = best.buffer.shift() as AuditEntry;
      if (best.buffer.length === 0) await fill(best, tenant, after);
      yield entry;
    }
  }

  /** The tenant's streams: the partitions with an audit head. */
  async #streams(tenant: string): Promise<string[]> {
    const { from, to } = tenantPartitionRange(tenant);
    const partitions: string[] = [];
    const filter = odata`PartitionKey ge ${from} and PartitionKey lt ${to} and RowKey eq ${HEAD_ROW}`;
    for await (const row of this.#table.listEntities({ queryOptions: { filter, select: ['PartitionKey'] } }))
      partitions.push(row.partitionKey as string);
    return partitions;
  }

  /** The audit entry a raw row holds (for the tenant's export, which scans partitions once); else undefined. */
  entryOfRow(tenant: string, row: Record<string, unknown>): AuditEntry | undefined {
    const rowKey = row.rowKey;
    if (typeof rowKey !== 'string' || rowKey < ENTRY_FROM || rowKey >= ENTRY_TO) return undefined;
    return toEntry(tenant, row as unknown as EntryRow);
  }

  /** Every entry of the tenant's streams written in [from, to) (the anomaly scan's windows). */
  async *entriesBetween(tenant: string, from: string, to: string): AsyncGenerator<AuditEntry> {
    const range = tenantPartitionRange(tenant);
    const filter = odata`PartitionKey ge ${range.from} and PartitionKey lt ${range.to} and RowKey ge ${ENTRY_FROM} and RowKey lt ${ENTRY_TO} and at ge ${from} and at lt ${to}`;
    for await (const row of this.#table.listEntities<EntryRow>({ queryOptions: { filter } }))
      yield toEntry(tenant, row);
  }

  /** Every entry of the tenant's streams about one data subject (by its keyed pseudonym). */
  async *entriesAbout(tenant: string, patientRef: string): AsyncGenerator<AuditEntry> {
    const { from, to } = tenantPartitionRange(tenant);
    const filter = odata`PartitionKey ge ${from} and PartitionKey lt ${to} and RowKey ge ${ENTRY_FROM} and RowKey lt ${ENTRY_TO} and patientRef eq ${patientRef}`;
    for await (const row of this.#table.listEntities<EntryRow>({ queryOptions: { filter } }))
      yield toEntry(tenant, row);
  }

  /** Every entry of the tenant's streams outside the partitions starting `{tenant}~{area}~`. */
  async *entriesOutside(tenant: string, area: string): AsyncGenerator<AuditEntry> {
    const { from, to } = tenantPartitionRange(tenant);
    const excluded = { from: `${tenant}~${area}~`, to: `${tenant}~${area}~~` };
    for (const range of [
      { from, to: excluded.from },
      { from: excluded.to, to },
    ]) {
      const filter = odata`PartitionKey ge ${range.from} and PartitionKey lt ${range.to} and RowKey ge ${ENTRY_FROM} and RowKey lt ${ENTRY_TO}`;
      for await (const row of this.#table.listEntities<EntryRow>({ queryOptions: { filter } }))
        yield toEntry(tenant, row);
    }
  }

  /**
   * Walks every stream of the tenant in sequence order and reports the first entry whose hash,
   * predecessor or position is wrong, or a head that does not match the last entry; then, where
   * anchors are kept, an entry whose hash differs from one anchored for it, or an anchored entry
   * that is gone (a chain rewritten or cut after it was anchored).
   */
  async verify(tenant: string): Promise<VerifyResult> {
    const anchored = this.#anchors ? await this.#anchors.read(tenant) : undefined;
    /** Anchored positions not met yet: `stream seq`. */
    const unmet = new Set<string>();
    for (const [stream, seqs] of anchored?.points ?? []) for (const seq of seqs.keys()) unmet.add(`${stream} ${seq}`);
    const { from, to } = tenantPartitionRange(tenant);
    const filter = odata`PartitionKey ge ${from} and PartitionKey lt ${to} and RowKey ge ${ENTRY_FROM} and RowKey le ${HEAD_ROW}`;
    let entries = 0;
    let streams = 0;
    let current: { partition: string; stream: string; seq: number; hash: string } | undefined;
    let firstBrokenAt: ChainBreak | undefined;
    const broken = (b: ChainBreak): void => {
      firstBrokenAt ??= b;
    };
    const finishWithoutHead = (): void => {
      if (current) broken({ stream: current.stream, seq: current.seq, reason: 'missing-head' });
    };

    for await (const row of this.#table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
      const partition = row.partitionKey as string;
      if (current?.partition !== partition) {
        finishWithoutHead();
        const stream = streamOf(tenant, partition);
        current = { partition, stream, seq: 0, hash: genesisHash(tenant, stream) };
        streams += 1;
      }
      if (row.rowKey === HEAD_ROW) {
        if (row.seq !== current.seq || row.hash !== current.hash) {
          broken({ stream: current.stream, seq: current.seq + 1, reason: 'head-mismatch' });
        }
        current = undefined;
        continue;
      }
      if (!(row.rowKey as string).startsWith(ENTRY_PREFIX)) continue;
      const entry = row as unknown as EntryRow;
      entries += 1;
      const expectedSeq = current.seq + 1;
      if (entry.seq !== expectedSeq || entry.rowKey !== ENTRY_PREFIX + padSeq(expectedSeq)) {
        broken({ stream: current.stream, seq: expectedSeq, reason: 'sequence-gap' });
      } else if (entry.prevHash !== current.hash) {
        broken({ stream: current.stream, seq: expectedSeq, reason: 'previous-hash-mismatch' });
      } else if (entryHash({ ...entry, stream: current.stream }) !== entry.hash) {
        broken({ stream: current.stream, seq: expectedSeq, reason: 'hash-mismatch' });
      }
      const anchoredHashes = anchored?.points.get(current.stream)?.get(entry.seq);
      if (anchoredHashes) {
        unmet.delete(`${current.stream} ${entry.seq}`);
        if ([...anchoredHashes].some((hash) => hash !== entry.hash))
          broken({ stream: current.stream, seq: entry.seq, reason: 'anchor-mismatch' });
      }
      // Continue from what the row claims, so one break is reported once, at its first entry.
      current.seq = typeof entry.seq === 'number' ? entry.seq : expectedSeq;
      current.hash = entry.hash;
    }
    finishWithoutHead();
    for (const position of unmet) {
      const split = position.lastIndexOf(' ');
      broken({
        stream: position.slice(0, split),
        seq: Number(position.slice(split + 1)),
        reason: 'anchored-entry-missing',
      });
    }
    return {
      valid: firstBrokenAt === undefined,
      entries,
      streams,
      ...(firstBrokenAt ? { firstBrokenAt } : {}),
      ...(anchored
        ? {
            anchors: {
              lines: anchored.lines,
              positions: [...anchored.points.values()].reduce((n, seqs) => n + seqs.size, 0),
              ...(anchored.lastAt ? { lastAnchoredAt: anchored.lastAt } : {}),
              ...(anchored.unreadable > 0 ? { unreadableLines: anchored.unreadable } : {}),
            },
          }
        : {}),
    };
  }

  async #head(partitionKey: string): Promise<Head> {
    const cached = this.#heads.get(partitionKey);
    if (cached) return cached;
    try {
      const row = await this.#table.getEntity<{ seq: number; hash: string; updatedAt?: string }>(
        partitionKey,
        HEAD_ROW,
      );
      const head: Head = {
        seq: row.seq,
        hash: row.hash,
        etag: row.etag,
        ...(row.updatedAt ? { at: row.updatedAt } : {}),
      };
      this.#heads.set(partitionKey, head);
      return head;
    } catch (error) {
      if (!isNotFound(error)) throw error;
      // A stream's first entry: the chain starts from the genesis hash.
      const [tenant, ...rest] = partitionKey.split('~');
      return { seq: 0, hash: genesisHash(tenant ?? '', rest.join('~')), etag: undefined };
    }
  }
}

function toRow(
  tenant: string,
  partitionKey: string,
  seq: number,
  at: string,
  prevHash: string,
  event: AuditEventInput,
  stream: string,
): EntryRow {
  const base = {
    tenant,
    seq,
    at,
    prevHash,
    event: event.event,
    action: event.action,
    outcome: event.outcome,
    actorType: event.actor.type,
    actorId: event.actor.id,
    ...(event.actor.address ? { actorAddress: event.actor.address } : {}),
    entityType: event.entity.type,
    entityId: event.entity.id,
    ...(event.patientRef ? { patientRef: event.patientRef } : {}),
    ...(event.purpose ? { purpose: event.purpose } : {}),
    ...(event.correlationId ? { correlationId: event.correlationId } : {}),
    ...(event.details ? { details: JSON.stringify(event.details) } : {}),
  };
  return { partitionKey, rowKey: ENTRY_PREFIX + padSeq(seq), ...base, hash: entryHash({ ...base, stream }) };
}
