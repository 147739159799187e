// `node --import tsx scripts/profile.ts intake|images [count] [concurrency]`: CPU profiles of the
// local host (node --cpu-prof) while orders are posted, or 12-MP JPEGs uploaded and processed;
// prints the CPU the host, Azurite and this client used per item, the storage requests per item by
// kind (counted at a proxy in front of Azurite), and where the host's CPU went, by package and
// function. Used to find what bounds a path (see docs/performance.md). Extra node options for the
// host: PROFILE_NODE_OPTIONS (e.g. `--cpu-prof-interval=500`); PROFILE_NO_CPU_PROF=1 leaves the
// profiler off (its own overhead then is not in the figures); PROFILE_IDEMPOTENCY=1 sends an
// Idempotency-Key with every order, as integrations that retry do; PROFILE_HOST_ENV adds variables
// to the host's environment only (e.g. `MALLOC_ARENA_MAX=2 VIPS_CONCURRENCY=1`); PROFILE_HOST_ARGS
// adds node arguments NODE_OPTIONS refuses (e.g. `--trace-gc`), PROFILE_HOST_STDOUT=1 shows the
// host's output (where `--trace-gc` writes).
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { TableClient } from '@azure/data-tables';
import { startAzurite } from '../local-host/azurite.js';
import { spawnLocalHost } from '../local-host/process-env.js';
import { startFaultProxy } from '../tests/support/fault-proxy.js';
import { photoJpeg } from '../tests/support/images.js';
import { startCpuMeter } from './baselines.js';

