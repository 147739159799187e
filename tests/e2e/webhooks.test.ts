// Breach notifications reach the customer: a receiver that is down for the first minute still gets
// the notification (the default schedule: 10 s, doubling), reminders arrive the same way, a security
// officer can send again, and every attempt is on record with its cause.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveryRetry } from '../../orchestrations/retry.js';
import { call as api, person as login } from '../support/api.js';
import { type RunningHost, startHost } from '../support/local-host.js';

const OPERATOR_PASSWORD = 'first-start-only-password-42';
const SECONDS = (s: number) => String(s / 3600);
let host: RunningHost;
let officer: string;
let admin: string;
let receiver: Server | undefined;
const received: { type: string; webhookId: string; at: number; body: string; headers: Record<string, string> }[] = [];
const call = (method: string, path: string, auth: string, body?: unknown) => api(host, method, path, auth, body);

async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  return port;
}

function listen(port: number): Promise<Server> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const headers = {
        'webhook-id': String(req.headers['webhook-id']),
        'webhook-timestamp': String(req.headers['webhook-timestamp']),
        'webhook-signature': String(req.headers['webhook-signature']),
      };
      received.push({
        type: (JSON.parse(body) as { type: string }).type,
        webhookId: headers['webhook-id'],
        at: Date.now(),
        body,
        headers,
      });
      res.writeHead(204).end();
    });
  });
  return new Promise((r) => server.listen(port, '127.0.0.1', () => r(server)));
}

type Verify = (...args: unknown[]) => unknown;

