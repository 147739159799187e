import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blockedRange,
  checkUrl,
  DEFAULT_OUTBOUND_POLICY,
  guardedPost,
  OutboundError,
  type OutboundPolicy,
  pinnedLookup,
  resolveChecked,
} from '../../lib/net/outbound.js';

const reasonOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    if (error instanceof OutboundError) return error.reason;
    throw error;
  }
  return 'accepted';
};
const asyncReasonOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'accepted',
    (error: unknown) => {
      if (error instanceof OutboundError) return error.reason;
      throw error;
    },
  );

describe('the outbound guard: URLs refused before any network', () => {
  const refused: [string, string][] = [
    ['http://hooks.example.com/x', 'scheme'],
    ['ftp://hooks.example.com/x', 'scheme'],
    ['https://user:secret@hooks.example.com/x', 'user-info'],
    ['https://hooks.example.com:8080/x', 'port'],
    ['https://hooks.example.com:22/x', 'port'],
    // The loopback address in its many spellings: the URL parser normalises them all.
    ['https://127.0.0.1/x', 'literal-address'],
    ['https://2130706433/x', 'literal-address'],
    ['https://0x7f000001/x', 'literal-address'],
    ['https://0x7f.1/x', 'literal-address'],
    ['https://0177.0.0.1/x', 'literal-address'],
    ['https://127.1/x', 'literal-address'],
    ['https://[::1]/x', 'literal-address'],
    ['https://[::ffff:127.0.0.1]/x', 'literal-address'],
    ['https://[::ffff:7f00:1]/x', 'literal-address'],
    ['https://[::127.0.0.1]/x', 'literal-address'],
    ['https://[0:0:0:0:0:0:0:1]/x', 'literal-address'],
    ['https://169.254.169.254/latest/meta-data', 'literal-address'],
    ['https://[fd00:ec2::254]/x', 'literal-address'],
    ['https://10.0.0.1/x', 'literal-address'],
    ['https://100.64.0.1/x', 'literal-address'],
    ['https://0.0.0.0/x', 'literal-address'],
    ['https://8.8.8.8/x', 'literal-address'],
    ['https://localhost/x', 'local-name'],
    ['https://localhost./x', 'local-name'],
    ['https://api.localhost/x', 'local-name'],
    ['https://metadata.google.internal/x', 'local-name'],
    ['https://printer.local/x', 'local-name'],
    ['https://intranet/x', 'local-name'],
    ['https://router.home.arpa/x', 'local-name'],
  ];
  for (const [url, reason] of refused) {
    it(`refuses ${url} (${reason})`, () => expect(reasonOf(() => checkUrl(url, DEFAULT_OUTBOUND_POLICY))).toBe(reason));
  }

  it('accepts a public name on 443 and 8443', () => {
    expect(reasonOf(() => checkUrl('https://hooks.lab.example.com/breach', DEFAULT_OUTBOUND_POLICY))).toBe('accepted');
    expect(reasonOf(() => checkUrl('https://hooks.lab.example.com:8443/breach', DEFAULT_OUTBOUND_POLICY))).toBe(
      'accepted',
    );
  });

  it('allows loopback only when told to, and only the two literal addresses', () => {
    const local: OutboundPolicy = { ...DEFAULT_OUTBOUND_POLICY, allowLoopback: true };
    expect(reasonOf(() => checkUrl('http://127.0.0.1:4711/hook', local))).toBe('accepted');
    expect(reasonOf(() => checkUrl('http://[::1]:4711/hook', local))).toBe('accepted');
    expect(reasonOf(() => checkUrl('http://127.0.0.2:4711/hook', local))).toBe('scheme');
    expect(reasonOf(() => checkUrl('http://localhost:4711/hook', local))).toBe('scheme');
    expect(reasonOf(() => checkUrl('https://2130706433:4711/hook', local))).toBe('port');
    expect(reasonOf(() => checkUrl('https://127.0.0.1/hook', local))).toBe('literal-address');
    expect(reasonOf(() => checkUrl('http://0x7f.0.0.1:4711/hook', local))).toBe('scheme');
    expect(reasonOf(() => checkUrl('http://127.0.0.1:4711/hook', DEFAULT_OUTBOUND_POLICY))).toBe('scheme');
  });
});

