import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { unauthorized } from '../http/problem.js';
import { isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { shardOf, tenantPartition } from '../storage/keys.js';

/** Re-authentication after 24 h whatever happens, and after 1 h without a refresh (AAL2). */
export const SESSION_ABSOLUTE_MS = 24 * 60 * 60 * 1000;
export const SESSION_IDLE_MS = 60 * 60 * 1000;

type SessionRow = {
  partitionKey: string;
  rowKey: string;
  userId: string;
  current: string;
  currentHash: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  revokedAt?: string;
  revokeReason?: string;
};

const TOKEN = /^lvr_([a-z0-9-]{3,32})_([0-9a-f]{32})_([0-9a-f]{16})_([0-9a-f]{64})$/;
const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** A refresh token that was already used: the whole family has been revoked. */
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
}

/**
 * Refresh-token families. Each login starts a family; each refresh replaces its one live token
 * (under ETag concurrency) and hands out the next; presenting a replaced token revokes the family.
 */
export class SessionService {
  readonly #table: TableClient;
  readonly #clock: () => Date;

  constructor(table: TableClient, clock: () => Date = () => new Date()) {
    this.#table = table;
    this.#clock = clock;
  }

  static partition(realm: string, familyId: string): string {
    return tenantPartition(realm, 'sessions', shardOf(familyId));
  }

  async start(realm: string, userId: string): Promise<SessionRef & { refreshToken: string }> {
    const familyId = randomBytes(16).toString('hex');
    const tokenId = randomBytes(8).toString('hex');
    const refreshToken = `lvr_${realm}_${familyId}_${tokenId}_${randomBytes(32).toString('hex')}`;
    const now = this.#clock();
    await this.#table.createEntity<SessionRow>({
      partitionKey: SessionService.partition(realm, familyId),
      rowKey: `session~${familyId}`,
      userId,
      current: tokenId,
      currentHash: hashToken(refreshToken),
      createdAt: now.toISOString(),
      lastUsedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + SESSION_ABSOLUTE_MS).toISOString(),
    });
    return { realm, userId, familyId, refreshToken };
  }

  async rotate(refreshToken: string): Promise<SessionRef & { refreshToken: string }> {
    const match = TOKEN.exec(refreshToken);
    if (!match) throw unauthorized('The refresh token is invalid or expired.');
    const [, realm = '', familyId = '', tokenId = ''] = match;
    const row = await this.#row(realm, familyId);
    if (!row || row.revokedAt) throw unauthorized('The refresh token is invalid or expired.');
    const now = this.#clock();
    if (row.current !== tokenId) {
      await this.revoke(realm, familyId, 'replay');
      throw new RefreshReplayError(realm, row.userId, familyId);
    }
    const presented = Buffer.from(hashToken(refreshToken), 'hex');
    if (!timingSafeEqual(presented, Buffer.from(row.currentHash, 'hex'))) throw unauthorized('The refresh token is invalid or expired.');
    if (now.toISOString() >= row.expiresAt || now.getTime() - Date.parse(row.lastUsedAt) > SESSION_IDLE_MS) {
      await this.revoke(realm, familyId, 'expired');
      throw unauthorized('The session expired; log in again.');
    }
    const nextId = randomBytes(8).toString('hex');
    const next = `lvr_${realm}_${familyId}_${nextId}_${randomBytes(32).toString('hex')}`;
    try {
      await this.#table.updateEntity(
        { partitionKey: row.partitionKey, rowKey: row.rowKey, current: nextId, currentHash: hashToken(next), lastUsedAt: now.toISOString() },
        'Merge',
        { etag: row.etag },
      );
    } catch (error) {
      // Two refreshes with one token: the loser used a token that is no longer the live one.
      if (isPreconditionFailed(error)) {
        await this.revoke(realm, familyId, 'replay');
        throw new RefreshReplayError(realm, row.userId, familyId);
      }
      throw error;
    }
    return { realm, userId: row.userId, familyId, refreshToken: next };
  }

  async revoke(realm: string, familyId: string, reason: string): Promise<void> {
    try {
      await this.#table.updateEntity(
        { partitionKey: SessionService.partition(realm, familyId), rowKey: `session~${familyId}`, revokedAt: this.#clock().toISOString(), revokeReason: reason },
        'Merge',
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Whether access tokens of this family may still be used. */
  async isLive(realm: string, familyId: string, userId: string): Promise<boolean> {
    const row = await this.#row(realm, familyId);
    return row !== undefined && row.userId === userId && !row.revokedAt && this.#clock().toISOString() < row.expiresAt;
  }

  /** The user and family of a refresh token, when it has the right form (used by logout). */
  static parse(refreshToken: string): { realm: string; familyId: string } | undefined {
    const match = TOKEN.exec(refreshToken);
    return match ? { realm: match[1] ?? '', familyId: match[2] ?? '' } : undefined;
  }

  async #row(realm: string, familyId: string): Promise<(SessionRow & { etag: string }) | undefined> {
    try {
      return await this.#table.getEntity<SessionRow>(SessionService.partition(realm, familyId), `session~${familyId}`);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }
}
