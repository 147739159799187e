// A tenant points its breach webhook at our insides: every spelling of an internal address is
// refused when configured, and what is accepted is checked again when delivered (redirects never
// followed, a name that does not resolve fails the delivery with its cause recorded).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call as api, person as login } from '../support/api.js';
import { type RunningHost, startHost } from '../support/local-host.js';

const OPERATOR_PASSWORD = 'first-start-only-password-42';
let host: RunningHost;
let admin: string;
let officer: string;
let redirector: Server;
let internal: Server;
let internalHits = 0;
const call = (method: string, path: string, auth: string, body?: unknown) => api(host, method, path, auth, body);

describe('outbound calls cannot be pointed inside', () => {
  beforeAll(async () => {
    internal = createServer((_req, res) => {
      internalHits++;
      res.end('{"secret":"instance metadata"}');
    });
    await new Promise<void>((r) => internal.listen(0, '127.0.0.1', () => r()));
    const internalPort = (internal.address() as AddressInfo).port;
    redirector = createServer((req, res) => {
      req.resume();
      res.writeHead(307, { location: `http://127.0.0.1:${internalPort}/latest/meta-data` }).end();
    });
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', () => r()));
    host = await startHost({
      env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD, LABVAULT_WEBHOOK_ALLOW_LOOPBACK: 'true' },
    });
    officer = await login(host, 'operator', 'operator', OPERATOR_PASSWORD);
    const tenant = await call('POST', '/tenants', officer, {
      id: 'lab-ssrf',
      name: 'Lab SSRF',
      admin: { username: 'admin', email: 'a@lab-ssrf.example' },
    });
    admin = await login(
      host,
      'lab-ssrf',
      'admin',
      String((tenant.body.admin as { initialPassword: string }).initialPassword),
    );
  });

  afterAll(async () => {
    await host?.kill();
    redirector.closeAllConnections();
    internal.closeAllConnections();
    redirector.close();
    internal.close();
  });

  it('refuses internal targets in their many spellings at once, with 422, and keeps the old webhook', async () => {
    const root = new URL(host.apiBaseUrl);
    const targets = [
      'https://169.254.169.254/latest/meta-data/',
      'https://[fd00:ec2::254]/',
      'https://2130706433/',
      'https://0x7f.0.0.1/',
      'https://0177.0.0.01/',
      'https://127.1/',
      'https://[::ffff:127.0.0.1]/',
      'https://[::127.0.0.1]/',
      'https://10.0.0.1/',
      'https://192.168.1.10/',
      'https://100.64.0.1/',
      'https://[fe80::1]/',
      'https://0.0.0.0/',
      'https://localhost/hook',
      'https://localhost./hook',
      'https://storage.internal/hook',
      'https://devstoreaccount1/hook',
      // Our own management API, even on the allowed loopback address: other paths than http(s) to 127.0.0.1 / ::1 are refused,
      `http://localhost:${root.port}/runtime/webhooks/durabletask/instances`,
      `http://127.0.0.2:${root.port}/`,
      'http://hooks.lab.example.com/breach',
      'https://hooks.lab.example.com:22/breach',
      'https://user:password@hooks.lab.example.com/breach',
    ];
    const answers: Record<string, number> = {};
    for (const url of targets) answers[url] = (await call('PUT', '/breach-webhook', admin, { url })).status;
    expect(Object.entries(answers).filter(([, status]) => status !== 422)).toEqual([]);
    const audit = (await call('GET', '/audit?action=breach.webhook.set', admin)).body.items as unknown[];
    expect(audit).toHaveLength(0);
  });

  it('accepts a public name that does not resolve now, and fails its delivery with the cause recorded', async () => {
    expect(
      (await call('PUT', '/breach-webhook', admin, { url: 'https://breach-hooks.lab-ssrf.example/labvault' })).status,
    ).toBe(200);
    const breach = await report();
    const deliveries = await deliveriesOf(breach);
    expect(deliveries.length).toBeGreaterThan(0);
    expect(deliveries.every((d) => d.ok === false && d.error === 'dns')).toBe(true);
  });

  it('never follows a redirect, not even from an allowed receiver; the target behind it is never reached', async () => {
    const port = (redirector.address() as AddressInfo).port;
    expect((await call('PUT', '/breach-webhook', admin, { url: `http://127.0.0.1:${port}/hook` })).status).toBe(200);
    const breach = await report();
    const deliveries = await deliveriesOf(breach);
    expect(deliveries.every((d) => d.ok === false && d.error === 'redirect')).toBe(true);
    expect(internalHits).toBe(0);
  });
});

async function report(): Promise<string> {
  const reported = await call('POST', '/breaches', officer, {
    detectedAt: new Date().toISOString(),
    description: 'Test breach for outbound checks',
    tenants: ['lab-ssrf'],
    dataCategories: ['health data'],
    likelyConsequences: 'none',
    measures: 'none',
  });
  expect(reported.status).toBe(202);
  return String(reported.body.id);
}

async function deliveriesOf(breach: string): Promise<{ ok: boolean; error?: string }[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const deliveries = ((await call('GET', `/breaches/${breach}`, officer)).body.deliveries ?? []) as {
      ok: boolean;
      error?: string;
    }[];
    if (deliveries.length > 0) return deliveries;
    if (Date.now() > deadline) throw new Error('no delivery attempt recorded');
    await new Promise((r) => setTimeout(r, 250));
  }
}
