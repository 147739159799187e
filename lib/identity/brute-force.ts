import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { landedAlready } from '../storage/conditional-writes.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { KeyedQueue } from '../storage/keyed-queue.js';
import { shardOf } from '../storage/keys.js';
import type { SecurityAlert, SecurityAlertService } from './security-alerts.js';

/** The limits of NIST SP 800-63B and the detection thresholds, in one place. */
export const BRUTE_FORCE_POLICY = {
  /** Consecutive failures after which an account is disabled until an admin unlocks it. */
  lockAfterFailures: 100,
  /** Failures that pass without delay; after them the wait doubles per failure. */
  freeFailures: 5,
  maxBackoffSeconds: 60,
  /** Attempts one source may make per window before 429. */
  sourceAttemptsPerWindow: 100,
  windowMs: 10 * 60 * 1000,
  /** Distinct accounts failing from one source in a window: password spraying. */
  sprayingAccounts: 10,
  /** Distinct sources failing on one account in a window: credential stuffing. */
  stuffingSources: 10,
} as const;

export type AttemptVerdict =
  | { allowed: true }
  | { allowed: false; retryAfterSeconds: number; reason: 'locked' | 'backoff' | 'source-throttled' | 'contention' };

type AccountRow = {
  partitionKey: string;
  rowKey: string;
  /** Consecutive failures, counting attempts reserved and not yet verified. */
  failures: number;
  lastFailureAt: string;
  lockedAt?: string;
  /** JSON [{s: sourceRef, at: iso}] of failures within the window. */
  recentSources: string;
  stuffingAlertedAt?: string;
};

type SourceRow = {
  partitionKey: string;
  rowKey: string;
  attempts: number;
  /** JSON array of distinct account refs that failed from this source in this window. */
  failedAccounts: string;
  sprayingAlerted: boolean;
};

interface Attempt {
  realm: string;
  username: string;
  source: string | undefined;
}

/** Read-modify-write attempts under ETag before an attempt is refused as contended (429, never 5xx). */
const MAX_WRITE_ATTEMPTS = 25;

class Contended extends Error {
  override name = 'Contended';
}

/**
 * Brute-force defence kept in Azure Tables (ETag concurrency), so it holds across instances:
 * per-account exponential backoff and lock after 100 consecutive failures, per-source throttling,
 * and detection of password spraying and credential stuffing. Accounts and sources are stored as
 * keyed pseudonyms, for unknown usernames as for real ones (no enumeration through throttling).
 *
 * An attempt is counted before its password is verified (reserve, then verify): concurrent wrong
 * passwords cannot all pass the check before any of them is counted. Writers of one row queue up
 * within this process, so only other instances race for its ETag.
 */
export class BruteForceGuard {
  readonly #table: TableClient;
  readonly #crypto: TenantCrypto;
  readonly #alerts: SecurityAlertService;
  readonly #clock: () => Date;
  readonly #queue = new KeyedQueue();

