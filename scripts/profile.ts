// `node --import tsx scripts/profile.ts intake|images [count] [concurrency]`: CPU profiles of the
// local host and its Azurite (node --cpu-prof) while orders are posted, or 12-MP JPEGs uploaded and
// processed; prints the CPU each process used per item, and where it went, by package and function.
// Used to find what bounds a path (see docs/performance.md). Extra node options: PROFILE_NODE_OPTIONS.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TableClient } from '@azure/data-tables';
import sharp from 'sharp';
import { cpuSecondsOf } from './baselines.js';

const scenario = process.argv[2] === 'images' ? 'images' : 'intake';
const count = Number(process.argv[3] ?? (scenario === 'images' ? 24 : 1000));
const concurrency = Number(process.argv[4] ?? (scenario === 'images' ? 4 : 16));
const ROOT = resolve(import.meta.dirname, '..');
const dataDir = mkdtempSync(join(tmpdir(), 'labvault-profile-'));
const profileDir = join(dataDir, 'profiles');
const host = spawn(process.execPath, ['--import', 'tsx', 'scripts/start-local.ts'], {
  cwd: ROOT,
  env: {
    ...process.env,
    PORT: '0',
    LABVAULT_DATA_DIR: dataDir,
    LABVAULT_ENVIRONMENT: 'test',
    NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir} ${process.env.PROFILE_NODE_OPTIONS ?? ''}`,
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
let apiBaseUrl = '';
let azuritePid = 0;
let storageConnectionString = '';
for (let i = 0; i < 600 && !apiBaseUrl; i++) {
  await new Promise((r) => setTimeout(r, 100));
  try {
    const info = JSON.parse(readFileSync(join(dataDir, 'local-host.json'), 'utf8')) as {
      apiBaseUrl: string;
      pid: number;
      azuritePid: number;
      storageConnectionString: string;
    };
    if (info.pid === host.pid) ({ apiBaseUrl, azuritePid, storageConnectionString } = info);
  } catch {
    // not written yet
  }
}
const admin = (args: string[]) =>
  JSON.parse(
    spawnSync(process.execPath, ['--import', 'tsx', 'scripts/admin.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, LABVAULT_DATA_DIR: dataDir },
      encoding: 'utf8',
    }).stdout,
  ) as Record<string, unknown>;
admin(['tenant', 'create', '--id', 'profile', '--name', 'Profile']);
const key = `ApiKey ${String(admin(['integration', 'create', '--tenant', 'profile', '--name', 'p', '--permissions', 'orders:create,images:upload,images:read']).apiKey)}`;
const body = (n: number) =>
  JSON.stringify({
    externalId: `prof-${n}`,
    patient: { id: `P-${n}`, firstName: 'Profile', lastName: 'Patient', birthDate: '1970-01-01', sex: 'female' },
    orderingPhysician: { name: 'Dr. Profile', lanr: '123456601', bsnr: '031234500' },
    priority: 'routine',
    specimens: [{ id: 'S-1', type: 'biopsy', bodySite: 'left forearm', collectedAt: '2026-11-20T09:30:00Z' }],
    examinations: ['histology'],
  });
const post = async (path: string, payload: string) => {
  const r = await fetch(`${apiBaseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: key, 'content-type': 'application/json' },
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
  const noise = await sharp({
    create: {
      width: 64,
      height: 48,
      channels: 3,
      background: 'grey',
      noise: { type: 'gaussian', mean: 128, sigma: 60 },
    },
  })
    .png()
    .toBuffer();
  const photo = await sharp(noise).resize(4000, 3000).jpeg({ quality: 85 }).toBuffer();
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
    // Readiness from the image's row (a point read), as the bench does: polling the audited list
    // route would profile the polling.
    const orderId = orderIds[i] ?? '';
    for (;;) {
      const row = await rows.getEntity<{ status: string }>(
        `profile~orders~${orderId[0] ?? ''}`,
        `image~${orderId}~S-1~${u.imageId ?? ''}`,
        { queryOptions: { select: ['status'] } },
      );
      if (row.status === 'ready') return;
      if (row.status !== 'pending') throw new Error(`image ${row.status}`);
      await new Promise((r) => setTimeout(r, 50));
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
const hostThreadsBefore = cpuByThread(host.pid);
const cpuBefore = { host: cpuSecondsOf(host.pid), azurite: cpuSecondsOf(azuritePid), client: process.cpuUsage() };
const t0 = performance.now();
await run(work);
const seconds = (performance.now() - t0) / 1000;
const clientCpu = process.cpuUsage(cpuBefore.client);
const perItem = (cpu: number) =>
  `${((1000 * cpu) / count).toFixed(1)} ms CPU per item (${(cpu / seconds).toFixed(2)} cores)`;
process.stdout.write(
  `${count} ${scenario} at c=${concurrency}: ${(count / seconds).toFixed(1)}/s\n` +
    `  host:    ${perItem(cpuSecondsOf(host.pid) - cpuBefore.host)}\n` +
    `  azurite: ${perItem(cpuSecondsOf(azuritePid) - cpuBefore.azurite)}\n` +
    `  client:  ${perItem((clientCpu.user + clientCpu.system) / 1e6)}\n` +
    `  host by thread: ${[...cpuByThread(host.pid)]
      .map(([name, cpu]) => [name, cpu - (hostThreadsBefore.get(name) ?? 0)] as const)
      .filter(([, cpu]) => cpu > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([name, cpu]) => `${name} ${((1000 * cpu) / count).toFixed(1)} ms`)
      .join(', ')}\n`,
);
host.kill('SIGTERM');
await new Promise((r) => host.once('exit', r));
await new Promise((r) => setTimeout(r, 1000));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
for (const file of readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))) {
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
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
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  process.stdout.write(
    `\n${file}: ${(total / 1e6).toFixed(1)} s sampled (${(total / 1e6 / seconds).toFixed(2)} of the run)\nby package:\n${top(byPackage, 12)}\nby function:\n${top(byFunction, 25)}\n`,
  );
}
process.exit(0);
