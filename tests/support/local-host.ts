import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnLocalHost } from '../../local-host/process-env.js';

const ROOT = resolve(import.meta.dirname, '../..');

export interface RunningHost {
  apiBaseUrl: string;
  storageConnectionString: string;
  dataDir: string;
  /** The host's system key (host-keys.json of its data folder), which the durable task API requires. */
  systemKey: string;
  /** A URL of the durable task API (`instances/…`, `orchestrators/…`) carrying the system key. */
  durableUrl(pathAndQuery: string): string;
  /** Everything the host printed (stdout and stderr). */
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `scripts/start-local.ts` as `npm start` would, on a free port with its own data folder. */
export async function startHost(
  options: { dataDir?: string; env?: Record<string, string> } = {},
): Promise<RunningHost> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'labvault-host-'));
  const infoPath = join(dataDir, 'local-host.json');
  let output = '';
  const child = spawnLocalHost({
    root: ROOT,
    env: { LABVAULT_DATA_DIR: dataDir, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 45_000;
  // A host killed with -9 leaves its file behind: wait for the one this child writes.
  const written = (): boolean => {
    try {
      return (JSON.parse(readFileSync(infoPath, 'utf8')) as { pid?: number }).pid === child.pid;
    } catch {
      return false; // not there yet
    }
  };
  while (!written()) {
    if (child.exitCode !== null) throw new Error(`local host exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`local host did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const info = JSON.parse(readFileSync(infoPath, 'utf8')) as { apiBaseUrl: string; storageConnectionString: string };
  const systemKey = (JSON.parse(readFileSync(join(dataDir, 'host-keys.json'), 'utf8')) as { systemKey: string })
    .systemKey;
  const root = info.apiBaseUrl.replace(/\/api$/, '');
  return {
    ...info,
    dataDir,
    systemKey,
    durableUrl: (pathAndQuery) =>
      `${root}/runtime/webhooks/durabletask/${pathAndQuery}${pathAndQuery.includes('?') ? '&' : '?'}code=${encodeURIComponent(systemKey)}`,
    output: () => output,
    kill: (signal = 'SIGTERM') =>
      new Promise((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill(signal);
      }),
  };
}

export interface AdminResult {
  status: number;
  json: Record<string, unknown> | undefined;
  stdout: string;
  stderr: string;
}

const adminArgs = (args: string[]) => ['--import', 'tsx', 'scripts/admin.ts', ...args];
const adminEnv = (dataDir: string) => ({ ...process.env, LABVAULT_DATA_DIR: dataDir, LABVAULT_ENVIRONMENT: 'test' });
function adminResult(status: number | null, stdout: string, stderr: string): AdminResult {
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: status ?? -1, json, stdout, stderr };
}

/** Runs the admin CLI as `npm run admin -- …` would and parses its one JSON line. */
export function admin(dataDir: string, args: string[]): AdminResult {
  const result = spawnSync(process.execPath, adminArgs(args), { cwd: ROOT, env: adminEnv(dataDir), encoding: 'utf8' });
  return adminResult(result.status, result.stdout, result.stderr);
}

/** The admin CLI without blocking this process (needed when this process serves storage, e.g. a fault proxy). */
export function adminAsync(dataDir: string, args: string[]): Promise<AdminResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, adminArgs(args), {
      cwd: ROOT,
      env: adminEnv(dataDir),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolveRun(adminResult(status, stdout, stderr)));
  });
}