  constructor(dependencies: {
    table: TableClient;
    crypto: TenantCrypto;
    alerts: SecurityAlertService;
    clock?: () => Date;
  }) {
    this.#table = dependencies.table;
    this.#crypto = dependencies.crypto;
    this.#alerts = dependencies.alerts;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async accountRef(realm: string, username: string): Promise<string> {
    return this.#crypto.pseudonym(
      'platform',
      'login-account',
      `${realm}\u0000${username.normalize('NFKC').toLowerCase()}`,
    );
  }

  async sourceRef(source: string | undefined): Promise<string> {
    return this.#crypto.pseudonym('platform', 'login-source', source ?? 'unknown');
  }

  /**
   * Reserves one attempt: refuses it while the account is locked or backing off, or its source is
   * over its limit; otherwise counts it as a failure until `recordSuccess` says otherwise.
   */
  async reserve(attempt: Attempt): Promise<AttemptVerdict> {
    try {
      const now = this.#clock().getTime();
      const accountRef = await this.accountRef(attempt.realm, attempt.username);
      let verdict: AttemptVerdict = { allowed: true };
      await this.#update<AccountRow>(accountPartition(accountRef), accountRef, (row) => {
        if (row?.lockedAt) {
          verdict = { allowed: false, retryAfterSeconds: 3600, reason: 'locked' };
          return undefined;
        }
        if (row && row.failures >= BRUTE_FORCE_POLICY.freeFailures) {
          const wait =
            Math.min(2 ** (row.failures - BRUTE_FORCE_POLICY.freeFailures), BRUTE_FORCE_POLICY.maxBackoffSeconds) *
            1000;
          const until = Date.parse(row.lastFailureAt) + wait;
          if (until > now) {
            verdict = { allowed: false, retryAfterSeconds: Math.ceil((until - now) / 1000), reason: 'backoff' };
            return undefined;
          }
        }
        verdict = { allowed: true };
        return {
          failures: (row?.failures ?? 0) + 1,
          lastFailureAt: new Date(now).toISOString(),
          recentSources: row?.recentSources ?? '[]',
          ...(row?.stuffingAlertedAt ? { stuffingAlertedAt: row.stuffingAlertedAt } : {}),
        };
      });
      if (!verdict.allowed) return verdict;
      const sourceRef = await this.sourceRef(attempt.source);
      const window = Math.floor(now / BRUTE_FORCE_POLICY.windowMs);
      let attempts = 0;
      await this.#update<SourceRow>(sourcePartition(sourceRef), `${sourceRef}~${window}`, (row) => {
        attempts = (row?.attempts ?? 0) + 1;
        return {
          attempts,
          failedAccounts: row?.failedAccounts ?? '[]',
          sprayingAlerted: row?.sprayingAlerted ?? false,
        };
      });
      if (attempts > BRUTE_FORCE_POLICY.sourceAttemptsPerWindow) {
        const windowEnd = (window + 1) * BRUTE_FORCE_POLICY.windowMs;
        return { allowed: false, retryAfterSeconds: Math.ceil((windowEnd - now) / 1000), reason: 'source-throttled' };
      }
      return { allowed: true };
    } catch (error) {
      if (error instanceof Contended) return { allowed: false, retryAfterSeconds: 1, reason: 'contention' };
      throw error;
    }
  }

  /**
   * A verified failure (already counted by `reserve`): locks the account at the limit — exactly one
   * attempt makes that change, so a lock raises one alert — and raises spraying/stuffing alerts.
   */
  async recordFailure(attempt: Attempt): Promise<{ locked: boolean; alerts: SecurityAlert[] }> {
    const now = this.#clock();
    const nowIso = now.toISOString();
    const accountRef = await this.accountRef(attempt.realm, attempt.username);
    const sourceRef = await this.sourceRef(attempt.source);
    const alerts: SecurityAlert[] = [];
    let lockedNow = false;
    let locked = false;
    let stuffingSources = 0;
    let raiseStuffing = false;
    try {
      await this.#update<AccountRow>(accountPartition(accountRef), accountRef, (row) => {
        const failures = Math.max(row?.failures ?? 0, 1);
        const windowStart = now.getTime() - BRUTE_FORCE_POLICY.windowMs;
        const recent = (JSON.parse(row?.recentSources ?? '[]') as { s: string; at: string }[]).filter(
          (r) => Date.parse(r.at) >= windowStart && r.s !== sourceRef,
        );
        recent.push({ s: sourceRef, at: nowIso });
        const trimmed = recent.slice(-50);
        stuffingSources = trimmed.length;
        const alreadyAlerted = row?.stuffingAlertedAt !== undefined && Date.parse(row.stuffingAlertedAt) >= windowStart;
        raiseStuffing = stuffingSources >= BRUTE_FORCE_POLICY.stuffingSources && !alreadyAlerted;
        locked = row?.lockedAt !== undefined || failures >= BRUTE_FORCE_POLICY.lockAfterFailures;
        lockedNow = locked && row?.lockedAt === undefined;
        return {
          failures,
          lastFailureAt: row?.lastFailureAt ?? nowIso,
          recentSources: JSON.stringify(trimmed),
          ...(locked ? { lockedAt: row?.lockedAt ?? nowIso } : {}),
          ...(raiseStuffing
            ? { stuffingAlertedAt: nowIso }
            : row?.stuffingAlertedAt
              ? { stuffingAlertedAt: row.stuffingAlertedAt }
              : {}),
        };
      });
    } catch (error) {
      // The failure is counted already; only the detections of this one attempt are lost.
      if (!(error instanceof Contended)) throw error;
    }
    if (raiseStuffing) {
      alerts.push(
        await this.#alerts.raise({
          kind: 'credential-stuffing',
          realm: attempt.realm,
          accountRef,
          count: stuffingSources,
          summary: `${stuffingSources} sources failed to log in to one account within 10 minutes`,
        }),
      );
    }
    if (lockedNow) {
      alerts.push(
        await this.#alerts.raise({
          kind: 'account-locked',
          realm: attempt.realm,
          accountRef,
          count: BRUTE_FORCE_POLICY.lockAfterFailures,
          summary: 'account locked after consecutive failed logins',
        }),
      );
    }
    const window = Math.floor(now.getTime() / BRUTE_FORCE_POLICY.windowMs);
    let raiseSpraying = false;
    let sprayed = 0;
    try {
      await this.#update<SourceRow>(sourcePartition(sourceRef), `${sourceRef}~${window}`, (row) => {
        const accounts = new Set(JSON.parse(row?.failedAccounts ?? '[]') as string[]);
        if (accounts.size < 100) accounts.add(accountRef);
        sprayed = accounts.size;
        raiseSpraying = sprayed >= BRUTE_FORCE_POLICY.sprayingAccounts && !(row?.sprayingAlerted ?? false);
        return {
          attempts: row?.attempts ?? 1,
          failedAccounts: JSON.stringify([...accounts]),
          sprayingAlerted: (row?.sprayingAlerted ?? false) || raiseSpraying,
        };
      });
    } catch (error) {
      if (!(error instanceof Contended)) throw error;
    }
    if (raiseSpraying) {
      alerts.push(
        await this.#alerts.raise({
          kind: 'password-spraying',
          realm: attempt.realm,
          sourceRef,
          count: sprayed,
          summary: `one source failed to log in to ${sprayed} accounts within 10 minutes`,
        }),
      );
    }
    return { locked, alerts };
  }

  /** A successful login resets the account's counter (a lock stays until it is unlocked). */
  async recordSuccess(attempt: Pick<Attempt, 'realm' | 'username'>): Promise<void> {
    const accountRef = await this.accountRef(attempt.realm, attempt.username);
    try {
      await this.#update<AccountRow>(accountPartition(accountRef), accountRef, (row) => {
        if (!row || row.lockedAt || row.failures === 0) return undefined;
        return {
          failures: 0,
          lastFailureAt: row.lastFailureAt,
          recentSources: row.recentSources,
          ...(row.stuffingAlertedAt ? { stuffingAlertedAt: row.stuffingAlertedAt } : {}),
        };
      });
    } catch (error) {
      if (!(error instanceof Contended)) throw error;
    }
  }

  /** Whether the account is locked (after consecutive failures) until someone unlocks it. */
  async isLocked(realm: string, username: string): Promise<boolean> {
    const accountRef = await this.accountRef(realm, username);
    return (await this.#get<AccountRow>(accountPartition(accountRef), accountRef))?.lockedAt !== undefined;
  }

  /** Unlock (by an admin or another operator) and the effect of a password reset: the counter starts again. */
  async reset(realm: string, username: string): Promise<void> {
    const accountRef = await this.accountRef(realm, username);
    await this.#queue.run(`${accountPartition(accountRef)}|${accountRef}`, async () => {
      try {
        await this.#table.deleteEntity(accountPartition(accountRef), accountRef);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    });
  }

  async #get<T extends object>(partitionKey: string, rowKey: string): Promise<(T & { etag: string }) | undefined> {
    try {
      return (await this.#table.getEntity<T>(partitionKey, rowKey)) as T & { etag: string };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Read-modify-write under ETag, queued per row within this process and retried with jitter when
   * another instance wrote in between. `change` returns undefined to leave the row as it is.
   */
  async #update<T extends { partitionKey: string; rowKey: string }>(
    partitionKey: string,
    rowKey: string,
    change: (row: (T & { etag: string }) | undefined) => Omit<T, 'partitionKey' | 'rowKey'> | undefined,
  ): Promise<void> {
    await this.#queue.run(`${partitionKey}|${rowKey}`, async () => {
      for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
        const row = await this.#get<T>(partitionKey, rowKey);
        const changed = change(row);
        if (changed === undefined) return;
        // The change's own id: a write whose answer was lost is not applied (counted) a second time.
        const next = { partitionKey, rowKey, ...changed, writeId: randomBytes(12).toString('hex') };
        try {
          if (row) await this.#table.updateEntity(next, 'Replace', { etag: row.etag });
          else await this.#table.createEntity(next);
          return;
        } catch (error) {
          if (await landedAlready(this.#table, next, error)) return;
          if (!isPreconditionFailed(error) && !isConflict(error)) throw error;
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 5 * 2 ** attempt)));
        }
      }
      throw new Contended('the login counter kept changing under us');
    });
  }
}

const accountPartition = (ref: string): string => `throttle~account~${shardOf(ref)}`;
const sourcePartition = (ref: string): string => `throttle~source~${shardOf(ref)}`;