describe('the outbound guard: every resolved address is checked', () => {
  it('classifies non-public ranges, IPv4-mapped and IPv4-compatible IPv6 included', () => {
    for (const address of [
      '127.0.0.1',
      '10.2.3.4',
      '172.16.0.1',
      '192.168.0.1',
      '169.254.169.254',
      '100.64.1.1',
      '224.0.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fc00::1',
      'ff02::1',
      '::ffff:10.0.0.1',
      '::ffff:169.254.169.254',
      '::7f00:1',
      '::a00:1',
      '64:ff9b::a00:1',
    ]) {
      expect(blockedRange(address), address).toBeDefined();
    }
    for (const address of ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c', '::ffff:93.184.215.14'])
      expect(blockedRange(address), address).toBeUndefined();
  });

  it('refuses a name when any address it resolves to is not public (a rebinding-ready record)', async () => {
    const resolving = (addresses: string[]): OutboundPolicy => ({
      ...DEFAULT_OUTBOUND_POLICY,
      resolve: async () => addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    });
    const url = new URL('https://hooks.lab.example.com/x');
    expect(await asyncReasonOf(resolveChecked(url, resolving(['93.184.215.14', '10.0.0.7'])))).toBe('blocked-address');
    expect(await asyncReasonOf(resolveChecked(url, resolving(['::ffff:127.0.0.1'])))).toBe('blocked-address');
    expect(await asyncReasonOf(resolveChecked(url, resolving([])))).toBe('dns');
    expect(
      await asyncReasonOf(
        resolveChecked(url, { ...DEFAULT_OUTBOUND_POLICY, resolve: () => Promise.reject(new Error('ENOTFOUND')) }),
      ),
    ).toBe('dns');
    expect((await resolveChecked(url, resolving(['93.184.215.14']))).address).toBe('93.184.215.14');
  });

  it('resolves once per call: the connection uses the address that was checked', async () => {
    let lookups = 0;
    const policy: OutboundPolicy = {
      ...DEFAULT_OUTBOUND_POLICY,
      timeoutMs: 500,
      resolve: async () => {
        lookups++;
        return [{ address: '192.0.2.1', family: 4 }]; // TEST-NET: refused, so nothing is sent
      },
    };
    expect(
      await asyncReasonOf(guardedPost('https://hooks.lab.example.com/x', { headers: {}, body: '{}' }, policy)),
    ).toBe('blocked-address');
    expect(lookups).toBe(1);
  });
});

describe('the outbound guard on the wire (loopback allowed, as in tests)', () => {
  let server: Server;
  let port = 0;
  let target: Server;
  let targetHits = 0;
  const local: OutboundPolicy = {
    ...DEFAULT_OUTBOUND_POLICY,
    allowLoopback: true,
    maxResponseBytes: 1024,
    timeoutMs: 800,
  };

  beforeAll(async () => {
    target = createServer((_req, res) => {
      targetHits++;
      res.end('internal secret');
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
    const targetPort = (target.address() as AddressInfo).port;
    server = createServer((req, res) => {
      if (req.url === '/redirect') res.writeHead(302, { location: `http://127.0.0.1:${targetPort}/` }).end();
      else if (req.url === '/huge') res.end(Buffer.alloc(10_000, 120));
      else if (req.url === '/slow') setTimeout(() => res.end('late'), 2000);
      else res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    target.closeAllConnections();
    await new Promise((r) => server.close(r));
    await new Promise((r) => target.close(r));
  });

  it('posts and reads a bounded answer', async () => {
    expect(
      await guardedPost(
        `http://127.0.0.1:${port}/ok`,
        { headers: { 'content-type': 'application/json' }, body: '{}' },
        local,
      ),
    ).toMatchObject({ status: 200 });
  });

  it('never follows a redirect: a 3xx is a failure and the target is never contacted', async () => {
    expect(
      await asyncReasonOf(guardedPost(`http://127.0.0.1:${port}/redirect`, { headers: {}, body: '{}' }, local)),
    ).toBe('redirect');
    expect(targetHits).toBe(0);
  });

  it('bounds the answer in size and time', async () => {
    expect(await asyncReasonOf(guardedPost(`http://127.0.0.1:${port}/huge`, { headers: {}, body: '{}' }, local))).toBe(
      'too-large',
    );
    const t0 = Date.now();
    expect(await asyncReasonOf(guardedPost(`http://127.0.0.1:${port}/slow`, { headers: {}, body: '{}' }, local))).toBe(
      'timeout',
    );
    expect(Date.now() - t0).toBeLessThan(1800);
  });

  it('pins the connection: a host name is dialled at the pinned address, whatever DNS would say', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          hostname: 'rebinding.attacker.example',
          port,
          path: '/ok',
          lookup: pinnedLookup({ address: '127.0.0.1', family: 4 }),
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
  });
});
