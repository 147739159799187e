import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';

/** Azurite's well-known development account (public, documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteInstance {
  connectionString: string;
  ports: { blob: number; queue: number; table: number };
  pid: number;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Folder for persistent data; in memory when omitted (tests). */
  location?: string;
  /** Ports to try first (the ones this data folder used before, so links issued then still work). */
  preferredPorts?: { blob: number; queue: number; table: number };
  /** Node binary to run Azurite with (it needs Node 22). */
  nodePath?: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function azuriteConnectionString(ports: { blob: number; queue: number; table: number }): string {
  const host = 'http://127.0.0.1';
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${AZURITE_ACCOUNT}`,
    `AccountKey=${AZURITE_KEY}`,
    `BlobEndpoint=${host}:${ports.blob}/${AZURITE_ACCOUNT}`,
    `QueueEndpoint=${host}:${ports.queue}/${AZURITE_ACCOUNT}`,
    `TableEndpoint=${host}:${ports.table}/${AZURITE_ACCOUNT}`,
  ].join(';');
}

/**
 * Starts Azurite (blob, queue, table) on free loopback ports, telemetry off, and resolves once all
 * three services listen. Azurite does not report the port it got for port 0, so ports are picked
 * here; a clash (another process took the port meanwhile) is retried with new ports.
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteInstance> {
  const require = createRequire(import.meta.url);
  const script = join(dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'azurite.js');
  for (let attempt = 1; ; attempt++) {
    const preferred =
      attempt === 1 && options.preferredPorts && (await allFree(options.preferredPorts))
        ? options.preferredPorts
        : undefined;
    const ports = preferred ?? { blob: await freePort(), queue: await freePort(), table: await freePort() };
    const args = [
      script,
      '--disableTelemetry',
      '--skipApiVersionCheck',
      '--silent',
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(ports.blob),
      '--queueHost',
      '127.0.0.1',
      '--queuePort',
      String(ports.queue),
      '--tableHost',
      '127.0.0.1',
      '--tablePort',
      String(ports.table),
      ...(options.location ? ['--location', options.location] : ['--inMemoryPersistence']),
    ];
    const child = spawn(options.nodePath ?? process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await waitForListening(child);
    } catch (error) {
      child.kill('SIGKILL');
      if (attempt >= 5) throw error;
      continue;
    }
    return {
      connectionString: azuriteConnectionString(ports),
      ports,
      pid: child.pid ?? 0,
      stop: () => stopChild(child),
    };
  }
}

async function allFree(ports: { blob: number; queue: number; table: number }): Promise<boolean> {
  for (const port of Object.values(ports)) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

function waitForListening(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    let listening = 0;
    const timer = setTimeout(() => reject(new Error('Azurite did not start within 30 s')), 30_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      listening = (output.match(/successfully listening/g) ?? []).length;
      if (listening >= 3) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with code ${code} before listening: ${output.slice(-500)}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}
