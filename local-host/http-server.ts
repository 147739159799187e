import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { HttpResponse, HttpResponseInit } from '@azure/functions';
import { errorFields, type Logger } from '../lib/observability/logger.js';
import { extraInputsOf, type Invoker, invokeDirectly, type Registration } from './core-module.js';
import { type CompiledRoute, compareRoutes, compileRoute, matchPath, pathSegments } from './routes.js';

/** The local host buffers at most this much; the app's own limit (1 MiB) answers below it. */
const HOST_BODY_LIMIT = 8 * 1024 * 1024;

interface HttpFunction {
  registration: Registration;
  route: CompiledRoute;
  methods: Set<string> | undefined;
  triggerName: string;
}

type ExtraHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => Promise<boolean>;

/** The `@azure/functions` library, loaded after the core module was provided. */
export type FunctionsLibrary = typeof import('@azure/functions');

export interface HttpServerOptions {
  logger: Logger;
  library: FunctionsLibrary;
  routePrefix?: string;
  /** Handles paths outside the route prefix (e.g. the durable extension API); true when handled. */
  extra?: ExtraHandler;
  /** Values of input bindings other than the trigger (e.g. the durable client), by binding type. */
  inputBindings?: Record<string, () => unknown>;
  /** How functions are called (the host's, with the app's hooks); directly by default. */
  invoke?: Invoker;
}

function hostProblem(res: ServerResponse, status: number, title: string, detail: string): void {
  const correlationId = randomUUID();
  res.writeHead(status, {
    'Content-Type': 'application/problem+json; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'x-correlation-id': correlationId,
  });
  res.end(
    JSON.stringify({ type: `https://labvault.example/problems/${status}`, title, status, detail, correlationId }),
  );
}

function httpFunctions(registrations: Iterable<Registration>): HttpFunction[] {
  const result: HttpFunction[] = [];
  for (const registration of registrations) {
    const trigger = Object.entries(registration.bindings).find(([, b]) => b.type === 'httpTrigger');
    if (!trigger) continue;
    const [triggerName, binding] = trigger;
    const methods = Array.isArray(binding.methods)
      ? new Set((binding.methods as string[]).map((m) => m.toUpperCase()))
      : undefined;
    result.push({
      registration,
      route: compileRoute(typeof binding.route === 'string' ? binding.route : registration.name),
      methods,
      triggerName,
    });
  }
  return result.sort((a, b) => compareRoutes(a.route, b.route));
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > HOST_BODY_LIMIT) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Serves the app's HTTP functions like `func start`: `/{routePrefix}/{route}`, methods from the
 * binding, the library's own HttpRequest and InvocationContext, and its HttpResponse written back.
 */
export function createHttpServer(registrations: Iterable<Registration>, options: HttpServerOptions): Server {
  const functions = httpFunctions(registrations);
  const prefix = `/${options.routePrefix ?? 'api'}`;
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      if (body === undefined) {
        hostProblem(res, 413, 'Payload Too Large', 'The request body exceeds what the host accepts.');
        req.destroy();
        return;
      }
      const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
      if (options.extra && (await options.extra(req, res, body))) return;
      if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) {
        hostProblem(res, 404, 'Not Found', 'No function serves this path.');
        return;
      }
      const path = url.pathname.slice(prefix.length);
      const method = (req.method ?? 'GET').toUpperCase();
      let target: { fn: HttpFunction; params: Record<string, string> } | undefined;
      let pathMatched = false;
      const segments = pathSegments(path);
      for (const fn of functions) {
        const params = matchPath(fn.route, segments);
        if (!params) continue;
        pathMatched = true;
        if (fn.methods && !fn.methods.has(method)) continue;
        target = { fn, params };
        break;
      }
      if (!target) {
        if (pathMatched) hostProblem(res, 405, 'Method Not Allowed', 'This path does not accept this method.');
        else hostProblem(res, 404, 'Not Found', 'No function serves this path.');
        return;
      }
      await invoke(
        options.library,
        target.fn,
        target.params,
        req,
        url,
        body,
        res,
        options.logger,
        options.inputBindings ?? {},
        options.invoke ?? invokeDirectly,
      );
    })().catch((error: unknown) => {
      options.logger.log('error', 'host.http.failed', errorFields(error));
      if (!res.headersSent) hostProblem(res, 500, 'Internal Server Error', 'The host failed to serve the request.');
      else res.destroy();
    });
  });
  // Longer than clients' idle reuse, so a kept-alive socket is not closed under a request in flight.
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 35_000;
  return server;
}

