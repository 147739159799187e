import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * The one way LabVault calls out (breach webhooks today, anything later): a URL a tenant gave us
 * must never reach our own insides — the instance metadata service, storage, the local host's
 * management API, a neighbour in the virtual network. So: https only, no user info, a short list of
 * ports; the host name is resolved once, every address it resolves to must be a public unicast
 * address, and the connection goes to exactly the address that was checked (no second lookup a DNS
 * rebinding could answer differently). Redirects are never followed; answers are bounded in size
 * and time.
 */

export type RefusalReason =
  | 'scheme'
  | 'user-info'
  | 'port'
  | 'literal-address'
  | 'local-name'
  | 'blocked-address'
  | 'dns'
  | 'redirect'
  | 'too-large'
  | 'timeout'
  | 'connection';

/** A call the guard refused or that failed on the way: `reason` is safe to record (no secrets, no URL). */
export class OutboundError extends Error {
  override name = 'OutboundError';
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

export interface OutboundPolicy {
  /** Ports a URL may name (443 and 8443 unless configured). */
  allowedPorts: readonly number[];
  /** Tests only: http(s) to the literal 127.0.0.1 and [::1] on any port; nothing else. */
  allowLoopback: boolean;
  maxResponseBytes: number;
  timeoutMs: number;
  /** DNS resolution (all addresses); replaceable so tests can play a resolver. */
  resolve?: (hostname: string) => Promise<LookupAddress[]>;
}

export const DEFAULT_OUTBOUND_POLICY: OutboundPolicy = {
  allowedPorts: [443, 8443],
  allowLoopback: false,
  maxResponseBytes: 64 * 1024,
  timeoutMs: 10_000,
};

// Names that only mean something inside a network: never a customer's public endpoint.
const LOCAL_NAME =
  /(^|\.)(localhost|local|localdomain|internal|intranet|lan|home|corp|private|home\.arpa|test|invalid)$/;

const LOOPBACK_LITERALS = new Set(['127.0.0.1', '::1']);
const LOOPBACK_URL = /^http:\/\/(?:127\.0\.0\.1|\[::1\]):\d{1,5}(?:[/?#]|$)/i;

/** Why an address is not a public unicast one (undefined: it is). Every numeric spelling arrives here parsed. */
export function blockedRange(address: string): string | undefined {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return 'unparsable';
  }
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    // IPv4-mapped (::ffff:a.b.c.d) is judged as the IPv4 address it carries.
    if (v6.isIPv4MappedAddress()) return blockedRange(v6.toIPv4Address().toString()) ?? undefined;
    // IPv4-compatible (::a.b.c.d, deprecated) reaches IPv4 space too: never allowed.
    const parts = v6.parts;
    if (parts.slice(0, 6).every((p) => p === 0)) return 'ipv4Compatible';
  }
  const range = parsed.range();
  return range === 'unicast' ? undefined : range;
}

function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/**
 * The checks that need no network: scheme, user info, port, literal addresses and local names.
 * Configuration uses these to refuse a URL at once (422); delivery repeats them.
 */
export function checkUrl(raw: string, policy: OutboundPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new OutboundError('scheme', 'not a URL');
  }
  const host = hostOf(url);
  // Exactly http://127.0.0.1:<port> or http://[::1]:<port> as written: no other spelling of them.
  const loopbackAllowed = policy.allowLoopback && LOOPBACK_URL.test(raw);
  if (url.username !== '' || url.password !== '')
    throw new OutboundError('user-info', 'URLs with user info are refused');
  if (loopbackAllowed) return url;
  if (url.protocol !== 'https:') throw new OutboundError('scheme', 'only https is allowed');
  const port = url.port === '' ? 443 : Number(url.port);
  if (!policy.allowedPorts.includes(port))
    throw new OutboundError('port', `port ${port} is not allowed (${policy.allowedPorts.join(', ')})`);
  // The URL parser already turned 2130706433, 0x7f.1, 0177.0.0.1 and 127.1 into 127.0.0.1.
  if (isIP(host) !== 0)
    throw new OutboundError('literal-address', 'literal IP addresses are refused; use a public host name');
  const name = host.toLowerCase().replace(/\.$/, '');
  if (!name.includes('.') || LOCAL_NAME.test(name))
    throw new OutboundError('local-name', 'local host names are refused');
  return url;
}

const systemResolve = (hostname: string): Promise<LookupAddress[]> =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses),
    ),
  );

/**
 * Resolves the URL's host once and checks every address. Returns the address to connect to, or
 * throws. A name that does not resolve is a `dns` failure (configuration accepts it, delivery fails).
 */
export async function resolveChecked(url: URL, policy: OutboundPolicy): Promise<LookupAddress> {
  const host = hostOf(url);
  if (policy.allowLoopback && LOOPBACK_LITERALS.has(host)) return { address: host, family: isIP(host) };
  let addresses: LookupAddress[];
  try {
    addresses = await (policy.resolve ?? systemResolve)(host);
  } catch {
    throw new OutboundError('dns', 'the host name does not resolve');
  }
  if (addresses.length === 0) throw new OutboundError('dns', 'the host name does not resolve');
  for (const a of addresses) {
    const range = blockedRange(a.address);
    if (range) throw new OutboundError('blocked-address', `the host name resolves to a non-public address (${range})`);
  }
  return addresses[0] as LookupAddress;
}

/** A lookup that answers every question with the address that was checked (no second resolution). */
export function pinnedLookup(target: LookupAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all)
      (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, [target]);
    else callback(null, target.address, target.family);
  };
}

export interface OutboundResponse {
  status: number;
  /** At most policy.maxResponseBytes of the body. */
  body: Buffer;
}

/**
 * POSTs `body` to the URL through the guard. Any 3xx is a failure (`redirect`), never followed.
 * The socket connects to the checked address; TLS still verifies the certificate for the host name.
 */
export async function guardedPost(
  raw: string,
  init: { headers: Record<string, string>; body: string; signal?: AbortSignal },
  policy: OutboundPolicy = DEFAULT_OUTBOUND_POLICY,
): Promise<OutboundResponse> {
  const url = checkUrl(raw, policy);
  const target = await resolveChecked(url, policy);
  const pinned = pinnedLookup(target);
  const options: RequestOptions = {
    method: 'POST',
    hostname: hostOf(url),
    port: url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers: { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) },
    lookup: pinned,
    agent: false,
    timeout: policy.timeoutMs,
    ...(init.signal ? { signal: init.signal } : {}),
  };
  return new Promise<OutboundResponse>((resolve, reject) => {
    const fail = (error: OutboundError): void => {
      clearTimeout(deadline);
      req.destroy();
      reject(error);
    };
    const deadline = setTimeout(
      () => fail(new OutboundError('timeout', `no complete answer within ${policy.timeoutMs} ms`)),
      policy.timeoutMs,
    );
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(options, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        fail(new OutboundError('redirect', `answered ${status}: redirects are not followed`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > policy.maxResponseBytes) {
          fail(new OutboundError('too-large', `the answer exceeds ${policy.maxResponseBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(deadline);
        resolve({ status, body: Buffer.concat(chunks) });
      });
      res.on('error', () => fail(new OutboundError('connection', 'the connection broke while answering')));
    });
    req.on('timeout', () => fail(new OutboundError('timeout', `no answer within ${policy.timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error instanceof OutboundError) return;
      fail(new OutboundError('connection', `the connection failed (${error.code ?? 'error'})`));
    });
    req.end(init.body);
  });
}