/** The verification snippets of docs/webhooks.md, run as a receiver would copy them. */
async function documentedVerifiers(secret: string): Promise<{ withPackage: Verify; withCrypto: Verify }> {
  const blocks = [...readFileSync('docs/webhooks.md', 'utf8').matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const [withPackage, withCrypto] = [
    blocks.find((b) => b.includes("from 'standardwebhooks'")),
    blocks.find((b) => b.includes("from 'node:crypto'")),
  ];
  if (!withPackage || !withCrypto) throw new Error('docs/webhooks.md lost a verification snippet');
  // Inside node_modules so that the snippet's own import of standardwebhooks resolves.
  const dir = mkdtempSync(join('node_modules', '.doc-snippet-'));
  try {
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(join(dir, 'with-package.js'), withPackage);
    writeFileSync(join(dir, 'with-crypto.js'), withCrypto);
    process.env.LABVAULT_WEBHOOK_SECRET = secret;
    const load = async (file: string) =>
      ((await import(pathToFileURL(join(process.cwd(), dir, file)).href)) as { verify: Verify }).verify;
    return { withPackage: await load('with-package.js'), withCrypto: await load('with-crypto.js') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('breach deliveries that a real receiver can rely on', () => {
  beforeAll(async () => {
    host = await startHost({
      env: {
        LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD,
        LABVAULT_WEBHOOK_ALLOW_LOOPBACK: 'true',
        LABVAULT_BREACH_REMINDER_HOURS: SECONDS(85),
        LABVAULT_BREACH_ESCALATION_HOURS: SECONDS(3600),
      },
    });
    officer = await login(host, 'operator', 'operator', OPERATOR_PASSWORD);
    const tenant = await call('POST', '/tenants', officer, {
      id: 'lab-hook',
      name: 'Lab Hook',
      admin: { username: 'admin', email: 'a@lab-hook.example' },
    });
    admin = await login(
      host,
      'lab-hook',
      'admin',
      String((tenant.body.admin as { initialPassword: string }).initialPassword),
    );
  });

  afterAll(async () => {
    await host?.kill();
    receiver?.closeAllConnections();
    receiver?.close();
  });

  it('retries from 10 s, doubling up to an hour, for more than 24 hours', () => {
    const options = deliveryRetry(10);
    expect(options.firstRetryIntervalInMilliseconds).toBe(10_000);
    let total = 0;
    for (
      let attempt = 1, wait = 10_000;
      attempt < options.maxNumberOfAttempts;
      attempt++, wait = Math.min(wait * 2, options.maxRetryIntervalInMilliseconds)
    )
      total += wait;
    expect(total).toBeGreaterThan(24 * 3600_000);
    expect(options.maxRetryIntervalInMilliseconds).toBe(3600_000);
  });

  it('delivers to a receiver that is down for the first minute; reminders come the same way; an officer can send again', async () => {
    const port = await freePort();
    const set = await call('PUT', '/breach-webhook', admin, { url: `http://127.0.0.1:${port}/labvault` });
    expect(set.status).toBe(200);
    const secret = String(set.body.secret);
    const reported = await call('POST', '/breaches', officer, {
      detectedAt: new Date().toISOString(),
      description: 'Webhook reliability drill',
      tenants: ['lab-hook'],
      dataCategories: ['health data'],
      likelyConsequences: 'none',
      measures: 'none',
    });
    const id = String(reported.body.id);
    const t0 = Date.now();
    // Down (nothing listens) for the first minute.
    await new Promise((r) => setTimeout(r, 60_000));
    receiver = await listen(port);
    const deadline = Date.now() + 60_000;
    while (!received.some((r) => r.type === 'breach.notification')) {
      if (Date.now() > deadline) throw new Error('the notification never arrived');
      await new Promise((r) => setTimeout(r, 500));
    }
    const notification = received.find((r) => r.type === 'breach.notification');
    expect((notification?.at ?? 0) - t0).toBeGreaterThan(60_000);
    expect(new Webhook(secret).verify(notification?.body ?? '', notification?.headers ?? {})).toMatchObject({
      data: { breachId: id, sequence: 1 },
    });
    // The snippets of docs/webhooks.md accept it, and refuse it with one character changed.
    const documented = await documentedVerifiers(secret);
    const tampered = (notification?.body ?? '').replace('"sequence":1', '"sequence":2');
    expect(documented.withPackage(notification?.body, notification?.headers)).toMatchObject({ data: { breachId: id } });
    expect(documented.withCrypto(secret, notification?.body, notification?.headers)).toMatchObject({
      data: { breachId: id },
    });
    expect(() => documented.withPackage(tampered, notification?.headers)).toThrow();
    expect(() => documented.withCrypto(secret, tampered, notification?.headers)).toThrow(/signature/);
    const breach = (await call('GET', `/breaches/${id}`, officer)).body;
    const attempts = breach.deliveries as {
      kind: string;
      ok: boolean;
      error?: string;
      httpStatus?: number;
      at: string;
    }[];
    expect(attempts.filter((a) => !a.ok).every((a) => a.error === 'connection')).toBe(true);
    expect(attempts.filter((a) => !a.ok).length).toBeGreaterThanOrEqual(3); // 0 s, 10 s, 30 s: nobody listened
    expect(attempts.filter((a) => a.ok)).toEqual([expect.objectContaining({ kind: 'notification', httpStatus: 204 })]);
    const gaps = attempts.slice(1).map((a, i) => (Date.parse(a.at) - Date.parse(attempts[i]?.at ?? a.at)) / 1000);
    expect(gaps[0]).toBeGreaterThanOrEqual(9);
    expect(gaps[1]).toBeGreaterThanOrEqual(19);

    // The reminder (85 s after awareness) is delivered too, signed the same way.
    while (!received.some((r) => r.type === 'breach.reminder')) {
      if (Date.now() > deadline + 30_000) throw new Error('the reminder never arrived');
      await new Promise((r) => setTimeout(r, 500));
    }
    const reminder = received.find((r) => r.type === 'breach.reminder');
    expect(new Webhook(secret).verify(reminder?.body ?? '', reminder?.headers ?? {})).toMatchObject({
      data: { breachId: id, notificationId: `${id}-1` },
    });

    // Sent again on request: the same message, with the same webhook-id (receivers drop duplicates).
    const before = received.length;
    expect((await call('POST', `/breaches/${id}/deliveries`, officer, {})).body).toEqual({
      deliveries: [{ tenant: 'lab-hook', sequence: 1 }],
    });
    while (received.length === before) await new Promise((r) => setTimeout(r, 200));
    expect(received.at(-1)?.webhookId).toBe(notification?.webhookId);
    expect((await call('POST', `/breaches/${id}/deliveries`, officer, { tenants: ['lab-other'] })).status).toBe(422);
    expect((await call('POST', `/breaches/${id}/deliveries`, admin, {})).status).toBe(403);
  }, 200_000);
});
