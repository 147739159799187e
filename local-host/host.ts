import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { TableServiceClient } from '@azure/data-tables';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseConfig } from '../lib/config.js';
import { createLogger, type Logger } from '../lib/observability/logger.js';
import { startAzurite } from './azurite.js';
import {
  installCoreModule,
  invokeFunction,
  type Invoker,
  type Registration,
  runAppStartHooks,
  runAppTerminateHooks,
} from './core-module.js';
import { createStorageClients } from '../lib/storage/clients.js';
import {
  createDurableHttpHandler,
  DURABLE_PREFIX,
  type DurableEndpoints,
  durableClientBinding,
} from './durable/http-api.js';
import { DurableRuntime } from './durable/runtime.js';
import { TaskHubStore } from './durable/store.js';
import { createHttpServer, type FunctionsLibrary } from './http-server.js';
import { type BlobEventSubscription, BlobWatcher } from './blob-watcher.js';
import { TimerHost } from './timers.js';

interface LocalHostInfo {
  apiBaseUrl: string;
  /** The durable task API's base URL on the public port (needs the system key of host-keys.json). */
  durableBaseUrl?: string;
  storageConnectionString: string;
  pid: number;
  azuritePid?: number;
}

export interface LocalHost extends LocalHostInfo {
  /** Where the host keeps Azurite's data, the local key store and its own files. */
  dataDir: string;
  registrations: Registration[];
  /** The key the durable task API requires (code= or x-functions-key). */
  systemKey: string;
  close(): Promise<void>;
}

export interface LocalHostOptions {
  /** The app's settings; defaults to process.env over local.settings.json's Values. */
  env?: Record<string, string | undefined>;
  /** The app's entry (the package's "main"), which registers every function when imported; a file URL or path. */
  entry: string;
  /** The Event Grid subscriptions Bicep declares, for the local host to feed with blob events. */
  eventSubscriptions?: readonly BlobEventSubscription[];
  logger?: Logger;
}

const LOCAL_HOST_FILE = 'local-host.json';
/** The host's keys, per data directory (as the Functions host keeps them in its storage). */
const HOST_KEYS_FILE = 'host-keys.json';

/** The system key of this data directory: made on first start, kept for later ones. */
async function hostSystemKey(dataDir: string): Promise<string> {
  const path = join(dataDir, HOST_KEYS_FILE);
  try {
    const stored = JSON.parse(await readFile(path, 'utf8')) as { systemKey?: string };
    if (stored.systemKey && /^[A-Za-z0-9_-]{32,}$/.test(stored.systemKey)) return stored.systemKey;
  } catch {
    // first start in this folder
  }
  const systemKey = randomBytes(32).toString('base64url');
  await writeFile(path, JSON.stringify({ systemKey }, null, 2), { mode: 0o600 });
  return systemKey;
}

/**
 * The listener the SDK's own client calls go to (the binding's rpcBaseUrl): loopback only, on a port
 * of its own, under a random path known only to this process. It needs no key; nothing else can
 * name it, and a request that reaches the public port must carry the system key.
 */
