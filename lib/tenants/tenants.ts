import type { TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import type { TenantKeyring } from '../crypto/keyring.js';
import { conflict } from '../errors.js';
import { isConflict, isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';
import { rowsAfter } from '../storage/pages.js';
import { TransactionFailedError } from '../storage/transaction.js';
import { auditEvent } from '../audit/events.js';

export interface Tenant {
  id: string;
  name: string;
  status: 'active';
  createdAt: string;
}

const DIRECTORY_PARTITION = 'tenant';
const PROFILE_AREA = 'profile';
/** How long a creation holds the tenant id before a later one may finish it (it takes seconds). */
const CREATION_CLAIM_MS = 60_000;

/**
 * The tenant directory (platform table, one row per tenant) and each tenant's profile row in its
 * own partition of the tenant data table, with the creation audited in the tenant's log.
 */
export class TenantService {
  readonly #platform: TableClient;
  readonly #tenantData: TableClient;
  readonly #audit: AuditLog;
  readonly #keyring: TenantKeyring;
  readonly #clock: () => Date;

  constructor(dependencies: {
    platform: TableClient;
    tenantData: TableClient;
    audit: AuditLog;
    keyring: TenantKeyring;
    clock?: () => Date;
  }) {
    this.#platform = dependencies.platform;
    this.#tenantData = dependencies.tenantData;
    this.#audit = dependencies.audit;
    this.#keyring = dependencies.keyring;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async create(
    id: string,
    name: string,
    meta: RequestMeta,
    options: { retention?: Record<string, number> } = {},
  ): Promise<Tenant> {
    const tenant: Tenant = { id, name, status: 'active', createdAt: this.#clock().toISOString() };
    // The id is claimed first, and only its claimant writes the tenant's keys: two creations of one
    // id racing each other would otherwise both write a key version, and a process that had read the
    // first pseudonym key would compute other pseudonyms than every process after the second.
    try {
      await this.#platform.createEntity({
        partitionKey: DIRECTORY_PARTITION,
        rowKey: id,
        name,
        status: tenant.status,
        createdAt: tenant.createdAt,
      });
    } catch (error) {
      if (!isConflict(error)) throw error;
      if (await this.#profileExists(id)) throw conflict('A tenant with this id exists already.');
      // A creation that stopped half-way is finished by a later one; one still running is not joined.
      const claim = await this.#platform.getEntity<{ createdAt: string }>(DIRECTORY_PARTITION, id);
      if (this.#clock().getTime() - Date.parse(claim.createdAt) < CREATION_CLAIM_MS)
        throw conflict('This tenant is being created; try again in a minute if it does not appear.');
    }
    await this.#keyring.ensureTenantKeys(id);
    const partitionKey = tenantPartition(id, PROFILE_AREA);
    try {
      await this.#audit.commit(
        id,
        partitionKey,
        () => [
          [
            'create',
            {
              partitionKey,
              rowKey: 'tenant',
              name,
              status: tenant.status,
              createdAt: tenant.createdAt,
              ...(options.retention ? { retention: JSON.stringify(options.retention) } : {}),
            },
          ],
        ],
        [auditEvent('tenant.create', 'C', { type: 'Tenant', id }, meta, { purpose: 'tenant-administration' })],
      );
    } catch (error) {
      if (error instanceof TransactionFailedError && error.statusCode === 409)
        throw conflict('A tenant with this id exists already.');
      throw error;
    }
    return tenant;
  }

  async get(id: string): Promise<Tenant | undefined> {
    try {
      const row = await this.#platform.getEntity<{ name: string; status: 'active'; createdAt: string }>(
        DIRECTORY_PARTITION,
        id,
      );
      return { id, name: row.name, status: row.status, createdAt: row.createdAt };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** One page of the directory in id order: the tenants after `after`, at most `limit`. */
  async page(options: { after?: string | undefined; limit: number }): Promise<Tenant[]> {
    return (
      await rowsAfter<{ name: string; status: 'active'; createdAt: string }>(
        this.#platform,
        DIRECTORY_PARTITION,
        options,
      )
    ).map((row) => ({ id: row.rowKey ?? '', name: row.name, status: row.status, createdAt: row.createdAt }));
  }

  /** Every tenant in the directory. */
  async list(): Promise<Tenant[]> {
    const tenants: Tenant[] = [];
    for await (const row of this.#platform.listEntities<{
      rowKey: string;
      name: string;
      status: 'active';
      createdAt: string;
    }>({ queryOptions: { filter: `PartitionKey eq '${DIRECTORY_PARTITION}'` } })) {
      tenants.push({ id: row.rowKey, name: row.name, status: row.status, createdAt: row.createdAt });
    }
    return tenants;
  }

  /** The tenant's retention policy as recorded in its profile, if any. */
  async retention(id: string): Promise<Record<string, number> | undefined> {
    try {
      const row = await this.#tenantData.getEntity<{ retention?: string }>(tenantPartition(id, PROFILE_AREA), 'tenant');
      return row.retention ? (JSON.parse(row.retention) as Record<string, number>) : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async #profileExists(id: string): Promise<boolean> {
    try {
      await this.#tenantData.getEntity(tenantPartition(id, PROFILE_AREA), 'tenant');
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }
}
