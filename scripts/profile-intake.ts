// `node --import tsx scripts/profile-intake.ts [orders] [concurrency]`: CPU profiles of the local host
// and its Azurite (node --cpu-prof) while orders are posted over HTTP; prints where each process spends
// its time, by package and by function. Used to find what bounds intake (see README, Performance).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const orders = Number(process.argv[2] ?? 1000);
const concurrency = Number(process.argv[3] ?? 16);
const ROOT = resolve(import.meta.dirname, '..');
const dataDir = mkdtempSync(join(tmpdir(), 'labvault-profile-'));
const profileDir = join(dataDir, 'profiles');
const host = spawn(process.execPath, ['--import', 'tsx', 'scripts/start-local.ts'], {
  cwd: ROOT,
  env: { ...process.env, PORT: '0', LABVAULT_DATA_DIR: dataDir, LABVAULT_ENVIRONMENT: 'test', NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` },
  stdio: ['ignore', 'ignore', 'inherit'],
});
let apiBaseUrl = '';
for (let i = 0; i < 600 && !apiBaseUrl; i++) {
  await new Promise((r) => setTimeout(r, 100));
  try {
    const info = JSON.parse(readFileSync(join(dataDir, 'local-host.json'), 'utf8')) as { apiBaseUrl: string; pid: number };
    if (info.pid === host.pid) apiBaseUrl = info.apiBaseUrl;
  } catch {
    // not written yet
  }
}
const admin = (args: string[]) =>
  JSON.parse(spawnSync(process.execPath, ['--import', 'tsx', 'scripts/admin.ts', ...args], { cwd: ROOT, env: { ...process.env, LABVAULT_DATA_DIR: dataDir }, encoding: 'utf8' }).stdout) as Record<string, unknown>;
admin(['tenant', 'create', '--id', 'profile', '--name', 'Profile']);
const key = `ApiKey ${String(admin(['integration', 'create', '--tenant', 'profile', '--name', 'p', '--permissions', 'orders:create']).apiKey)}`;
const body = (n: number) =>
  JSON.stringify({
    externalId: `prof-${n}`,
    patient: { id: `P-${n}`, firstName: 'Profile', lastName: 'Patient', birthDate: '1970-01-01', sex: 'female' },
    orderingPhysician: { name: 'Dr. Profile', lanr: '123456601', bsnr: '031234500' },
    priority: 'routine',
    specimens: [{ id: 'S-1', type: 'biopsy', bodySite: 'left forearm', collectedAt: '2026-11-20T09:30:00Z' }],
    examinations: ['histology'],
  });
let next = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < orders; i = next++) {
      const r = await fetch(`${apiBaseUrl}/orders`, { method: 'POST', headers: { authorization: key, 'content-type': 'application/json' }, body: body(i) });
      await r.arrayBuffer();
      if (r.status !== 201) throw new Error(`answered ${r.status}`);
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(`${orders} orders at c=${concurrency}: ${(orders / seconds).toFixed(1)} orders/s\n`);
host.kill('SIGTERM');
await new Promise((r) => host.once('exit', r));
await new Promise((r) => setTimeout(r, 1000));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
for (const file of readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))) {
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)?.callFrame ?? { functionName: '?', url: '', lineNumber: 0 };
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url.includes('/lib/') ? 'labvault' : url.startsWith('node:') ? 'node' : functionName.startsWith('(') ? functionName : 'other');
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
    const fn = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n');
  process.stdout.write(`\n${file}: ${(total / 1e6).toFixed(1)} s sampled (${(total / 1e6 / seconds).toFixed(2)} of the run)\nby package:\n${top(byPackage, 12)}\nby function:\n${top(byFunction, 25)}\n`);
}
process.exit(0);
