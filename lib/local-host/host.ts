import { existsSync, readFileSync } from 'node:fs';
import { TableServiceClient } from '@azure/data-tables';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, parseConfig } from '../config.js';
import { bootstrapOperator } from '../identity/bootstrap.js';
import { createLogger, errorFields, type Logger } from '../observability/logger.js';
import { getServices } from '../services.js';
import { startAzurite } from './azurite.js';
import { installCoreModule, type Registration } from './core-module.js';
import { createStorageClients } from '../storage/clients.js';
import { createDurableHttpHandler, durableClientBinding } from './durable/http-api.js';
import { DurableRuntime } from './durable/runtime.js';
import { TaskHubStore } from './durable/store.js';
import { createHttpServer, type FunctionsLibrary } from './http-server.js';
import { BlobWatcher } from './blob-watcher.js';
import { TimerHost } from './timers.js';

export interface LocalHostInfo {
  apiBaseUrl: string;
  storageConnectionString: string;
  pid: number;
  azuritePid?: number;
}

export interface LocalHost extends LocalHostInfo {
  registrations: Registration[];
  close(): Promise<void>;
}

export interface LocalHostOptions {
  /** The app's settings; defaults to process.env over local.settings.json's Values. */
  env?: Record<string, string | undefined>;
  /** The package entry that imports every function file. */
  entry?: string;
  logger?: Logger;
}

export const LOCAL_HOST_FILE = 'local-host.json';

/** process.env wins over local.settings.json, as with `func start`. */
export function localSettings(cwd = process.cwd()): Record<string, string | undefined> {
  const path = join(cwd, 'local.settings.json');
  const values = existsSync(path) ? ((JSON.parse(readFileSync(path, 'utf8')) as { Values?: Record<string, string> }).Values ?? {}) : {};
  return { ...values, ...process.env };
}

async function reusableAzurite(infoPath: string): Promise<{ connectionString: string; pid: number; stop(): Promise<void> } | undefined> {
  let previous: Partial<LocalHostInfo>;
  try {
    previous = JSON.parse(await readFile(infoPath, 'utf8')) as Partial<LocalHostInfo>;
  } catch {
    return undefined;
  }
  const pid = previous.azuritePid;
  if (!pid || !previous.storageConnectionString || !alive(pid)) return undefined;
  try {
    await TableServiceClient.fromConnectionString(previous.storageConnectionString, { allowInsecureConnection: true }).getProperties({ abortSignal: AbortSignal.timeout(3000) });
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
export async function startLocalHost(options: LocalHostOptions = {}): Promise<LocalHost> {
  const env = { ...(options.env ?? localSettings()) };
  const logger = options.logger ?? createLogger();
  const dataDir = resolve(env.LABVAULT_DATA_DIR || '.labvault');
  env.LABVAULT_DATA_DIR = dataDir;
  env.LABVAULT_KEY_PROVIDER ??= 'local';
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const infoPath = join(dataDir, LOCAL_HOST_FILE);

  // A host killed hard leaves its Azurite running, with the latest data in its memory: reuse it.
  let azurite: { connectionString: string; pid: number; stop(): Promise<void> } | undefined;
  if (!env.AzureWebJobsStorage && !env.AzureWebJobsStorage__accountName) {
    azurite = (await reusableAzurite(infoPath)) ?? (await startAzurite({ location: join(dataDir, 'azurite') }));
    env.AzureWebJobsStorage = azurite.connectionString;
  }
  await rm(infoPath, { force: true });
  try {
    parseConfig(env);
  } catch (error) {
    await azurite?.stop();
    throw error;
  }
  // The app reads its settings from process.env, as on Azure.
  for (const [key, value] of Object.entries(env)) if (value !== undefined) process.env[key] = value;

  const core = installCoreModule();
  // Loaded only now, so the library finds the core module (a static import would run first).
  const library = createRequire(import.meta.url)('@azure/functions') as FunctionsLibrary;
  await import(options.entry ?? '../../functions/index.js');
  // Tests add their own functions (small orchestrations that are not part of the product).
  if (env.LABVAULT_LOCAL_EXTRA_ENTRY) await import(pathToFileURL(resolve(env.LABVAULT_LOCAL_EXTRA_ENTRY)).href);
  const registrations = [...core.registrations.values()];

  // First start with an empty store: the operator account of the SPEC.
  const services = await getServices();
  const bootstrap = await bootstrapOperator(services.users, env.LABVAULT_OPERATOR_INITIAL_PASSWORD || undefined);
  if (bootstrap.created && bootstrap.generated) {
    // Printed once, to the console of whoever started the host; it must be changed at first login.
    process.stdout.write(`Created the operator account "operator" with the one-time password: ${bootstrap.initialPassword}\n`);
  } else if (bootstrap.created) {
    process.stdout.write('Created the operator account "operator" with LABVAULT_OPERATOR_INITIAL_PASSWORD.\n');
  }

  const config = parseConfig(env);
  const storage = createStorageClients(config.storage);
  const durable = new DurableRuntime({
    store: new TaskHubStore({ taskHub: config.taskHub, table: storage.table, tableService: storage.tableService, queueService: storage.queueService }),
    registrations,
    library,
    logger,
    maxConcurrentActivities: Number(env.LABVAULT_DURABLE_MAX_ACTIVITIES || 16),
    leaseSeconds: Number(env.LABVAULT_DURABLE_LEASE_SECONDS || 30),
  });
  let baseUrl = '';
  const server = createHttpServer(registrations, {
    logger,
    library,
    extra: createDurableHttpHandler(durable, () => baseUrl, config.taskHub),
    inputBindings: { durableClient: () => durableClientBinding(baseUrl, config.taskHub) },
  });
  const port = Number(env.PORT ?? 7071);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolveListen());
  });
  const address = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${address.port}`;
  // As on Azure: the SDK keeps the extension's URLs only when it knows the app's host name.
  process.env.WEBSITE_HOSTNAME = `127.0.0.1:${address.port}`;
  await durable.start();
  const timers = new TimerHost({
    registrations,
    library,
    logger,
    table: storage.table(`${config.taskHub}Timers`),
    inputBindings: { durableClient: () => durableClientBinding(baseUrl, config.taskHub) },
  });
  await timers.start();
  const blobs = new BlobWatcher({
    registrations,
    library,
    logger,
    blobService: storage.blobService,
    queueService: storage.queueService,
    receipts: storage.table(`${config.taskHub}BlobReceipts`),
  });
  await blobs.start();
  const info: LocalHostInfo = {
    apiBaseUrl: `http://127.0.0.1:${address.port}/api`,
    storageConnectionString: env.AzureWebJobsStorage ?? '',
    pid: process.pid,
    ...(azurite ? { azuritePid: azurite.pid } : {}),
  };
  // Written aside and renamed, so a reader never sees half a file.
  await writeFile(`${infoPath}.tmp`, JSON.stringify(info, null, 2), { mode: 0o600 });
  await rename(`${infoPath}.tmp`, infoPath);

  return {
    ...info,
    registrations,
    async close() {
      await blobs.stop();
      await timers.stop();
      await durable.stop();
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await azurite?.stop();
      await rm(infoPath, { force: true });
    },
  };
}

export { ConfigError, errorFields };