const scenario = process.argv[2] === 'images' ? 'images' : 'intake';
const count = Number(process.argv[3] ?? (scenario === 'images' ? 24 : 1000));
const concurrency = Number(process.argv[4] ?? (scenario === 'images' ? 4 : 16));
const ROOT = resolve(import.meta.dirname, '..');
const dataDir = mkdtempSync(join(tmpdir(), 'labvault-profile-'));
const profileDir = join(dataDir, 'profiles');
// PROFILE_AZURITE=1 profiles Azurite instead of the host (its profile is printed the same way).
const profileAzurite = process.env.PROFILE_AZURITE === '1';
if (profileAzurite) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${profileDir}`;
const azurite = await startAzurite();
delete process.env.NODE_OPTIONS;
const proxy = await startFaultProxy(azurite.ports);
const cpuProf =
  process.env.PROFILE_NO_CPU_PROF === '1' || profileAzurite ? '' : `--cpu-prof --cpu-prof-dir=${profileDir}`;
const host = spawnLocalHost({
  root: ROOT,
  env: {
    ...Object.fromEntries(
      (process.env.PROFILE_HOST_ENV ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
    ),
    AzureWebJobsStorage: proxy.connectionString,
    LABVAULT_DATA_DIR: dataDir,
    NODE_OPTIONS: `${cpuProf} ${process.env.PROFILE_NODE_OPTIONS ?? ''}`,
  },
  stdio: ['ignore', process.env.PROFILE_HOST_STDOUT === '1' ? 'inherit' : 'ignore', 'inherit'],
  nodeArguments: (process.env.PROFILE_HOST_ARGS ?? '').split(/\s+/).filter(Boolean),
});
let apiBaseUrl = '';
const azuritePid = azurite.pid;
let storageConnectionString = '';
for (let i = 0; i < 600 && !apiBaseUrl; i++) {
  await new Promise((r) => setTimeout(r, 100));
  try {
    const info = JSON.parse(readFileSync(join(dataDir, 'local-host.json'), 'utf8')) as {
      apiBaseUrl: string;
      pid: number;
      storageConnectionString: string;
    };
    if (info.pid === host.pid) ({ apiBaseUrl, storageConnectionString } = info);
  } catch {
    // not written yet
  }
}
if (!apiBaseUrl) throw new Error('the local host did not start');
// Not spawnSync: this process serves the proxy the admin CLI's storage calls go through.
const admin = async (args: string[]) =>
  JSON.parse(
    (
      await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/admin.ts', ...args], {
        cwd: ROOT,
        env: { ...process.env, LABVAULT_DATA_DIR: dataDir },
        encoding: 'utf8',
      })
    ).stdout,
  ) as Record<string, unknown>;
await admin(['tenant', 'create', '--id', 'profile', '--name', 'Profile']);
const key = `ApiKey ${String((await admin(['integration', 'create', '--tenant', 'profile', '--name', 'p', '--permissions', 'orders:create,images:upload,images:read'])).apiKey)}`;
const body = (n: number) =>
  JSON.stringify({
    externalId: `prof-${n}`,
    patient: { id: `P-${n}`, firstName: 'Profile', lastName: 'Patient', birthDate: '1970-01-01', sex: 'female' },
    orderingPhysician: { name: 'Dr. Profile', lanr: '123456601', bsnr: '031234500' },
    priority: 'routine',
    specimens: [{ id: 'S-1', type: 'biopsy', bodySite: 'left forearm', collectedAt: '2026-11-20T09:30:00Z' }],
    examinations: ['histology'],
  });
const idempotency = process.env.PROFILE_IDEMPOTENCY === '1';
let posted = 0;
const post = async (path: string, payload: string) => {
  const r = await fetch(`${apiBaseUrl}${path}`, {
    method: 'POST',
    headers: {
      authorization: key,
      'content-type': 'application/json',
      ...(idempotency ? { 'idempotency-key': `profile-${process.pid}-${posted++}` } : {}),
    },
    body: payload,
  });
  if (r.status !== 201 && r.status !== 200) throw new Error(`${path} answered ${r.status}`);
  return (await r.json()) as Record<string, string>;
};
const run = async (task: (i: number) => Promise<void>) => {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) await task(i);
    }),
  );
};
let work: (i: number) => Promise<void> = async (i) => {
  await post('/orders', body(i));
};
if (scenario === 'images') {
  const photo = await photoJpeg(4000, 3000);
  const orderIds: string[] = [];
  const rows = TableClient.fromConnectionString(storageConnectionString, 'tenantdata', {
    allowInsecureConnection: true,
  });
  await run(async (i) => {
    orderIds[i] = (await post('/orders', body(i))).id ?? '';
  });
  work = async (i) => {
    const images = `/orders/${orderIds[i] ?? ''}/specimens/S-1/images`;
    const u = await post(images, JSON.stringify({ contentType: 'image/jpeg', fileName: 'p.jpg' }));
    await fetch(u.uploadUrl ?? '', { method: 'PUT', headers: { 'x-ms-blob-type': 'BlockBlob' }, body: photo });
    // Readiness from the image's row (a point read, once a second), as the bench does: polling the
    // audited list route, or polling often, would profile the polling (at 50 ms it was 29 of the 41
    // storage requests per image and about 40 % of Azurite's CPU: 123 → 77 ms per image at 1 s).
    const orderId = orderIds[i] ?? '';
    for (;;) {
      const row = await rows.getEntity<{ status: string }>(
        `profile~orders~${orderId[0] ?? ''}`,
        `image~${orderId}~S-1~${u.imageId ?? ''}`,
        { queryOptions: { select: ['status'] } },
      );
      if (row.status === 'ready') return;
      if (row.status !== 'pending') throw new Error(`image ${row.status}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
}
/** CPU seconds (user and system apart) of a process by thread name (main JS thread, libuv pool, libvips workers, GC helpers). */
const cpuByThread = (pid: number | undefined): Map<string, number> => {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${String(pid)}/task`)) {
    try {
      const name = readFileSync(`/proc/${String(pid)}/task/${tid}/comm`, 'utf8')
        .trim()
        .replace(/\d+$/, '');
      const fields =
        readFileSync(`/proc/${String(pid)}/task/${tid}/stat`, 'utf8')
          .split(') ')[1]
          ?.split(' ') ?? [];
      out.set(`${name} user`, (out.get(`${name} user`) ?? 0) + Number(fields[11]) / 100);
      out.set(`${name} sys`, (out.get(`${name} sys`) ?? 0) + Number(fields[12]) / 100);
    } catch {
      // the thread ended
    }
  }
  return out;
};
// What the host asks of storage when nobody asks anything of it (its pollers), over five seconds.
const idleBefore = proxy.requestsByKind();
const idleCpu = startCpuMeter({ host: host.pid, azurite: azuritePid });
await new Promise((r) => setTimeout(r, 5000));
const idleSpent = idleCpu();
const idle = [...proxy.requestsByKind()]
  .map(([kind, n]) => [kind, n - (idleBefore.get(kind) ?? 0)] as const)
  .filter(([, n]) => n > 0);
process.stdout.write(
  `idle: ${(idle.reduce((a, [, n]) => a + n, 0) / 5).toFixed(1)} storage requests/s (${idle
    .map(([kind, n]) => `${kind} ${(n / 5).toFixed(1)}/s`)
    .join(
      ', ',
    )}); host ${((1000 * idleSpent.host) / 5).toFixed(0)} ms CPU/s, azurite ${((1000 * idleSpent.azurite) / 5).toFixed(0)} ms CPU/s\n`,
);
const requestsBefore = proxy.requestsByKind();
const hostThreadsBefore = cpuByThread(host.pid);
const runCpu = startCpuMeter({ host: host.pid, azurite: azuritePid });
// The run's window on the monotonic clock profiles count their samples on (µs), to leave out start-up.
const windowStart = Number(process.hrtime.bigint() / 1000n);
await run(work);
const windowEnd = Number(process.hrtime.bigint() / 1000n);
const spent = runCpu();
const seconds = spent.wallSeconds;
const perItem = (cpu: number) =>
  `${((1000 * cpu) / count).toFixed(1)} ms CPU per item (${(cpu / seconds).toFixed(2)} cores)`;
process.stdout.write(
  `${count} ${scenario} at c=${concurrency}: ${(count / seconds).toFixed(1)}/s\n` +
    `  host:    ${perItem(spent.host)}\n` +
    `  azurite: ${perItem(spent.azurite)}\n` +
    `  client:  ${perItem(spent.client)}\n` +
    `  host by thread: ${[...cpuByThread(host.pid)]
      .map(([name, cpu]) => [name, cpu - (hostThreadsBefore.get(name) ?? 0)] as const)
      .filter(([, cpu]) => cpu > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([name, cpu]) => `${name} ${((1000 * cpu) / count).toFixed(1)} ms`)
      .join(', ')}\n`,
);
const requestsDuring = [...proxy.requestsByKind()]
  .map(([kind, n]) => [kind, n - (requestsBefore.get(kind) ?? 0)] as const)
  .filter(([, n]) => n > 0)
  .sort((a, b) => b[1] - a[1]);
const totalRequests = requestsDuring.reduce((a, [, n]) => a + n, 0);
process.stdout.write(
  `  storage requests: ${totalRequests} in ${seconds.toFixed(1)} s, ${(totalRequests / count).toFixed(2)} per item\n` +
    requestsDuring.map(([kind, n]) => `    ${(n / count).toFixed(2).padStart(7)}  ${kind} (${n})`).join('\n') +
    '\n',
);
host.kill('SIGTERM');
await new Promise((r) => host.once('exit', r));
await new Promise((r) => setTimeout(r, 1000));
await proxy.close();
await azurite.stop();

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
for (const file of cpuProf || profileAzurite ? readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile')) : []) {
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at >= windowStart && at <= windowEnd) self.set(id, (self.get(id) ?? 0) + delta);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)?.callFrame ?? { functionName: '?', url: '', lineNumber: 0 };
    const pkg =
      /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ??
      (url.includes('/lib/')
        ? 'labvault'
        : url.startsWith('node:')
          ? 'node'
          : functionName.startsWith('(')
            ? functionName
            : 'other');
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
    const fn = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  // Inclusive time of LabVault's own functions (and the local host's): what a call costs with all it calls.
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let node = byId.get(id); node; node = byId.get(parentOf.get(node.id) ?? -1)) {
      const { functionName, url, lineNumber } = node.callFrame;
      if (!/\/(lib|local-host|functions)\//.test(url) || url.includes('node_modules')) continue;
      const fn = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber}`;
      if (seen.has(fn)) continue;
      seen.add(fn);
      inclusive.set(fn, (inclusive.get(fn) ?? 0) + us);
    }
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  process.stdout.write(
    `\n${file}: ${(total / 1e6).toFixed(1)} s sampled during the run\nby package:\n${top(byPackage, 12)}\nby function:\n${top(byFunction, 25)}\nLabVault's functions, inclusive:\n${top(inclusive, 40)}\n`,
  );
}
process.exit(0);
