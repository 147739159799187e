import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { person, type Reply, STRONG, tenantWithAdmin } from '../support/api.js';
import { exampleOrder } from '../support/fixtures.js';
import { type RunningHost, startHost } from '../support/local-host.js';

// Exfiltration and anomaly alerts from the audit log, driven over HTTP: each pattern raises exactly
// one alert naming the principal, the window and the counts; a principal reading as much as usual
// (its own baseline) raises none, and neither do a few refusals or one export.
const TENANT = 'lab-anom';
const OPERATOR_PASSWORD = 'operator first password for the anomaly tests';
const WINDOW_SECONDS = 6;
let host: RunningHost;
let operator: string;
let tenantAdmin: string;
let secondAdmin: string;
let otherAdmin: string;
const keys: Record<string, string> = {};
const keyIds: Record<string, string> = {};
const call = (method: string, path: string, auth: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${host.apiBaseUrl}${path}`, {
    method,
    headers: { authorization: auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  }).then(async (r): Promise<Reply> => {
    const text = await r.text();
    return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  });

type Alert = {
  id: string;
  kind: string;
  realm?: string;
  principal?: string;
  count: number;
  baseline?: number;
  window?: { from: string; to: string };
  summary: string;
};

async function key(name: string, permissions: string[]): Promise<void> {
  const created = await call('POST', '/integrations', tenantAdmin, { name, permissions, currentPassword: STRONG });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  keys[name] = `ApiKey ${String(created.body.apiKey)}`;
  keyIds[name] = String(created.body.id);
}

describe('anomaly alerts from the audit log', () => {
  beforeAll(async () => {
    host = await startHost({
      env: {
        LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD,
        // The five-minute scan would race the scans this test asks for (one alert per quiet window).
        'AzureWebJobs.anomalyScan.Disabled': 'true',
        LABVAULT_ANOMALY_WINDOW_SECONDS: String(WINDOW_SECONDS),
        LABVAULT_ANOMALY_BASELINE_WINDOWS: '5',
        LABVAULT_ANOMALY_READS_MIN: '20',
        LABVAULT_ANOMALY_READS_FACTOR: '3',
        LABVAULT_ANOMALY_EXPORTS: '3',
        LABVAULT_ANOMALY_REFUSALS: '15',
        LABVAULT_ANOMALY_GRANT_READS: '15',
      },
    });
    operator = await person(host, 'operator', 'operator', OPERATOR_PASSWORD);
    tenantAdmin = await tenantWithAdmin(host, TENANT, 'anom.admin');
    otherAdmin = await tenantWithAdmin(host, 'lab-anom-other', 'other.admin');
    const second = await call('POST', '/users', tenantAdmin, {
      username: 'anom.second',
      email: 'second@example.org',
      roles: ['tenant-admin'],
    });
    secondAdmin = await person(host, TENANT, 'anom.second', String(second.body.initialPassword));
    await key('writer', ['orders:create']);
    for (const name of ['steady', 'spiker', 'prober']) await key(name, ['orders:read']);
    for (let i = 0; i < 30; i++)
      expect(
        (
          await call(
            'POST',
            '/orders',
            keys.writer!,
            exampleOrder({ externalId: `AN-${i}`, patient: { ...exampleOrder().patient, id: `AN-PAT-${i}` } }),
          )
        ).status,
      ).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await host?.kill();
  });

  it('raises one alert per pattern and none for usual traffic', async () => {
    // The steady reader's usual pattern: 10 patient records every two seconds, for five windows.
    const steadyUntil = Date.now() + 5 * WINDOW_SECONDS * 1000 + 1000;
    while (Date.now() < steadyUntil) {
      expect((await call('GET', '/orders?limit=10', keys.steady!)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 2000));
    }
    // Then, within one window: the same volume from a reader with no history; probing; an export
    // burst; a staff grant used for far more reads than the ticket needs; and ordinary noise.
    for (let i = 0; i < 3; i++) expect((await call('GET', '/orders?limit=10', keys.spiker!)).status).toBe(200);
    for (let i = 0; i < 20; i++)
      expect((await call('GET', `/orders/${randomBytes(16).toString('hex')}`, keys.prober!)).status).toBe(404);
    for (let i = 0; i < 2; i++)
      expect((await call('GET', `/orders/${randomBytes(16).toString('hex')}`, keys.steady!)).status).toBe(404);
    for (let i = 0; i < 3; i++)
      expect(
        (await call('POST', '/subject-requests', tenantAdmin, { type: 'access', patientId: `AN-PAT-${i}` })).status,
      ).toBe(202);
    expect(
      (await call('POST', '/subject-requests', secondAdmin, { type: 'access', patientId: 'AN-PAT-9' })).status,
    ).toBe(202);
    const grant = await call('POST', '/access-requests', operator, {
      tenant: TENANT,
      reason: 'ticket 4711: one order looks wrong',
      minutes: 30,
      permissions: ['orders:read'],
    });
    expect(grant.status, JSON.stringify(grant.body)).toBe(201);
    expect(
      (await call('POST', `/access-requests/${String(grant.body.id)}/approval`, tenantAdmin, { approve: true })).status,
    ).toBe(200);
    const underGrant = await call('GET', '/orders?limit=16', operator, undefined, { 'x-labvault-tenant': TENANT });
    expect(underGrant.status).toBe(200);
    expect((await call('GET', '/orders?limit=10', keys.steady!)).status).toBe(200);

    const scan = await call('POST', '/security/anomaly-scans', operator);
    expect(scan.status, JSON.stringify(scan.body)).toBe(200);
    const raised = scan.body.items as Alert[];
    const about = (kind: string) => raised.filter((a) => a.kind === kind);
    const principal = (name: string) => `integration:${keyIds[name]}`;

    expect(about('unusual-read-volume').map((a) => a.principal)).toEqual([principal('spiker')]);
    expect(about('unusual-read-volume')[0]).toMatchObject({ realm: TENANT, count: 30, baseline: 0 });
    expect(about('probing').map((a) => a.principal)).toEqual([principal('prober')]);
    expect(about('probing')[0]?.count).toBeGreaterThanOrEqual(20);
    const burst = about('export-burst');
    expect(burst).toHaveLength(1);
    expect(burst[0]).toMatchObject({ count: 3, principal: expect.stringMatching(/^user:/) });
    const grantAlerts = about('staff-grant-overuse');
    expect(grantAlerts).toHaveLength(1);
    expect(grantAlerts[0]).toMatchObject({ count: 16, principal: expect.stringMatching(/^operator:/) });
    expect(grantAlerts[0]?.summary).toContain(String(grant.body.id));
    for (const alert of raised) {
      expect(Date.parse(alert.window!.to) - Date.parse(alert.window!.from)).toBe(WINDOW_SECONDS * 1000);
      expect(JSON.stringify(alert)).not.toMatch(/AN-PAT|Mustermann|Erika/);
    }
    // The steady reader and the second admin are nowhere.
    expect(raised.map((a) => a.principal)).not.toContain(principal('steady'));
    expect(raised).toHaveLength(4);

    // A second scan right away raises nothing new.
    expect(((await call('POST', '/security/anomaly-scans', operator)).body.items as Alert[]).length).toBe(0);

    // The tenant admin sees its principals' alerts, another tenant sees none, a key cannot look.
    const own = (await call('GET', '/alerts', tenantAdmin)).body.items as Alert[];
    expect(own.map((a) => a.id).sort()).toEqual(raised.map((a) => a.id).sort());
    expect((await call('GET', '/alerts', otherAdmin)).body.items).toEqual([]);
    expect((await call('GET', '/alerts', keys.steady!)).status).toBe(403);
    expect((await call('POST', '/security/anomaly-scans', tenantAdmin)).status).toBe(403);
    // The security officer sees them with the rest and can start a breach draft from one.
    const all = (await call('GET', '/security/alerts', operator)).body.items as Alert[];
    expect(all.map((a) => a.id)).toEqual(expect.arrayContaining(raised.map((a) => a.id)));
    const spike = about('unusual-read-volume')[0]!;
    const draft = await call('POST', `/security/alerts/${spike.id}/breach-draft`, operator);
    expect(draft.status, JSON.stringify(draft.body)).toBe(201);
  });

  it('anchors every realm’s audit chains when the security officer asks, and verification checks them', async () => {
    const anchored = await call('POST', '/security/audit-anchors', operator);
    expect(anchored.status, JSON.stringify(anchored.body)).toBe(200);
    // Two tenants and the vendor's own realm; every stream of theirs had moved (no anchor yet).
    expect(anchored.body.realms).toBeGreaterThanOrEqual(3);
    expect(anchored.body.streams).toBeGreaterThan(3);
    // Ten at once: each answers (runs on one instance share the one in progress).
    const burst = await Promise.all(
      Array.from({ length: 10 }, () => call('POST', '/security/audit-anchors', operator)),
    );
    expect(burst.map((r) => r.status)).toEqual(Array(10).fill(200));
    const verified = await call('GET', '/audit/verify', tenantAdmin);
    expect(verified.body).toMatchObject({ valid: true, anchors: { lastAnchoredAt: expect.any(String) } });
    const anchors = verified.body.anchors as { lines: number; positions: number };
    expect(anchors.lines).toBeGreaterThanOrEqual(1);
    expect(anchors.positions).toBeGreaterThan(0);
    // Neither a tenant admin nor an API key may start it.
    expect((await call('POST', '/security/audit-anchors', tenantAdmin)).status).toBe(403);
    expect((await call('POST', '/security/audit-anchors', keys.steady!)).status).toBe(403);
  });
});
