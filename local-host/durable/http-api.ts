import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DurableApiError, type DurableClientApi } from './client.js';

export const DURABLE_PREFIX = '/runtime/webhooks/durabletask/';

export interface DurableEndpoints {
  /** The public base (the host's own port); its URLs carry the system key. */
  baseUrl: string;
  /** The host's system key, as the Functions host requires it for the extension's API. */
  systemKey: string;
  /** Where the SDK's own client calls go: a loopback listener of the host's own, behind a per-process path. */
  rpcBaseUrl: string;
}

/** The durable client input binding, as the extension fills it: management URLs with the key, rpcBaseUrl internal. */
export function durableClientBinding(endpoints: DurableEndpoints, taskHub: string): Record<string, unknown> {
  const root = `${endpoints.baseUrl}${DURABLE_PREFIX}`;
  const query = `taskHub=${taskHub}&connection=Storage&code=${encodeURIComponent(endpoints.systemKey)}`;
  const instance = `${root}instances/INSTANCEID`;
  return {
    taskHubName: taskHub,
    creationUrls: {
      createNewInstancePostUri: `${root}orchestrators/{functionName}[/{instanceId}]?${query}`,
      createAndWaitOnNewInstancePostUri: `${root}orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${query}`,
    },
    managementUrls: {
      id: 'INSTANCEID',
      statusQueryGetUri: `${instance}?${query}`,
      sendEventPostUri: `${instance}/raiseEvent/{eventName}?${query}`,
      terminatePostUri: `${instance}/terminate?reason={text}&${query}`,
      rewindPostUri: `${instance}/rewind?reason={text}&${query}`,
      purgeHistoryDeleteUri: `${instance}?${query}`,
      restartPostUri: `${instance}/restart?${query}`,
      suspendPostUri: `${instance}/suspend?reason={text}&${query}`,
      resumePostUri: `${instance}/resume?reason={text}&${query}`,
    },
    baseUrl: root,
    requiredQueryStringParameters: query,
    rpcBaseUrl: endpoints.rpcBaseUrl,
    httpBaseUrl: root,
    maxGrpcMessageSizeInBytes: 0,
    grpcHttpClientTimeout: '00:01:40',
  };
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(text ? { 'Content-Type': 'application/json; charset=utf-8' } : {}),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function bool(value: string | null): boolean | undefined {
  return value === null ? undefined : value.toLowerCase() === 'true';
}

function parseBody(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  return JSON.parse(body.toString('utf8'));
}

/** Whether the request carries the system key (`code` query parameter or `x-functions-key` header). */
function hasKey(req: IncomingMessage, url: URL, systemKey: string): boolean {
  const presented =
    url.searchParams.get('code') ??
    (typeof req.headers['x-functions-key'] === 'string' ? req.headers['x-functions-key'] : '');
  const a = Buffer.from(presented);
  const b = Buffer.from(systemKey);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The extension's HTTP API (start, status, list, raise event, terminate, suspend, resume, purge)
 * with its status codes and body fields. Like the Functions host, it requires the system key on the
 * public port (401 without); the SDK's own calls come through the internal listener (`trusted`).
 * Returns false for paths it does not own.
 */
export function createDurableHttpHandler(
  client: DurableClientApi,
  endpoints: () => DurableEndpoints,
  taskHub: string,
  options: { trusted?: boolean } = {},
) {
  return async (req: IncomingMessage, res: ServerResponse, body: Buffer, pathname?: string): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = pathname ?? url.pathname;
    if (!path.startsWith(DURABLE_PREFIX)) return false;
    if (!options.trusted && !hasKey(req, url, endpoints().systemKey)) {
      send(
        res,
        401,
        { Message: 'The durable task API needs the host system key (code= or x-functions-key).' },
        { 'WWW-Authenticate': 'FunctionsKey' },
      );
      return true;
    }
    const parts = path.slice(DURABLE_PREFIX.length).split('/').filter(Boolean).map(decodeURIComponent);
    const method = (req.method ?? 'GET').toUpperCase();
    const payload = (id: string) => {
      const binding = durableClientBinding(endpoints(), taskHub).managementUrls as Record<string, string>;
      return Object.fromEntries(
        Object.entries(binding)
          .map(([k, v]) => [k, v.replace('INSTANCEID', encodeURIComponent(id))])
          .map(([k, v]) => (k === 'id' ? [k, id] : [k, v])),
      );
    };
    try {
      // What the local host does not run answers 501 with the feature's name, so the SDK's error says it.
      const unsupported =
        parts[0] === 'entities'
          ? 'durable entities'
          : parts[0] === 'instances' && (parts[2] === 'rewind' || parts[2] === 'restart')
            ? `${parts[2]} of an orchestration`
            : undefined;
      if (unsupported) {
        send(res, 501, { Message: `The local host does not support ${unsupported}; Azure's Durable extension does.` });
        return true;
      }
      if (parts[0] === 'orchestrators' && method === 'POST' && parts.length >= 2 && parts.length <= 3) {
        const id = await client.startNew(parts[1] ?? '', parts[2], parseBody(body));
        const links = payload(id);
        send(res, 202, links, { Location: String(links.statusQueryGetUri), 'Retry-After': '1' });
        return true;
      }
      if (parts[0] === 'instances') {
        const id = parts[1];
        const filter = {
          ...(url.searchParams.get('runtimeStatus')
            ? { runtimeStatus: (url.searchParams.get('runtimeStatus') ?? '').split(',').filter(Boolean) }
            : {}),
          ...(url.searchParams.get('createdTimeFrom')
            ? { createdTimeFrom: url.searchParams.get('createdTimeFrom') ?? '' }
            : {}),
          ...(url.searchParams.get('createdTimeTo')
            ? { createdTimeTo: url.searchParams.get('createdTimeTo') ?? '' }
            : {}),
        };
        if (!id && method === 'GET') {
          const all = await client.list({ ...filter, showInput: bool(url.searchParams.get('showInput')) ?? false });
          const top = Number(url.searchParams.get('top') ?? 0);
          send(res, 200, top > 0 ? all.slice(0, top) : all);
          return true;
        }
        if (!id && method === 'DELETE') {
          const deleted = await client.purgeBy(filter);
          send(res, deleted > 0 ? 200 : 404, deleted > 0 ? { instancesDeleted: deleted } : undefined);
          return true;
        }
        if (id && parts.length === 2 && method === 'GET') {
          const status = await client.status(id, {
            showHistory: bool(url.searchParams.get('showHistory')) ?? false,
            showHistoryOutput: bool(url.searchParams.get('showHistoryOutput')) ?? false,
            showInput: bool(url.searchParams.get('showInput')) ?? true,
          });
          if (!status) {
            send(res, 404);
            return true;
          }
          const running = ['Running', 'Pending', 'ContinuedAsNew', 'Suspended'].includes(String(status.runtimeStatus));
          const failedAs500 =
            status.runtimeStatus === 'Failed' &&
            bool(url.searchParams.get('returnInternalServerErrorOnFailure')) === true;
          send(
            res,
            running ? 202 : failedAs500 ? 500 : 200,
            status,
            running ? { Location: `${endpoints().baseUrl}${path}${url.search}` } : {},
          );
          return true;
        }
        if (id && parts.length === 2 && method === 'DELETE') {
          const deleted = await client.purge(id);
          send(res, deleted > 0 ? 200 : 404, deleted > 0 ? { instancesDeleted: deleted } : undefined);
          return true;
        }
        if (id && method === 'POST') {
          const reason = url.searchParams.get('reason') ?? '';
          switch (parts[2]) {
            case 'raiseEvent':
              if (!parts[3]) break;
              await client.raiseEvent(id, parts[3], parseBody(body));
              send(res, 202);
              return true;
            case 'terminate':
              await client.terminate(id, reason);
              send(res, 202);
              return true;
            case 'suspend':
              await client.suspend(id, reason);
              send(res, 202);
              return true;
            case 'resume':
              await client.resume(id, reason);
              send(res, 202);
              return true;
          }
        }
      }
      send(res, 404, { Message: 'No such durable task operation.' });
      return true;
    } catch (error) {
      if (error instanceof DurableApiError) send(res, error.status, { Message: error.message });
      else if (error instanceof SyntaxError) send(res, 400, { Message: 'The body is not valid JSON.' });
      else send(res, 500, { Message: 'The durable task operation failed.' });
      return true;
    }
  };
}
