import { recordSecurityAlert } from '../observability/instruments.js';
import { randomBytes } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import { createNewRow, landedAlready } from '../storage/conditional-writes.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import type { Logger } from '../observability/logger.js';

type AlertKind =
  | 'password-spraying'
  | 'credential-stuffing'
  | 'account-locked'
  | 'breach-escalation'
  | 'breach-analysis-due'
  | 'breach-delivery-failed'
  | 'unusual-read-volume'
  | 'export-burst'
  | 'probing'
  | 'staff-grant-overuse'
  | 'off-hours-reads';

export interface SecurityAlert {
  id: string;
  kind: AlertKind;
  detectedAt: string;
  /** Keyed pseudonyms of the source address and account, never the raw values. */
  sourceRef?: string;
  accountRef?: string;
  realm?: string;
  /** The principal an anomaly is about (`user:…`, `integration:…`, `operator:…`): ids, never patient data. */
  principal?: string;
  /** The window the counts are from. */
  window?: { from: string; to: string };
  /** What the count was compared with (the principal's baseline per window, or the threshold). */
  baseline?: number;
  count: number;
  summary: string;
}

const PARTITION = 'security-alerts';
/** Claims of alerts raised once per quiet period (see raiseOnce). */
const PARTITION_ONCE = 'security-alerts-once';

/** Security events for the vendor's security officers (`GET /api/security/alerts`). */
export class SecurityAlertService {
  readonly #table: TableClient;
  readonly #logger: Logger;
  readonly #clock: () => Date;

  constructor(dependencies: { table: TableClient; logger: Logger; clock?: () => Date }) {
    this.#table = dependencies.table;
    this.#logger = dependencies.logger;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async raise(alert: Omit<SecurityAlert, 'id' | 'detectedAt'>): Promise<SecurityAlert> {
    const now = this.#clock();
    const id = randomBytes(8).toString('hex');
    const full: SecurityAlert = { ...alert, id, detectedAt: now.toISOString() };
    recordSecurityAlert(alert.kind);
    // Newest first: row keys sort by inverted time.
    const inverted = String(8_640_000_000_000_000 - now.getTime()).padStart(16, '0');
    const row = {
      partitionKey: PARTITION,
      rowKey: `${inverted}~${id}`,
      ...full,
      ...(full.window ? { window: JSON.stringify(full.window) } : {}),
    };
    await createNewRow(this.#table, row);
    this.#logger.log('warn', 'security.alert', {
      kind: alert.kind,
      alertId: id,
      realm: alert.realm,
      count: alert.count,
    });
    return full;
  }

  /**
   * Raises an alert unless one with the same key was raised less than `quietMs` ago: a pattern that
   * goes on is one alert per quiet period, not one per scan. The key row is claimed under its ETag,
   * so two scans at once raise it once.
   */
  async raiseOnce(
    key: string,
    quietMs: number,
    alert: Omit<SecurityAlert, 'id' | 'detectedAt'>,
  ): Promise<SecurityAlert | undefined> {
    const now = this.#clock().getTime();
    const rowKey = `once~${key}`;
    const claim = { partitionKey: PARTITION_ONCE, rowKey, until: new Date(now + quietMs).toISOString() };
    try {
      await this.#table.createEntity(claim);
    } catch (error) {
      if (!isConflict(error)) throw error;
      // Our own claim, its answer lost: raise. (Two claims within one millisecond raise twice; a
      // duplicate alert is better than none.)
      if (await landedAlready(this.#table, claim, error)) return this.raise(alert);
      let existing: { until: string; etag: string };
      try {
        existing = await this.#table.getEntity<{ until: string }>(PARTITION_ONCE, rowKey);
      } catch (inner) {
        if (isNotFound(inner)) return undefined;
        throw inner;
      }
      if (Date.parse(existing.until) > now) return undefined;
      try {
        await this.#table.updateEntity(claim, 'Replace', { etag: existing.etag });
      } catch (inner) {
        if (await landedAlready(this.#table, claim, inner)) return this.raise(alert);
        if (isPreconditionFailed(inner)) return undefined;
        throw inner;
      }
    }
    return this.raise(alert);
  }

  /** The alerts about one tenant's principals (what its admins see). */
  async listForRealm(realm: string, limit = 100): Promise<SecurityAlert[]> {
    const result: SecurityAlert[] = [];
    for await (const row of this.#table.listEntities<SecurityAlert>({
      queryOptions: { filter: odata`PartitionKey eq ${PARTITION} and realm eq ${realm}` },
    })) {
      result.push(toAlert(row));
      if (result.length >= limit) break;
    }
    return result;
  }

  async list(limit = 100): Promise<SecurityAlert[]> {
    const result: SecurityAlert[] = [];
    const pages = this.#table
      .listEntities<SecurityAlert>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } })
      .byPage({ maxPageSize: limit });
    const first = await pages.next();
    if (!first.done) {
      for (const row of first.value) result.push(toAlert(row));
    }
    return result;
  }
}

function toAlert(row: SecurityAlert & { window?: unknown }): SecurityAlert {
  return {
    id: row.id,
    kind: row.kind,
    detectedAt: row.detectedAt,
    count: row.count,
    summary: row.summary,
    ...(row.sourceRef ? { sourceRef: row.sourceRef } : {}),
    ...(row.accountRef ? { accountRef: row.accountRef } : {}),
    ...(row.realm ? { realm: row.realm } : {}),
    ...(row.principal ? { principal: row.principal } : {}),
    ...(typeof row.window === 'string' ? { window: JSON.parse(row.window) as { from: string; to: string } } : {}),
    ...(typeof row.baseline === 'number' ? { baseline: row.baseline } : {}),
  };
}
