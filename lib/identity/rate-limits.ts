import { createHash, randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { landedAlready } from '../storage/conditional-writes.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { KeyedQueue } from '../storage/keyed-queue.js';
import { shardOf } from '../storage/keys.js';

/** At most `limit` calls per principal in each window of `windowSeconds`. */
export interface RateLimit {
  /** The budget's name (one per expensive route). */
  name: string;
  limit: number;
  windowSeconds: number;
}

export type RateVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

const ATTEMPTS = 20;

/**
 * Per-principal budgets for expensive routes, counted in Azure Tables (fixed windows, ETag
 * concurrency), so they hold across instances. A counter that keeps changing under us refuses the
 * call (429): a limiter must not let a crowd through because it is busy.
 */
export class RateLimiter {
  readonly #table: TableClient;
  readonly #clock: () => Date;
  readonly #queue = new KeyedQueue();

  constructor(dependencies: { table: TableClient; clock?: () => Date }) {
    this.#table = dependencies.table;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async take(principal: string, rule: RateLimit): Promise<RateVerdict> {
    const now = this.#clock().getTime();
    const windowMs = rule.windowSeconds * 1000;
    const window = Math.floor(now / windowMs);
    const ref = createHash('sha256').update(principal).digest('hex').slice(0, 32);
    const partitionKey = `ratelimit~${shardOf(ref)}`;
    const rowKey = `${rule.name}~${ref}~${window}`;
    const retryAfterSeconds = Math.max(1, Math.ceil(((window + 1) * windowMs - now) / 1000));
    return this.#queue.run(`${partitionKey}|${rowKey}`, async () => {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        let row: { count: number; etag: string } | undefined;
        try {
          row = await this.#table.getEntity<{ count: number }>(partitionKey, rowKey);
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
        if ((row?.count ?? 0) >= rule.limit) return { allowed: false, retryAfterSeconds };
        const next = {
          partitionKey,
          rowKey,
          count: (row?.count ?? 0) + 1,
          expiresAt: new Date((window + 1) * windowMs).toISOString(),
          // This increment's own id: a write whose answer was lost is not counted a second time.
          writeId: randomBytes(12).toString('hex'),
        };
        try {
          if (row) await this.#table.updateEntity(next, 'Replace', { etag: row.etag });
          else await this.#table.createEntity(next);
          return { allowed: true };
        } catch (error) {
          if (await landedAlready(this.#table, next, error)) return { allowed: true };
          if (!isPreconditionFailed(error) && !isConflict(error)) throw error;
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 5 * 2 ** attempt)));
        }
      }
      return { allowed: false, retryAfterSeconds: 1 };
    });
  }
}

/** The budgets of LabVault's expensive routes. */
export const RATE_LIMITS = {
  auditList: { name: 'audit-list', limit: 120, windowSeconds: 60 },
  auditVerify: { name: 'audit-verify', limit: 10, windowSeconds: 60 },
  exportStart: { name: 'export-start', limit: 10, windowSeconds: 3600 },
  passwordReset: { name: 'password-reset', limit: 20, windowSeconds: 3600 },
  /** Subject searches and requests scan the tenant's partitions: enough for a busy lab, not for harvesting. */
  subjectRequests: { name: 'subject-requests', limit: 120, windowSeconds: 3600 },
} as const satisfies Record<string, RateLimit>;
