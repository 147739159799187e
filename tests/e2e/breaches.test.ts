import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder, PATIENT_STRINGS } from '../support/fixtures.js';
import { call as api, person as login, STRONG } from '../support/api.js';
import { type RunningHost, startHost } from '../support/local-host.js';

const SECONDS = (s: number) => String(s / 3600);
// The clocks in seconds instead of hours: reminders at 3 s and 6 s, escalation at 9 s.
const env = {
  LABVAULT_OPERATOR_INITIAL_PASSWORD: 'first-start-only-password-42',
  LABVAULT_BREACH_PROCESSOR_DEADLINE_HOURS: SECONDS(8),
  LABVAULT_BREACH_REMINDER_HOURS: `${SECONDS(3)},${SECONDS(6)}`,
  LABVAULT_BREACH_ESCALATION_HOURS: SECONDS(9),
  LABVAULT_BREACH_ANALYSIS_REMINDER_HOURS: SECONDS(7),
  // The receiver below listens on loopback: allowed for tests only.
  LABVAULT_WEBHOOK_ALLOW_LOOPBACK: 'true',
  // Fast retries here; the default schedule (10 s, doubling) has its own test below.
  LABVAULT_WEBHOOK_FIRST_RETRY_SECONDS: '1',
};

let host: RunningHost;
let officer: string;
const admins: Record<string, string> = {};
let apiKeyB1: string;
let integrationB1: string;
const hooks: { body: string; headers: Record<string, string> }[] = [];
let failuresLeft = 2;
let hookServer: Server;
let hookSecret = '';

const call = (method: string, path: string, auth: string, body?: unknown) => api(host, method, path, auth, body);
const person = (tenant: string, username: string, initial: string) => login(host, tenant, username, initial);