async function invoke(
  { HttpRequest, HttpResponse, InvocationContext }: FunctionsLibrary,
  fn: HttpFunction,
  params: Record<string, string>,
  req: IncomingMessage,
  url: URL,
  body: Buffer,
  res: ServerResponse,
  logger: Logger,
  inputBindings: Record<string, () => unknown>,
  call: Invoker,
): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  // Like Azure's front end: the address of the connection is appended to what the caller sent, so the
  // right-most entry is the one the platform saw (the app trusts the entries left of it only behind
  // proxies it is told about).
  const seen = req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
  headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${seen}` : seen;
  const request = new HttpRequest({
    method: req.method ?? 'GET',
    url: url.toString(),
    headers,
    query: Object.fromEntries(url.searchParams.entries()),
    params,
    ...(body.length > 0 ? { body: { bytes: body } } : {}),
  });
  const binding = fn.registration.bindings[fn.triggerName];
  const extraInputs = extraInputsOf(fn.registration, fn.triggerName);
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: fn.registration.name,
    triggerMetadata: {},
    options: {
      trigger: { ...(binding as { type: string; name?: string }), name: fn.triggerName } as never,
      extraInputs: extraInputs as never,
      extraOutputs: [],
    },
    logHandler: (level, ...args) => {
      // App code logs through lib/observability; anything logged via context is reduced to its kind.
      logger.log(level === 'error' ? 'error' : level === 'warning' ? 'warn' : 'debug', 'function.log', {
        function: fn.registration.name,
        items: args.length,
      });
    },
  });
  for (const input of extraInputs) {
    const resolve = inputBindings[input.type];
    if (resolve) context.extraInputs.set(input.name, resolve());
  }
  const result = (await call(fn.registration, [request], context, {
    traceparent: headers.traceparent,
    server: true,
    // The route template, never the URL: paths and queries may name records.
    attributes: { 'http.request.method': req.method ?? 'GET', 'http.route': fn.route.template },
  })) as HttpResponseInit | HttpResponse | undefined;
  if (writePlainResponse(result, res)) return;
  const response = result instanceof HttpResponse ? result : new HttpResponse(result ?? { status: 204 });
  const out: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    out[name] = value;
  });
  res.writeHead(response.status, out);
  if (!response.body) {
    res.end();
    return;
  }
  // Streamed, as the Functions host does with HTTP streams: an archive is never held whole in memory.
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
  }
  res.end();
}

/**
 * Writes a plain `HttpResponseInit` with a string or byte body and string headers (what LabVault's
 * routes return, except streams) straight to the socket, as the Functions host serialises a
 * worker's response; anything else (streams, cookies, `jsonBody`, `HttpResponse`) goes through
 * `HttpResponse`. Building a fetch `Response` and reading it back as a stream cost more host CPU per
 * order than the order's encryption.
 */
function writePlainResponse(result: unknown, res: ServerResponse): boolean {
  if (typeof result !== 'object' || result === null || Object.getPrototypeOf(result) !== Object.prototype) return false;
  const init = result as Record<string, unknown>;
  for (const key of Object.keys(init)) if (key !== 'status' && key !== 'headers' && key !== 'body') return false;
  const { status = 200, headers = {}, body } = init as { status?: unknown; headers?: unknown; body?: unknown };
  if (typeof status !== 'number') return false;
  if (typeof headers !== 'object' || headers === null || Object.getPrototypeOf(headers) !== Object.prototype)
    return false;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') return false;
    out[name.toLowerCase()] = value;
  }
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) return false;
  if (body !== undefined && out['content-type'] === undefined && typeof body === 'string')
    out['content-type'] = 'text/plain;charset=UTF-8'; // what a fetch Response sets for a string body
  res.writeHead(status, out);
  res.end(body);
  return true;
}
