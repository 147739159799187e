import { recordSecurityAlert } from '../observability/instruments.js';
import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { Logger } from '../observability/logger.js';

type AlertKind =
  | 'password-spraying'
  | 'credential-stuffing'
  | 'account-locked'
  | 'breach-escalation'
  | 'breach-analysis-due'
  | 'breach-delivery-failed';

export interface SecurityAlert {
  id: string;
  kind: AlertKind;
  detectedAt: string;
  /** Keyed pseudonyms of the source address and account, never the raw values. */
  sourceRef?: string;
  accountRef?: string;
  realm?: string;
  count: number;
  summary: string;
}

const PARTITION = 'security-alerts';

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
    await this.#table.createEntity({ partitionKey: PARTITION, rowKey: `${inverted}~${id}`, ...full });
    this.#logger.log('warn', 'security.alert', {
      kind: alert.kind,
      alertId: id,
      realm: alert.realm,
      count: alert.count,
    });
    return full;
  }

  async list(limit = 100): Promise<SecurityAlert[]> {
    const result: SecurityAlert[] = [];
    const pages = this.#table
      .listEntities<SecurityAlert>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } })
      .byPage({ maxPageSize: limit });
    const first = await pages.next();
    if (!first.done) {
      for (const row of first.value) {
        result.push({
          id: row.id,
          kind: row.kind,
          detectedAt: row.detectedAt,
          count: row.count,
          summary: row.summary,
          ...(row.sourceRef ? { sourceRef: row.sourceRef } : {}),
          ...(row.accountRef ? { accountRef: row.accountRef } : {}),
          ...(row.realm ? { realm: row.realm } : {}),
        });
      }
    }
    return result;
  }
}
