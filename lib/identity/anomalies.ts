import { odata, type TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import { tenantPartition } from '../storage/keys.js';
import type { TenantService } from '../tenants/tenants.js';
import { OPERATOR_REALM } from './permissions.js';
import type { SecurityAlert, SecurityAlertService } from './security-alerts.js';

export interface AnomalyThresholds {
  windowSeconds: number;
  baselineWindows: number;
  readsMin: number;
  readsFactor: number;
  exports: number;
  refusals: number;
  grantReads: number;
  /** Windows per day (24 for hourly windows): reads in a window of the day the principal never used alert. */
  cycleWindows: number;
  offHoursReads: number;
}

export interface AnomalyDependencies {
  tenantData: TableClient;
  audit: AuditLog;
  alerts: SecurityAlertService;
  tenants: TenantService;
  thresholds: AnomalyThresholds;
  /** Whether a realm's data is being deleted or gone (a scan must not write rows under it then). */
  isBeingDeleted?: (realm: string) => Promise<boolean>;
  clock?: () => Date;
}

interface WindowCounts {
  reads: number;
  exports: number;
  refusals: number;
  /** The staff grant an operator's calls ran under (from its staff-access.call entries). */
  grant?: string;
}

const ROLLUPS = 'anomaly-rollups';
const ROLLUP_ROW = (start: string) => `window~${start}`;

/**
 * Intrusion detection on the audit log, beside the brute-force guard: every scan counts, per
 * principal of each tenant, what the last window's audit entries say it did, and compares it with
 * the principal's own baseline (its reads per window over the earlier windows, kept as one rollup
 * row per closed window so a scan never rereads a week of entries) or with a threshold:
 *
 * - `unusual-read-volume`: patient-record reads (action R with a patient pseudonym) at least
 *   `readsMin` and at least `readsFactor` times the principal's baseline;
 * - `export-burst`: exports and subject-access exports (`export.request`) at least `exports`;
 * - `probing`: refused calls (`access.denied`, the pipeline's 403 and 404) at least `refusals`;
 * - `staff-grant-overuse`: patient-record reads by an operator under a staff grant at least `grantReads`;
 * - `off-hours-reads`: at least `offHoursReads` patient-record reads at a time of day (the window's
 *   place in a cycle of `cycleWindows`) at which the principal read nothing in its whole baseline,
 *   while it did read at other times (a principal without history has no usual hours).
 *
 * An alert names the principal, the window and the counts, never patient data, and is raised once
 * per window for the same principal and pattern however often the scan runs.
 */
export class AnomalyDetector {
  readonly #d: AnomalyDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: AnomalyDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async scan(): Promise<SecurityAlert[]> {
    const raised: SecurityAlert[] = [];
    // The operator realm too: an operator refused again and again without a grant is probing.
    const realms = [...(await this.#d.tenants.list()).map((t) => t.id), OPERATOR_REALM];
    for (const realm of realms) raised.push(...(await this.scanTenant(realm)));
    return raised;
  }

  async scanTenant(tenant: string): Promise<SecurityAlert[]> {
    if (await this.#d.isBeingDeleted?.(tenant)) return [];
    const t = this.#d.thresholds;
    const windowMs = t.windowSeconds * 1000;
    const now = this.#clock().getTime();
    const from = new Date(now - windowMs).toISOString();
    const to = new Date(now).toISOString();
    const counts = new Map<string, WindowCounts>();
    for await (const entry of this.#d.audit.entriesBetween(tenant, from, to)) {
      if (entry.actor.type === 'system') continue; // the platform's own steps are not principals
      const who = `${entry.actor.type}:${entry.actor.id}`;
      const c = counts.get(who) ?? { reads: 0, exports: 0, refusals: 0 };
      if (entry.action === 'R' && entry.patientRef) c.reads++;
      if (entry.event === 'export.request') c.exports++;
      if (entry.event === 'access.denied') c.refusals++;
      if (entry.event === 'staff-access.call' && typeof entry.details?.grant === 'string')
        c.grant = entry.details.grant;
      counts.set(who, c);
    }
    if (counts.size === 0) return [];
    // The baseline (and its rollup rows) only when some principal read enough to need a comparison.
    const needsBaseline = [...counts.values()].some((c) => c.reads >= Math.min(t.readsMin, t.offHoursReads));
    const history = needsBaseline ? await this.#baseline(tenant, now - windowMs, windowMs) : [];
    const baseline = new Map<string, number>();
    const usualSlots = new Map<string, Set<number>>();
    const slotOf = (start: number) => Math.floor(start / windowMs) % t.cycleWindows;
    for (const { start, reads } of history)
      for (const [who, n] of Object.entries(reads)) {
        baseline.set(who, (baseline.get(who) ?? 0) + n);
        if (n > 0) usualSlots.set(who, (usualSlots.get(who) ?? new Set()).add(slotOf(start)));
      }
    // The sliding window's time of day: the aligned window holding most of it.
    const currentSlot = slotOf(Math.floor((now - windowMs / 2) / windowMs) * windowMs);
    const window = { from, to };
    const raised: SecurityAlert[] = [];
    const raise = async (kind: SecurityAlert['kind'], who: string, count: number, base: number, summary: string) => {
      const alert = await this.#d.alerts.raiseOnce(`${kind}~${tenant}~${who}`, windowMs, {
        kind,
        realm: tenant,
        principal: who,
        window,
        baseline: base,
        count,
        summary,
      });
      if (alert) raised.push(alert);
    };
    for (const [who, c] of counts) {
      const usual = (baseline.get(who) ?? 0) / t.baselineWindows;
      if (c.reads >= t.readsMin && c.reads >= t.readsFactor * usual)
        await raise(
          'unusual-read-volume',
          who,
          c.reads,
          Math.round(usual * 10) / 10,
          `${who} read ${c.reads} patient records in ${t.windowSeconds} s; its baseline is ${usual.toFixed(1)} per window`,
        );
      const slots = usualSlots.get(who);
      // Usual hours need a baseline of at least one whole day.
      const knowsItsDay = t.baselineWindows >= t.cycleWindows;
      if (knowsItsDay && slots && !slots.has(currentSlot) && c.reads >= t.offHoursReads)
        await raise(
          'off-hours-reads',
          who,
          c.reads,
          slots.size,
          `${who} read ${c.reads} patient records at a time of day it did not read at in its baseline (${slots.size} usual windows of ${t.cycleWindows})`,
        );
      if (c.exports >= t.exports)
        await raise(
          'export-burst',
          who,
          c.exports,
          t.exports,
          `${who} started ${c.exports} exports in ${t.windowSeconds} s`,
        );
      if (c.refusals >= t.refusals)
        await raise(
          'probing',
          who,
          c.refusals,
          t.refusals,
          `${who} was refused ${c.refusals} times (403/404) in ${t.windowSeconds} s`,
        );
      if (who.startsWith('operator:') && c.reads >= t.grantReads)
        await raise(
          'staff-grant-overuse',
          who,
          c.reads,
          t.grantReads,
          `${who} read ${c.reads} patient records in ${t.windowSeconds} s under staff grant ${c.grant ?? '(unknown)'}`,
        );
    }
    return raised;
  }

  /**
   * Reads per principal over the `baselineWindows` closed windows before `before`, from one rollup
   * row per window; the windows not rolled up yet are counted from the audit log once and stored.
   */
  async #baseline(
    tenant: string,
    before: number,
    windowMs: number,
  ): Promise<{ start: number; reads: Record<string, number> }[]> {
    const partitionKey = tenantPartition(tenant, ROLLUPS);
    const lastEnd = Math.floor(before / windowMs) * windowMs;
    const starts = Array.from(
      { length: this.#d.thresholds.baselineWindows },
      (_, i) => lastEnd - (i + 1) * windowMs,
    ).reverse();
    const first = new Date(starts[0] ?? lastEnd).toISOString();
    const stored = new Map<string, Record<string, number>>();
    for await (const row of this.#d.tenantData.listEntities<{ rowKey: string; reads: string }>({
      queryOptions: {
        filter: odata`PartitionKey eq ${partitionKey} and RowKey ge ${ROLLUP_ROW(first)} and RowKey lt ${ROLLUP_ROW(new Date(lastEnd).toISOString())}`,
      },
    }))
      stored.set(row.rowKey, JSON.parse(row.reads) as Record<string, number>);
    const missing = starts.filter((s) => !stored.has(ROLLUP_ROW(new Date(s).toISOString())));
    if (missing.length > 0) {
      const buckets = new Map<number, Record<string, number>>(missing.map((s) => [s, {}]));
      const from = new Date(Math.min(...missing)).toISOString();
      const to = new Date(Math.max(...missing) + windowMs).toISOString();
      for await (const entry of this.#d.audit.entriesBetween(tenant, from, to)) {
        if (entry.action !== 'R' || !entry.patientRef) continue;
        const bucket = buckets.get(Math.floor(Date.parse(entry.at) / windowMs) * windowMs);
        if (!bucket) continue;
        const who = `${entry.actor.type}:${entry.actor.id}`;
        bucket[who] = (bucket[who] ?? 0) + 1;
      }
      for (const [start, reads] of buckets) {
        const rowKey = ROLLUP_ROW(new Date(start).toISOString());
        // Closed windows do not change: writing the same rollup twice is harmless.
        await this.#d.tenantData.upsertEntity({ partitionKey, rowKey, reads: JSON.stringify(reads) }, 'Replace');
        stored.set(rowKey, reads);
      }
    }
    return starts.map((start) => ({ start, reads: stored.get(ROLLUP_ROW(new Date(start).toISOString())) ?? {} }));
  }
}
