import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import { exceedsGrantor, forbidden, notFound, unauthenticated } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { exceedingPermissions, type Grantor, type Permission, type Principal } from './permissions.js';
import { auditEvent } from '../audit/events.js';

export interface Integration {
  id: string;
  name: string;
  permissions: Permission[];
  createdAt: string;
  revokedAt?: string;
}

type IntegrationRow = {
  partitionKey: string;
  rowKey: string;
  name: string;
  permissions: string;
  keyHash: string;
  createdAt: string;
  revokedAt?: string;
};

const AREA = 'integrations';
const ROW = (id: string) => `integration~${id}`;
/** `lvk_{tenant}_{keyId}_{secret}`: the tenant and key id locate the row; only a hash is stored. */
const API_KEY = /^lvk_([a-z0-9-]{3,32})_([0-9a-f]{16})_([0-9a-f]{64})$/;

function hashKey(apiKey: string): Buffer {
  return createHash('sha256').update(apiKey).digest();
}

/**
 * How long an instance may answer a verified API key from memory. Not a setting: a revocation waits
 * this long before it answers (see `revoke`), so the admin CLI and every host must agree on it.
 */
export const API_KEY_CACHE_MS = 1000;
/** Verified keys held at most (the oldest go first); one entry per key in use, so rarely reached. */
const API_KEY_CACHE_ENTRIES = 10_000;

interface CachedKey {
  tenant: string;
  id: string;
  permissions: Permission[];
  /** `performance.now()` after which the entry is stale: the cache lifetime from when its read was sent. */
  staleAfter: number;
  /** A background read of the row is under way. */
  refreshing?: boolean;
}

/**
 * Integration API keys. Keys carry 256 random bits, so a plain SHA-256 is the right stored form
 * (a slow password hash would only slow every request down without adding safety).
 *
 * A verified key is answered from memory for at most `API_KEY_CACHE_MS` (a key's row was a second
 * storage round trip on every order). Revocation stays immediate for the person revoking: `revoke`
 * writes the revocation, then answers only once every entry any instance may have cached before
 * the write has gone stale. When the revoke call returns, the key fails on its next request on every
 * instance; between the write and the answer (one cache lifetime), an instance that verified the
 * key just before may still accept it. Failures are never cached (each is read and audited).
 */
