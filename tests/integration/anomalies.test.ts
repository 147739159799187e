import type { TableClient } from '@azure/data-tables';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../lib/audit/audit-log.js';
import { AnomalyDetector, type AnomalyThresholds } from '../../lib/identity/anomalies.js';
import { SecurityAlertService } from '../../lib/identity/security-alerts.js';
import { TABLES } from '../../lib/storage/clients.js';
import { tenantPartition } from '../../lib/storage/keys.js';
import type { TenantService } from '../../lib/tenants/tenants.js';
import { useAzurite } from '../support/azurite.js';
import { testServices } from '../support/services.js';

// Reads at an unusual time of day need days of history, which no HTTP test can wait for: here the
// audit log and the detector run against Azurite with a clock the test moves (hourly windows, a
// two-day baseline). The other patterns are driven over HTTP in tests/e2e/anomalies.test.ts.
const azurite = useAzurite();
let tenantData: TableClient;
let platform: TableClient;
let now = new Date('2026-11-28T10:00:00Z');
const clock = () => now;
const THRESHOLDS: AnomalyThresholds = {
  windowSeconds: 3600,
  baselineWindows: 48,
  cycleWindows: 24,
  offHoursReads: 5,
  readsMin: 1000,
  readsFactor: 10,
  exports: 100,
  refusals: 100,
  grantReads: 1000,
};

async function reads(log: AuditLog, tenant: string, who: string, at: string, count: number): Promise<void> {
  now = new Date(at);
  await log.record(
    tenant,
    tenantPartition(tenant, 'access'),
    Array.from({ length: count }, (_, i) => ({
      event: 'order.read',
      action: 'R' as const,
      outcome: 'success' as const,
      actor: { type: 'integration' as const, id: who },
      entity: { type: 'Order', id: `o-${i}` },
      patientRef: `p-${i}`,
    })),
  );
}

describe('reads at an unusual time of day for the principal', () => {
  beforeAll(async () => {
    const services = await testServices(azurite.connectionString);
    tenantData = services.storage.table(TABLES.tenantData);
    platform = services.storage.table(TABLES.platform);
  });

  it('alerts for the night reader, not for the usual hour nor for a principal without history', async () => {
    const tenant = 'lab-hours';
    const log = new AuditLog({ table: tenantData, clock });
    const alerts = new SecurityAlertService({ table: platform, logger: { log: () => undefined }, clock });
    const detector = new AnomalyDetector({
      tenantData,
      audit: log,
      alerts,
      tenants: { list: async () => [] } as unknown as TenantService,
      thresholds: THRESHOLDS,
      clock,
    });
    // Two days of history: both principals read at 10:00-11:00 only.
    for (const day of ['2026-11-28', '2026-11-29'])
      for (const who of ['day-reader', 'night-reader']) await reads(log, tenant, who, `${day}T10:15:00Z`, 6);

    await reads(log, tenant, 'night-reader', '2026-11-30T03:10:00Z', 6);
    await reads(log, tenant, 'newcomer', '2026-11-30T03:12:00Z', 6);
    now = new Date('2026-11-30T03:40:00Z');
    const atNight = await detector.scanTenant(tenant);
    expect(atNight.map((a) => [a.kind, a.principal])).toEqual([['off-hours-reads', 'integration:night-reader']]);
    expect(atNight[0]).toMatchObject({ realm: tenant, count: 6, baseline: 1 });

    await reads(log, tenant, 'day-reader', '2026-11-30T10:10:00Z', 6);
    now = new Date('2026-11-30T10:40:00Z');
    expect(await detector.scanTenant(tenant)).toEqual([]);
    // The rollups are kept: a scan reads one row per closed window, not the whole baseline again.
    let rollups = 0;
    for await (const _ of tenantData.listEntities({
      queryOptions: { filter: `PartitionKey eq '${tenantPartition(tenant, 'anomaly-rollups')}'` },
    }))
      rollups++;
    expect(rollups).toBeGreaterThanOrEqual(THRESHOLDS.baselineWindows);
  });
});
