import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../../local-host/azurite.js';

/**
 * What can go wrong between LabVault and storage:
 * - `503`, `500`: the service refuses the request (nothing applied);
 * - `reset`: the connection drops before the request reaches the service (nothing applied);
 * - `lost-response`: the service applies the request, then the connection drops before the answer
 *   arrives, so the caller cannot know it succeeded (the case that breaks naive retries);
 * - `timeout`: no answer for a few seconds, then the connection drops (nothing applied);
 * - `slow`: the answer arrives, late.
 */
type FaultKind = '503' | '500' | 'reset' | 'lost-response' | 'timeout' | 'slow';
const FAULT_KINDS: readonly FaultKind[] = ['503', '500', 'reset', 'lost-response', 'timeout', 'slow'];

interface FaultSettings {
  /** Share of requests that get a fault, 0..1. */
  rate: number;
  kinds?: readonly FaultKind[];
  timeoutMs?: number;
  slowMs?: number;
  /** Only requests of these kinds get faults (as `requestsByKind` names them); every request when unset. */
  only?: (requestKind: string) => boolean;
  /** How many faults to inject before passing everything again; no limit when unset. */
  times?: number;
}

export interface FaultProxy {
  /** A connection string to Azurite through the proxy (all three services). */
  readonly connectionString: string;
  set(settings: FaultSettings): void;
  /** Requests seen, and faults injected by kind. */
  stats(): { requests: number; faults: Record<FaultKind, number> };
  /**
   * Requests seen by service, method and resource (`table GET tenantdata(key) orders`: a point read
   * in an `orders` partition; `table POST $batch`: a transaction), for counting round trips.
   */
  requestsByKind(): Map<string, number>;
  close(): Promise<void>;
}

const ERROR_BODY = (status: number) =>
  `<?xml version="1.0" encoding="utf-8"?><Error><Code>${status === 503 ? 'ServerBusy' : 'InternalError'}</Code><Message>Injected fault.</Message></Error>`;

/**
 * An HTTP proxy in front of each Azurite service that injects faults into a share of the requests,
 * chosen at random. Tests start LabVault against `connectionString` and look at storage directly.
 */
export async function startFaultProxy(
  ports: { blob: number; queue: number; table: number },
  random: () => number = Math.random,
): Promise<FaultProxy> {
  let settings: FaultSettings & Required<Pick<FaultSettings, 'kinds' | 'timeoutMs' | 'slowMs'>> = {
    rate: 0,
    kinds: FAULT_KINDS,
    timeoutMs: 3000,
    slowMs: 400,
  };
  let requests = 0;
  const byKind = new Map<string, number>();
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const servers: Server[] = [];

  const forward = (
    upstreamPort: number,
    req: IncomingMessage,
    res: ServerResponse,
    onResponse: (upstream: IncomingMessage) => void,
  ): void => {
    const upstream = request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
      onResponse,
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };

  const serve = (service: string, upstreamPort: number) => (req: IncomingMessage, res: ServerResponse) => {
    requests++;
    const kind = `${service} ${req.method ?? ''} ${requestResource(req.url ?? '')}`;
    byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
    const eligible = (settings.only?.(kind) ?? true) && (settings.times ?? 1) > 0;
    const fault =
      eligible && random() < settings.rate ? settings.kinds[Math.floor(random() * settings.kinds.length)] : undefined;
    if (fault) {
      faults[fault]++;
      if (settings.times !== undefined) settings.times--;
    }
    const pass = (upstream: IncomingMessage) => {
      res.writeHead(upstream.statusCode ?? 502, upstream.headers);
      upstream.pipe(res);
    };
    switch (fault) {
      case '503':
      case '500':
        req.resume();
        res.writeHead(Number(fault), {
          'content-type': 'application/xml',
          'x-ms-error-code': fault === '503' ? 'ServerBusy' : 'InternalError',
        });
        res.end(ERROR_BODY(Number(fault)));
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'timeout':
        req.resume();
        setTimeout(() => req.socket.destroy(), settings.timeoutMs);
        return;
      case 'lost-response':
        forward(upstreamPort, req, res, (upstream) => {
          upstream.resume();
          upstream.on('end', () => req.socket.destroy());
        });
        return;
      case 'slow':
        forward(upstreamPort, req, res, (upstream) =>
          setTimeout(() => pass(upstream), settings.slowMs * (0.5 + random())),
        );
        return;
      default:
        forward(upstreamPort, req, res, pass);
    }
  };

  const listen = async (service: string, upstreamPort: number): Promise<number> => {
    const server = createServer(serve(service, upstreamPort));
    server.keepAliveTimeout = 5000;
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const proxied = {
    blob: await listen('blob', ports.blob),
    queue: await listen('queue', ports.queue),
    table: await listen('table', ports.table),
  };
  const host = 'http://127.0.0.1';
  return {
    connectionString: [
      'DefaultEndpointsProtocol=http',
      `AccountName=${AZURITE_ACCOUNT}`,
      `AccountKey=${AZURITE_KEY}`,
      `BlobEndpoint=${host}:${proxied.blob}/${AZURITE_ACCOUNT}`,
      `QueueEndpoint=${host}:${proxied.queue}/${AZURITE_ACCOUNT}`,
      `TableEndpoint=${host}:${proxied.table}/${AZURITE_ACCOUNT}`,
    ].join(';'),
    set(next) {
      // Each call states the whole fault plan: a filter or budget of an earlier call does not linger.
      settings = {
        timeoutMs: settings.timeoutMs,
        slowMs: settings.slowMs,
        ...next,
        kinds: next.kinds ?? FAULT_KINDS,
      };
    },
    stats: () => ({ requests, faults: { ...faults } }),
    requestsByKind: () => new Map(byKind),
    close: async () => {
      for (const server of servers) server.closeAllConnections();
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}

/**
 * `/devstoreaccount1/tenantdata(PartitionKey='t~orders~a',RowKey='x')?…` → `tenantdata(key) orders`;
 * `/devstoreaccount1/uploads/a/b.jpg?comp=block` → `uploads comp=block`. No ids, so kinds add up.
 */
function requestResource(url: string): string {
  const [path = '', query = ''] = url.split('?');
  const resource = decodeURIComponent(path.split('/')[2] ?? '');
  const area = /PartitionKey='[^~']*~([^~']*)/.exec(resource)?.[1];
  const comp = /(?:^|&)comp=([a-z]+)/.exec(query)?.[1];
  return [resource.replace(/\(.+\)/, '(key)'), area, comp && `comp=${comp}`].filter(Boolean).join(' ');
}