async function startInternalDurableListener(
  handler: (req: IncomingMessage, res: ServerResponse, body: Buffer, pathname?: string) => Promise<boolean>,
): Promise<{ rpcBaseUrl: string; close(): Promise<void> }> {
  const secretPath = `/${randomBytes(24).toString('base64url')}`;
  const server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
      const pathname = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      if (
        !pathname.startsWith(`${secretPath}/`) ||
        !(await handler(req, res, Buffer.concat(chunks), pathname.slice(secretPath.length)))
      ) {
        res.writeHead(404).end();
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;
  return {
    rpcBaseUrl: `http://127.0.0.1:${port}${secretPath}${DURABLE_PREFIX}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** process.env wins over local.settings.json, as with `func start`. */
export function localSettings(cwd = process.cwd()): Record<string, string | undefined> {
  const path = join(cwd, 'local.settings.json');
  const values = existsSync(path)
    ? ((JSON.parse(readFileSync(path, 'utf8')) as { Values?: Record<string, string> }).Values ?? {})
    : {};
  return { ...values, ...process.env };
}

async function reusableAzurite(
  infoPath: string,
): Promise<{ connectionString: string; pid: number; stop(): Promise<void> } | undefined> {
  let previous: Partial<LocalHostInfo>;
  try {
    previous = JSON.parse(await readFile(infoPath, 'utf8')) as Partial<LocalHostInfo>;
  } catch {
    return undefined;
  }
  const pid = previous.azuritePid;
  if (!pid || !previous.storageConnectionString || !alive(pid)) return undefined;
  try {
    await TableServiceClient.fromConnectionString(previous.storageConnectionString, {
      allowInsecureConnection: true,
    }).getProperties({ abortSignal: AbortSignal.timeout(3000) });
  } catch {
    process.kill(pid, 'SIGTERM');
    return undefined;
  }
  return {
    connectionString: previous.storageConnectionString,
    pid,
    async stop() {
      if (!alive(pid)) return;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the embedded host: Azurite (unless AzureWebJobsStorage is set), the app's function
 * registrations through the provided `@azure/functions-core`, and the HTTP server on PORT.
 * Writes `${LABVAULT_DATA_DIR}/local-host.json` once it serves.
 */
export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const env = { ...(options.env ?? localSettings()) };
  const logger = options.logger ?? createLogger();
  const dataDir = resolve(env.LABVAULT_DATA_DIR || '.labvault');
  env.LABVAULT_DATA_DIR = dataDir;
  env.LABVAULT_KEY_PROVIDER ??= 'local';
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const infoPath = join(dataDir, LOCAL_HOST_FILE);
  // Whatever starts is stopped again, in reverse order, when a later step fails: no orphaned Azurite.
  const started: (() => Promise<void>)[] = [];
  const stopStarted = async (): Promise<void> => {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
  };
  try {
    // A host killed hard leaves its Azurite running, with the latest data in its memory: reuse it.
    let azurite: { connectionString: string; pid: number; stop(): Promise<void> } | undefined;
    if (!env.AzureWebJobsStorage && !env.AzureWebJobsStorage__accountName) {
      azurite = (await reusableAzurite(infoPath)) ?? (await startAzuriteForDataDir(dataDir));
      env.AzureWebJobsStorage = azurite.connectionString;
      const running = azurite;
      started.push(() => running.stop());
    }
    await rm(infoPath, { force: true });
    parseConfig(env);
    // The app reads its settings from process.env, as on Azure.
    for (const [key, value] of Object.entries(env)) if (value !== undefined) process.env[key] = value;

    const core = installCoreModule();
    // Loaded only now, so the library finds the core module (a static import would run first).
    const library = createRequire(import.meta.url)('@azure/functions') as FunctionsLibrary;
    await import(toImportSpecifier(options.entry));
    // Tests add their own functions (small orchestrations that are not part of the product).
    if (env.LABVAULT_LOCAL_EXTRA_ENTRY) await import(toImportSpecifier(env.LABVAULT_LOCAL_EXTRA_ENTRY));
    const registrations = [...core.registrations.values()];
    const invoke: Invoker = (registration, inputs, context, traced) =>
      invokeFunction(core, registration, inputs, context, traced);
    // As the worker does once the app is loaded, before any invocation (the app bootstraps its operator there).
    await runAppStartHooks(core, process.cwd());
    started.push(() => runAppTerminateHooks(core));

    const config = parseConfig(env);
    const storage = createStorageClients(config.storage);
    const durable = new DurableRuntime({
      store: new TaskHubStore({
        taskHub: config.taskHub,
        table: storage.table,
        tableService: storage.tableService,
        queueService: storage.queueService,
      }),
      registrations,
      library,
      invoke,
      logger,
      maxConcurrentActivities: Number(env.LABVAULT_DURABLE_MAX_ACTIVITIES || 16),
      leaseSeconds: Number(env.LABVAULT_DURABLE_LEASE_SECONDS || 30),
      // Resolved at each call: the endpoints are known once the HTTP server listens.
      inputBindings: { durableClient: () => durableClientBinding(endpoints, config.taskHub) },
    });
    const systemKey = env.LABVAULT_DURABLE_SYSTEM_KEY || (await hostSystemKey(dataDir));
    const endpoints: DurableEndpoints = { baseUrl: '', systemKey, rpcBaseUrl: '' };
    const internal = await startInternalDurableListener(
      createDurableHttpHandler(durable.client, () => endpoints, config.taskHub, { trusted: true }),
    );
    started.push(() => internal.close());
    endpoints.rpcBaseUrl = internal.rpcBaseUrl;
    const server = createHttpServer(registrations, {
      logger,
      library,
      invoke,
      extra: createDurableHttpHandler(durable.client, () => endpoints, config.taskHub),
      inputBindings: { durableClient: () => durableClientBinding(endpoints, config.taskHub) },
    });
    const port = Number(env.PORT ?? 7071);
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'EADDRINUSE' ? new PortInUseError(port) : error),
      );
      server.listen(port, '127.0.0.1', () => resolveListen());
    });
    started.push(async () => {
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
    });
    const address = server.address() as AddressInfo;
    endpoints.baseUrl = `http://127.0.0.1:${address.port}`;
    // As on Azure: the SDK keeps the extension's URLs only when it knows the app's host name.
    process.env.WEBSITE_HOSTNAME = `127.0.0.1:${address.port}`;
    await durable.start();
    started.push(() => durable.stop());
    const timers = new TimerHost({
      // As the Functions host does: the app setting `AzureWebJobs.<name>.Disabled=true` keeps a
      // function's trigger from firing (tests turn off a schedule that would race what they measure).
      registrations: registrations.filter((r) => env[`AzureWebJobs.${r.name}.Disabled`] !== 'true'),
      library,
      invoke,
      logger,
      table: storage.table(`${config.taskHub}Timers`),
      inputBindings: { durableClient: () => durableClientBinding(endpoints, config.taskHub) },
    });
    await timers.start();
    started.push(() => timers.stop());
    const blobs = new BlobWatcher({
      registrations,
      library,
      invoke,
      logger,
      blobService: storage.blobService,
      queueService: storage.queueService,
      receipts: storage.table(`${config.taskHub}BlobReceipts`),
      subscriptions: options.eventSubscriptions ?? [],
    });
    await blobs.start();
    server.on('request', () => blobs.wake());
    started.push(() => blobs.stop());
    const info: LocalHostInfo = {
      apiBaseUrl: `http://127.0.0.1:${address.port}/api`,
      durableBaseUrl: `http://127.0.0.1:${address.port}${DURABLE_PREFIX}`,
      storageConnectionString: env.AzureWebJobsStorage ?? '',
      pid: process.pid,
      ...(azurite ? { azuritePid: azurite.pid } : {}),
    };
    // Written aside and renamed, so a reader never sees half a file.
    await writeFile(`${infoPath}.tmp`, JSON.stringify(info, null, 2), { mode: 0o600 });
    await rename(`${infoPath}.tmp`, infoPath);
    started.push(() => rm(infoPath, { force: true }));

    return {
      ...info,
      dataDir,
      registrations,
      systemKey,
      close: stopStarted,
    };
  } catch (error) {
    await stopStarted();
    throw error;
  }
}

function toImportSpecifier(entry: string): string {
  return entry.startsWith('file:') ? entry : pathToFileURL(resolve(entry)).href;
}

/** The port the host should listen on is taken (by another host, most likely). */
export class PortInUseError extends Error {
  override name = 'PortInUseError';
  constructor(readonly port: number) {
    super(`port ${port} is in use (another local host?); stop it, or start with PORT=<another port>`);
  }
}

const AZURITE_PORTS_FILE = 'azurite-ports.json';

/**
 * Azurite for this data folder, on the ports it had before when they are free: upload and download
 * links issued before a restart name those ports, and keep working after it.
 */
async function startAzuriteForDataDir(
  dataDir: string,
): Promise<{ connectionString: string; pid: number; stop(): Promise<void> }> {
  const portsFile = join(dataDir, AZURITE_PORTS_FILE);
  let preferredPorts: { blob: number; queue: number; table: number } | undefined;
  try {
    preferredPorts = JSON.parse(await readFile(portsFile, 'utf8')) as typeof preferredPorts;
  } catch {
    // first start in this folder
  }
  const azurite = await startAzurite({
    location: join(dataDir, 'azurite'),
    ...(preferredPorts ? { preferredPorts } : {}),
  });
  await writeFile(portsFile, JSON.stringify(azurite.ports), { mode: 0o600 });
  return azurite;
}