export class IntegrationService {
  readonly #table: TableClient;
  readonly #audit: AuditLog;
  readonly #clock: () => Date;
  readonly #verified = new Map<string, CachedKey>();
  readonly #reads = new Map<
    string,
    Promise<{ row: (IntegrationRow & { etag: string }) | undefined; readSentAt: number }>
  >();
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(dependencies: {
    table: TableClient;
    audit: AuditLog;
    clock?: () => Date;
    /** How `revoke` waits out the cache lifetime (tests with a moved clock replace it). */
    sleep?: (ms: number) => Promise<void>;
  }) {
    this.#table = dependencies.table;
    this.#audit = dependencies.audit;
    this.#clock = dependencies.clock ?? (() => new Date());
    this.#sleep = dependencies.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * A new key with the given permissions. Through the API the grantor is a person who holds every one
   * of them (re-authenticated by the caller); a key never creates keys.
   */
  async create(
    tenant: string,
    name: string,
    permissions: Permission[],
    meta: RequestMeta,
    grantor?: Grantor,
  ): Promise<Integration & { apiKey: string }> {
    if (grantor) {
      if (grantor.kind === 'integration')
        throw forbidden('Integrations do not create API keys; a person with the permissions does.');
      const exceeding = exceedingPermissions(permissions, grantor.permissions);
      if (exceeding.length > 0) throw exceedsGrantor(exceeding);
    }
    const id = randomBytes(8).toString('hex');
    const apiKey = `lvk_${tenant}_${id}_${randomBytes(32).toString('hex')}`;
    const createdAt = this.#clock().toISOString();
    const partitionKey = tenantPartition(tenant, AREA);
    const row: IntegrationRow = {
      partitionKey,
      rowKey: ROW(id),
      name,
      permissions: JSON.stringify([...new Set(permissions)].sort()),
      keyHash: hashKey(apiKey).toString('hex'),
      createdAt,
    };
    await this.#audit.commit(tenant, partitionKey, () => [['create', row]], [
      auditEvent('integration.create', 'C', { type: 'Integration', id }, meta, {
        purpose: 'access-management',
        details: { permissions: row.permissions },
      }),
    ]);
    return { id, name, permissions: JSON.parse(row.permissions) as Permission[], createdAt, apiKey };
  }

  async revoke(tenant: string, id: string, meta: RequestMeta): Promise<void> {
    const partitionKey = tenantPartition(tenant, AREA);
    const row = await this.#row(tenant, id);
    if (!row || row.revokedAt) throw notFound('No such integration.');
    const etag = row.etag;
    const revoked = { partitionKey, rowKey: ROW(id), revokedAt: this.#clock().toISOString() };
    await this.#audit.commit(tenant, partitionKey, () => [['update', revoked, 'Merge', { etag }]], [
      auditEvent('integration.revoke', 'U', { type: 'Integration', id }, meta, { purpose: 'access-management' }),
    ]);
    for (const [hash, entry] of this.#verified)
      if (entry.tenant === tenant && entry.id === id) this.#verified.delete(hash);
    // Other instances (and hosts beside the admin CLI) may hold the key verified from a read sent
    // before the write above: answer once those entries have gone stale.
    await this.#sleep(API_KEY_CACHE_MS);
  }

  async list(tenant: string): Promise<Integration[]> {
    const partitionKey = tenantPartition(tenant, AREA);
    const result: Integration[] = [];
    // The partition also holds the integrations' audit stream: only integration rows.
    const filter = odata`PartitionKey eq ${partitionKey} and RowKey ge ${'integration~'} and RowKey lt ${'integration~~'}`;
    for await (const row of this.#table.listEntities<IntegrationRow>({ queryOptions: { filter } })) {
      result.push(toIntegration(row));
    }
    return result;
  }

  /** Resolves an `ApiKey` credential; every failure looks the same to the caller. */
  async authenticate(apiKey: string, logger: Logger, correlationId: string): Promise<Principal> {
    const match = API_KEY.exec(apiKey);
    if (!match) throw unauthenticated();
    const [, tenant = '', id = ''] = match;
    const presented = hashKey(apiKey);
    const cacheKey = presented.toString('base64');
    const cached = this.#verified.get(cacheKey);
    const now = performance.now();
    if (cached && now < cached.staleAfter) {
      // In its second half-life the entry is read again in the background (once), so steady traffic
      // never waits for the key's row; the refreshed entry's lifetime starts at its own read.
      if (now > cached.staleAfter - API_KEY_CACHE_MS / 2 && !cached.refreshing) {
        cached.refreshing = true;
        void this.#verify(tenant, id, presented)
          .then((verified) => {
            if (verified) this.#remember(cacheKey, tenant, id, verified.permissions, verified.readSentAt);
            else this.#verified.delete(cacheKey);
          })
          .catch(() => undefined); // it expires as it would have; the next request reads again
      }
      return integrationPrincipal(tenant, id, cached.permissions);
    }
    if (cached) this.#verified.delete(cacheKey);
    const { row, readSentAt } = await this.#sharedRead(tenant, id);
    const valid =
      row !== undefined && timingSafeEqual(Buffer.from(row.keyHash, 'hex'), presented) && row.revokedAt === undefined;
    if (!row || !valid) {
      logger.log('warn', 'auth.apikey.rejected', {
        correlationId,
        reason: !row ? 'unknown' : row.revokedAt ? 'revoked' : 'mismatch',
      });
      if (row) {
        await this.#audit.record(tenant, tenantPartition(tenant, 'security'), [
          auditEvent(
            'auth.apikey',
            'E',
            { type: 'Integration', id },
            { actor: { type: 'integration', id }, correlationId },
            {
              outcome: 'failure',
              purpose: 'authentication',
              details: { reason: row.revokedAt ? 'revoked' : 'mismatch' },
            },
          ),
        ]);
      }
      throw unauthenticated();
    }
    const permissions = JSON.parse(row.permissions) as Permission[];
    this.#remember(cacheKey, tenant, id, permissions, readSentAt);
    return integrationPrincipal(tenant, id, permissions);
  }

  #remember(cacheKey: string, tenant: string, id: string, permissions: Permission[], readSentAt: number): void {
    this.#verified.delete(cacheKey); // re-inserted last: the oldest entries go first when the map is full
    if (this.#verified.size >= API_KEY_CACHE_ENTRIES) {
      const oldest = this.#verified.keys().next().value;
      if (oldest !== undefined) this.#verified.delete(oldest);
    }
    this.#verified.set(cacheKey, { tenant, id, permissions, staleAfter: readSentAt + API_KEY_CACHE_MS });
  }

  /** The key's permissions when its row proves the presented key valid now; undefined otherwise. */
  async #verify(
    tenant: string,
    id: string,
    presented: Buffer,
  ): Promise<{ permissions: Permission[]; readSentAt: number } | undefined> {
    const { row, readSentAt } = await this.#sharedRead(tenant, id);
    if (!row || row.revokedAt !== undefined || !timingSafeEqual(Buffer.from(row.keyHash, 'hex'), presented))
      return undefined;
    return { permissions: JSON.parse(row.permissions) as Permission[], readSentAt };
  }

  /**
   * The key's row, one read for all who ask at once (when an entry expires under load, every request
   * in flight misses together); `readSentAt` is when the shared read was sent.
   */
  #sharedRead(
    tenant: string,
    id: string,
  ): Promise<{ row: (IntegrationRow & { etag: string }) | undefined; readSentAt: number }> {
    const key = `${tenant}/${id}`;
    const inFlight = this.#reads.get(key);
    if (inFlight) return inFlight;
    const readSentAt = performance.now();
    const read = this.#row(tenant, id)
      .then((row) => ({ row, readSentAt }))
      .finally(() => this.#reads.delete(key));
    this.#reads.set(key, read);
    return read;
  }

  async #row(tenant: string, id: string): Promise<(IntegrationRow & { etag: string }) | undefined> {
    try {
      return await this.#table.getEntity<IntegrationRow>(tenantPartition(tenant, AREA), ROW(id));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }
}

function integrationPrincipal(tenant: string, id: string, permissions: readonly Permission[]): Principal {
  return {
    kind: 'integration',
    realm: tenant,
    tenant,
    id,
    roles: [],
    permissions: new Set(permissions),
    operatorPermissions: new Set(),
    scope: 'full',
  };
}

function toIntegration(row: IntegrationRow): Integration {
  return {
    id: row.rowKey.slice('integration~'.length),
    name: row.name,
    permissions: JSON.parse(row.permissions) as Permission[],
    createdAt: row.createdAt,
    ...(row.revokedAt ? { revokedAt: row.revokedAt } : {}),
  };
}
