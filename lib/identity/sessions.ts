import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { unauthenticated } from '../errors.js';
import { landedAlready } from '../storage/conditional-writes.js';
import { isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { shardOf, tenantPartition } from '../storage/keys.js';

/** Re-authentication after 24 h whatever happens, and after 1 h without a refresh (AAL2). */
const SESSION_ABSOLUTE_MS = 24 * 60 * 60 * 1000;
const SESSION_IDLE_MS = 60 * 60 * 1000;

type SessionRow = {
  partitionKey: string;
  rowKey: string;
  userId: string;
  /** SHA-256 of the one refresh token of this family that may be used next. */
  currentHash: string;
  /** SHA-256 of the refresh tokens of this family already used (newest last): presenting one is a replay. */
  usedHashes?: string;
  /** The account's credential epoch when the session started: a later credential change ends it. */
  epoch?: number;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  revokedAt?: string;
  revokeReason?: string;
};

export type Session = SessionRow & { etag: string };

const TOKEN = /^lvr_([a-z0-9-]{3,32})_([0-9a-f]{32})_([0-9a-f]{16})_([0-9a-f]{64})$/;
const hashToken = (token: string): Buffer => createHash('sha256').update(token).digest();
/** Used tokens remembered per family: a replay of any of them is recognised. */
const USED_TOKENS_KEPT = 64;

/** A refresh token that was issued and used already: the whole family has been revoked. */
export class RefreshReplayError extends Error {
  override name = 'RefreshReplayError';
  constructor(
    readonly realm: string,
    readonly userId: string,
    readonly familyId: string,
  ) {
    super('refresh token replayed');
  }
}

export interface SessionRef {
  realm: string;
  userId: string;
  familyId: string;
  epoch: number;
}

/** True when `presented` equals one of `hashes` (hex), compared in constant time for each. */
function matchesAny(presented: Buffer, hashes: readonly string[]): boolean {
  let found = false;
  for (const hash of hashes) {
    const candidate = Buffer.from(hash, 'hex');
    if (candidate.length === presented.length && timingSafeEqual(candidate, presented)) found = true;
  }
  return found;
}

/**
 * Refresh-token families. Each login starts a family; each refresh replaces its one live token
 * (under ETag concurrency) and hands out the next. A presented token is compared, in constant time,
 * with the live one and with those already used before anything is decided: only a token that was
 * really issued and used already revokes the family (a replay); a forged one changes nothing.
 */
export class SessionService {
  readonly #table: TableClient;
  readonly #clock: () => Date;

  constructor(dependencies: { table: TableClient; clock?: () => Date }) {
    this.#table = dependencies.table;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  static partition(realm: string, familyId: string): string {
    return tenantPartition(realm, 'sessions', shardOf(familyId));
  }

  async start(realm: string, userId: string, epoch: number): Promise<SessionRef & { refreshToken: string }> {
    const familyId = randomBytes(16).toString('hex');
    const refreshToken = newToken(realm, familyId);
    const now = this.#clock();
    await this.#table.createEntity<SessionRow>({
      partitionKey: SessionService.partition(realm, familyId),
      rowKey: `session~${familyId}`,
      userId,
      currentHash: hashToken(refreshToken).toString('hex'),
      epoch,
      createdAt: now.toISOString(),
      lastUsedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + SESSION_ABSOLUTE_MS).toISOString(),
    });
    return { realm, userId, familyId, epoch, refreshToken };
  }

  async rotate(refreshToken: string): Promise<SessionRef & { refreshToken: string }> {
    const invalid = () => unauthenticated('The refresh token is invalid or expired.');
    const match = TOKEN.exec(refreshToken);
    if (!match) throw invalid();
    const [, realm = '', familyId = ''] = match;
    const row = await this.row(realm, familyId);
    const presented = hashToken(refreshToken);
    // Nothing is decided on the family id alone: the secret is checked first.
    const isCurrent = row !== undefined && matchesAny(presented, [row.currentHash]);
    const wasUsed = row !== undefined && matchesAny(presented, JSON.parse(row.usedHashes ?? '[]') as string[]);
    if (!row || (!isCurrent && !wasUsed)) throw invalid();
    if (row.revokedAt) throw invalid();
    if (wasUsed) {
      await this.revoke(realm, familyId, 'replay');
      throw new RefreshReplayError(realm, row.userId, familyId);
    }
    const now = this.#clock();
    if (now.toISOString() >= row.expiresAt || now.getTime() - Date.parse(row.lastUsedAt) > SESSION_IDLE_MS) {
      await this.revoke(realm, familyId, 'expired');
      throw unauthenticated('The session expired; log in again.');
    }
    const next = newToken(realm, familyId);
    const used = [...(JSON.parse(row.usedHashes ?? '[]') as string[]), row.currentHash].slice(-USED_TOKENS_KEPT);
    const session = { realm, userId: row.userId, familyId, epoch: row.epoch ?? 0, refreshToken: next };
    const rotated = {
      partitionKey: row.partitionKey,
      rowKey: row.rowKey,
      currentHash: hashToken(next).toString('hex'),
      usedHashes: JSON.stringify(used),
      lastUsedAt: now.toISOString(),
    };
    try {
      await this.#table.updateEntity(rotated, 'Merge', { etag: row.etag });
    } catch (error) {
      // The new token's hash is unique: stored, it is this rotation's own write whose answer was lost.
      if (await landedAlready(this.#table, rotated, error)) return session;
      // Two refreshes with one real token: the loser used a token that is no longer the live one.
      if (isPreconditionFailed(error)) {
        await this.revoke(realm, familyId, 'replay');
        throw new RefreshReplayError(realm, row.userId, familyId);
      }
      throw error;
    }
    return session;
  }

  async revoke(realm: string, familyId: string, reason: string): Promise<void> {
    try {
      await this.#table.updateEntity(
        {
          partitionKey: SessionService.partition(realm, familyId),
          rowKey: `session~${familyId}`,
          revokedAt: this.#clock().toISOString(),
          revokeReason: reason,
        },
        'Merge',
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Moves this session to the account's new credential epoch (the session that made the change goes on). */
  async carryOver(realm: string, familyId: string, epoch: number): Promise<void> {
    await this.#table.updateEntity(
      { partitionKey: SessionService.partition(realm, familyId), rowKey: `session~${familyId}`, epoch },
      'Merge',
    );
  }

  /** Whether access tokens of this family may still be used by this account at this credential epoch. */
  isLive(session: Session | undefined, userId: string, epoch: number): boolean {
    return (
      session !== undefined &&
      session.userId === userId &&
      !session.revokedAt &&
      (session.epoch ?? 0) === epoch &&
      this.#clock().toISOString() < session.expiresAt
    );
  }

  /** The realm and family of a refresh token, when it has the right form (used by logout). */
  static parse(refreshToken: string): { realm: string; familyId: string } | undefined {
    const match = TOKEN.exec(refreshToken);
    return match ? { realm: match[1] ?? '', familyId: match[2] ?? '' } : undefined;
  }

  async row(realm: string, familyId: string): Promise<Session | undefined> {
    try {
      return await this.#table.getEntity<SessionRow>(SessionService.partition(realm, familyId), `session~${familyId}`);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }
}

function newToken(realm: string, familyId: string): string {
  return `lvr_${realm}_${familyId}_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('hex')}`;
}

/** Session lifetimes as the TOM report states them. */
export const SESSION_POLICY = {
  absoluteHours: SESSION_ABSOLUTE_MS / 3_600_000,
  idleHours: SESSION_IDLE_MS / 3_600_000,
} as const;
