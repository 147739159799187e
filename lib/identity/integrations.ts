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
 * Integration API keys. Keys carry 256 random bits, so a plain SHA-256 is the right stored form
 * (a slow password hash would only slow every request down without adding safety).
 */
export class IntegrationService {
  readonly #table: TableClient;
  readonly #audit: AuditLog;
  readonly #clock: () => Date;

  constructor(dependencies: { table: TableClient; audit: AuditLog; clock?: () => Date }) {
    this.#table = dependencies.table;
    this.#audit = dependencies.audit;
    this.#clock = dependencies.clock ?? (() => new Date());
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
    // Read on every request, never cached: a revoked key must stop at once on every instance.
    const row = await this.#row(tenant, id);
    const presented = hashKey(apiKey);
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
    return {
      kind: 'integration',
      realm: tenant,
      tenant,
      id,
      roles: [],
      permissions: new Set(JSON.parse(row.permissions) as Permission[]),
      operatorPermissions: new Set(),
      scope: 'full',
    };
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

function toIntegration(row: IntegrationRow): Integration {
  return {
    id: row.rowKey.slice('integration~'.length),
    name: row.name,
    permissions: JSON.parse(row.permissions) as Permission[],
    createdAt: row.createdAt,
    ...(row.revokedAt ? { revokedAt: row.revokedAt } : {}),
  };
}