async function until<T>(check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('breach handling over HTTP', () => {
  beforeAll(async () => {
    hookServer = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        hooks.push({
          body,
          headers: {
            'webhook-id': String(req.headers['webhook-id']),
            'webhook-timestamp': String(req.headers['webhook-timestamp']),
            'webhook-signature': String(req.headers['webhook-signature']),
          },
        });
        res.writeHead(failuresLeft-- > 0 ? 503 : 200);
        res.end();
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', () => r()));
    host = await startHost({ env });
    officer = await person('operator', 'operator', env.LABVAULT_OPERATOR_INITIAL_PASSWORD);
    for (const tenant of ['lab-b1', 'lab-b2', 'lab-b3']) {
      const created = await call('POST', '/tenants', officer, {
        id: tenant,
        name: tenant.toUpperCase(),
        admin: { username: 'admin', email: `admin@${tenant}.example` },
      });
      admins[tenant] = await person(
        tenant,
        'admin',
        String((created.body.admin as { initialPassword: string }).initialPassword),
      );
    }
    const integration = await call('POST', '/integrations', admins['lab-b1'] ?? '', {
      name: 'LIS',
      permissions: ['orders:create', 'orders:read'],
      currentPassword: STRONG,
    });
    apiKeyB1 = `ApiKey ${String(integration.body.apiKey)}`;
    integrationB1 = String(integration.body.id);
    const order = await call('POST', '/orders', apiKeyB1, exampleOrder());
    await call('GET', `/orders/${String(order.body.id)}`, apiKeyB1);
    const port = (hookServer.address() as AddressInfo).port;
    hookSecret = String(
      (await call('PUT', '/breach-webhook', admins['lab-b1'] ?? '', { url: `http://127.0.0.1:${port}/hook` })).body
        .secret,
    );
  });

  afterAll(async () => {
    await host?.kill();
    hookServer?.close();
  });

  it('notifies every affected tenant at once with the Art. 33(3) content, runs the clocks, and closes with the analysis', async () => {
    const reported = await call('POST', '/breaches', officer, {
      detectedAt: new Date().toISOString(),
      description: 'Misconfigured backup share was reachable from the internet',
      tenants: ['lab-b1', 'lab-b2'],
      nature: ['confidentiality'],
      dataCategories: ['health data', 'identification data'],
      likelyConsequences: 'Possible disclosure of lab orders',
      measures: 'Share closed, keys rotated',
      keysExposed: false,
    });
    expect(reported.status).toBe(202);
    const id = String(reported.body.id);

    for (const tenant of ['lab-b1', 'lab-b2']) {
      const notice = await until(async () => {
        const items = (await call('GET', '/breach-notifications', admins[tenant] ?? '')).body.items as {
          breachId: string;
          content: Record<string, unknown>;
        }[];
        return items.find((n) => n.breachId === id);
      });
      expect(notice.content).toMatchObject({
        sequence: 1,
        moreToFollow: true,
        nature: ['confidentiality'],
        dataCategories: ['health data', 'identification data'],
        contactPoint: expect.any(String),
        likelyConsequences: 'Possible disclosure of lab orders',
        measures: 'Share closed, keys rotated',
        approximateDataSubjects: expect.any(Number),
        approximateRecords: expect.any(Number),
        dataEncrypted: true,
        keysExposed: false,
        processorDeadline: expect.any(String),
        controllerDeadline: expect.any(String),
      });
      // Sent within the processor's deadline: no reason for delay.
      expect(notice.content.lateReason).toBeUndefined();
    }
    expect(((await call('GET', '/breach-notifications', admins['lab-b3'] ?? '')).body.items as unknown[]).length).toBe(
      0,
    );
    expect((await call('GET', '/breach-notifications', officer)).status).toBe(404);

    // lab-b1 acknowledges at once, by the notification's own id; lab-b2 never does.
    const listed = (await call('GET', '/breach-notifications', admins['lab-b1'] ?? '')).body.items as {
      id: string;
      breachId: string;
      sequence: number;
    }[];
    const notificationId = listed.find((n) => n.breachId === id)?.id ?? '';
    expect(notificationId).toBe(`${id}-1`);
    expect((await call('POST', `/breach-notifications/${id}/acknowledgement`, admins['lab-b1'] ?? '')).status).toBe(
      404,
    ); // the breach's id is not a notification's
    expect(
      (await call('POST', `/breach-notifications/${notificationId}/acknowledgement`, admins['lab-b1'] ?? '')).status,
    ).toBe(204);
    expect(
      (await call('POST', `/breach-notifications/${notificationId}/acknowledgement`, admins['lab-b3'] ?? '')).status,
    ).toBe(404);

    // The webhook failed twice, then took the notice, signed as Standard Webhooks specifies (checked
    // with the specification's own library); every attempt is recorded.
    const delivered = await until(async () => (hooks.length >= 3 ? hooks : undefined));
    const last = delivered[2];
    expect(hookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const verified = new Webhook(hookSecret).verify(last?.body ?? '', last?.headers ?? {}) as {
      type: string;
      data: Record<string, unknown>;
    };
    expect(verified).toMatchObject({
      type: 'breach.notification',
      data: { breachId: id, sequence: 1, notificationId },
    });
    expect(new Set(delivered.slice(0, 3).map((h) => h.headers['webhook-id'])).size).toBe(1); // one message, three attempts
    expect(() => new Webhook(hookSecret).verify(`${last?.body ?? ''} `, last?.headers ?? {})).toThrow();

    const escalated = await until(async () => {
      const breach = (await call('GET', `/breaches/${id}`, officer)).body;
      return (breach.timeline as { event: string }[]).some((e) => e.event === 'escalation') ? breach : undefined;
    });
    const timeline = escalated.timeline as { event: string; tenant?: string; at: string }[];
    // Each clock fires at its time after awareness (3 s, 6 s, 9 s here; 12 h, 24 h, 47 h by default).
    const after = (e: { at: string }) => (Date.parse(e.at) - Date.parse(String(escalated.awareAt))) / 1000;
    expect(
      timeline
        .filter((e) => e.event === 'reminder')
        .map(after)
        .map(Math.floor),
    ).toEqual([expect.toSatisfy((s: number) => s >= 3 && s < 6), expect.toSatisfy((s: number) => s >= 6 && s < 9)]);
    expect(after(timeline.find((e) => e.event === 'escalation') ?? { at: '' })).toBeGreaterThanOrEqual(9);
    expect(timeline.filter((e) => e.event === 'reminder').map((e) => e.tenant)).toEqual(['lab-b2', 'lab-b2']);
    expect(timeline.filter((e) => e.event === 'escalation').map((e) => e.tenant)).toEqual(['lab-b2']);
    expect(
      (escalated.deliveries as { ok: boolean; httpStatus?: number; error?: string }[]).map((d) => [
        d.ok,
        d.httpStatus,
        d.error,
      ]),
    ).toEqual([
      [false, 503, 'http-503'],
      [false, 503, 'http-503'],
      [true, 200, undefined],
    ]);
    expect(escalated.deadlines).toMatchObject({ processor: expect.any(String), controller: expect.any(String) });
    // The unacknowledged tenant sees its reminders; the one that acknowledged got none.
    const remindedB2 = (
      (await call('GET', '/breach-notifications', admins['lab-b2'] ?? '')).body.items as {
        breachId: string;
        reminders: number;
      }[]
    ).find((n) => n.breachId === id);
    const remindedB1 = (
      (await call('GET', '/breach-notifications', admins['lab-b1'] ?? '')).body.items as {
        breachId: string;
        reminders: number;
      }[]
    ).find((n) => n.breachId === id);
    expect(remindedB2?.reminders).toBe(2);
    expect(remindedB1?.reminders).toBe(0);
    const alerts = (await call('GET', '/security/alerts', officer)).body.items as { kind: string }[];
    expect(alerts.some((a) => a.kind === 'breach-escalation')).toBe(true);

    // A phased update reaches the same tenants with the next sequence number.
    expect(
      (
        await call('POST', `/breaches/${id}/updates`, officer, {
          measures: 'Forensics done: no access found in logs',
          moreToFollow: false,
        })
      ).body,
    ).toEqual({ sequence: 2 });
    const second = await until(async () => {
      const items = (await call('GET', '/breach-notifications', admins['lab-b2'] ?? '')).body.items as {
        breachId: string;
        sequence: number;
        content: Record<string, unknown>;
      }[];
      return items.find((n) => n.breachId === id && n.sequence === 2);
    });
    expect(second.content).toMatchObject({
      moreToFollow: false,
      measures: 'Forensics done: no access found in logs',
      lateReason: expect.stringContaining('processor deadline'),
    });

    expect(
      (
        await call('POST', `/breaches/${id}/analysis`, officer, {
          rootCause: 'Share ACL copied from a test system',
          measures: 'ACL review in CI',
          closed: true,
        })
      ).status,
    ).toBe(204);
    const closed = await until(async () => {
      const b = (await call('GET', `/breaches/${id}`, officer)).body;
      return b.status === 'closed' ? b : undefined;
    });
    expect((closed.timeline as { event: string }[]).map((e) => e.event)).toEqual(
      expect.arrayContaining([
        'registered',
        'scoped',
        'notified',
        'acknowledged',
        'reminder',
        'escalation',
        'webhook-delivered',
        'update-registered',
        'closed',
      ]),
    );
    expect(((await call('GET', '/breaches', officer)).body.items as { id: string }[]).some((b) => b.id === id)).toBe(
      true,
    );
  });

  it('derives affected tenants and counts from the audit log of a suspected principal', async () => {
    const reported = await call('POST', '/breaches', officer, {
      detectedAt: new Date().toISOString(),
      description: 'Integration key leaked in a support ticket',
      suspectedPrincipal: integrationB1,
      window: { from: new Date(Date.now() - 3600_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() },
      dataCategories: ['health data'],
      likelyConsequences: 'Reading of orders',
      measures: 'Key revoked',
    });
    const id = String(reported.body.id);
    const breach = await until(async () => {
      const b = (await call('GET', `/breaches/${id}`, officer)).body;
      return (b.tenants as unknown[]).length > 0 ? b : undefined;
    });
    expect(breach.tenants).toEqual([
      expect.objectContaining({ tenant: 'lab-b1', dataSubjects: 1, recordsByCategory: { Order: 1 } }),
    ]);
    await call('POST', `/breaches/${id}/analysis`, officer, { rootCause: 'r', measures: 'm', closed: true });
  });

  it('turns a spraying alert into a draft that is never notified, and documents the decision', async () => {
    for (let i = 0; i < 10; i++)
      await call('POST', '/auth/login', '', {
        tenant: 'lab-b3',
        username: `nobody-${i}`,
        password: 'Winter2026!Winter2026!',
      });
    const alert = ((await call('GET', '/security/alerts', officer)).body.items as { id: string; kind: string }[]).find(
      (a) => a.kind === 'password-spraying',
    );
    expect(alert).toBeDefined();
    const draft = await call('POST', `/security/alerts/${alert?.id}/breach-draft`, officer);
    expect(draft.status).toBe(201);
    const id = String(draft.body.id);
    expect((await call('GET', `/breaches/${id}`, officer)).body).toMatchObject({ status: 'draft' });
    // A draft was never reported to anyone: no authority reference can be recorded against it yet.
    const early = await call('PUT', `/breaches/${id}/authority-notification`, officer, {
      authority: 'BfDI',
      reference: 'BfDI-1',
      notifiedAt: new Date().toISOString(),
    });
    expect(early.status).toBe(409);
    expect(((await call('GET', '/breach-notifications', admins['lab-b3'] ?? '')).body.items as unknown[]).length).toBe(
      0,
    );
    expect(
      (
        await call('POST', `/breaches/${id}/decision`, officer, {
          notify: false,
          reasoning: 'No account was entered; all attempts failed.',
        })
      ).status,
    ).toBe(204);
    expect((await call('GET', `/breaches/${id}`, officer)).body).toMatchObject({
      status: 'not-notified',
      decision: { reasoning: 'No account was entered; all attempts failed.' },
    });
  });

  it('keeps the risk as assessed in each update and the authority’s reference in the register', async () => {
    const refused = await call('POST', '/breaches', officer, {
      detectedAt: new Date().toISOString(),
      description: 'Risk written wrong',
      tenants: ['lab-b3'],
      dataCategories: ['health data'],
      likelyConsequences: 'none',
      measures: 'none',
      risk: 'catastrophic',
    });
    expect(refused.status).toBe(400);
    const reported = await call('POST', '/breaches', officer, {
      detectedAt: new Date().toISOString(),
      description: 'Results printed at the wrong practice',
      tenants: ['lab-b3'],
      dataCategories: ['health data'],
      likelyConsequences: 'Results seen by the wrong practice',
      measures: 'Letters recalled',
      risk: 'risk',
    });
    expect(reported.status).toBe(202);
    const id = String(reported.body.id);
    expect(
      (await call('POST', `/breaches/${id}/updates`, officer, { risk: 'high-risk', moreToFollow: false })).status,
    ).toBe(202);
    const notifiedAt = '2026-11-30T10:00:00.000Z';
    const bad = await call('PUT', `/breaches/${id}/authority-notification`, officer, { authority: 'BfDI', notifiedAt });
    expect(bad.status).toBe(400);
    const recorded = await call('PUT', `/breaches/${id}/authority-notification`, officer, {
      authority: 'BfDI',
      reference: 'BfDI-2026-0042',
      notifiedAt,
    });
    expect(recorded.status).toBe(204);
    // A tenant admin holds no operator permission: the register is not theirs to write.
    const tenantTry = await call('PUT', `/breaches/${id}/authority-notification`, admins['lab-b3'] ?? '', {
      authority: 'X',
      reference: 'Y',
      notifiedAt,
    });
    expect(tenantTry.status).toBe(403);
    const record = (await call('GET', `/breaches/${id}`, officer)).body;
    expect(record).toMatchObject({
      risk: 'risk',
      updates: [{ risk: 'high-risk', moreToFollow: false }],
      authorityNotification: { authority: 'BfDI', reference: 'BfDI-2026-0042', notifiedAt },
    });
    expect((record.timeline as { event: string }[]).map((t) => t.event)).toContain('authority-notified');
  });

  it('keeps patient data out of notifications, webhooks, orchestration history and logs', async () => {
    const instances = (await (await fetch(host.durableUrl(`instances/?showInput=true`))).json()) as {
      instanceId: string;
    }[];
    let histories = '';
    for (const i of instances.filter((x) => x.instanceId.startsWith('breach-'))) {
      histories += await (
        await fetch(host.durableUrl(`instances/${i.instanceId}?showHistory=true&showHistoryOutput=true`))
      ).text();
    }
    const notices = JSON.stringify((await call('GET', '/breach-notifications', admins['lab-b1'] ?? '')).body);
    const everything = histories + notices + hooks.map((h) => h.body).join('') + host.output();
    for (const value of PATIENT_STRINGS) expect(everything).not.toContain(value);
  });
});
