// `npm run package` builds the zip Azure accepts: opened here, its contents checked, and its
// function entry point loaded by @azure/functions in a clean process from the unpacked zip alone.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import yauzl from 'yauzl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_OPERATIONS } from '../../lib/operations.js';

const ROOT = resolve(import.meta.dirname, '../..');
let work: string;
const files = new Map<string, { data: Buffer; mode: number }>();

/** Every entry of the zip with its bytes and its Unix mode. */
function unzipWithModes(path: string): Promise<void> {
  return new Promise((done, fail) => {
    yauzl.open(path, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return fail(error ?? new Error('no zip'));
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return fail(e ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            files.set(entry.fileName, {
              data: Buffer.concat(chunks),
              mode: (entry.externalFileAttributes >>> 16) & 0o777,
            });
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => done());
      zip.on('error', fail);
      zip.readEntry();
    });
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'labvault-package-'));
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'scripts/package.ts', '--out', join(work, 'app.zip'), '--work', join(work, 'build')],
    { cwd: ROOT, encoding: 'utf8' },
  );
  expect(run.status, run.stderr).toBe(0);
  await unzipWithModes(join(work, 'app.zip'));
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the deployment package', () => {
  it('holds host.json, a production package.json, the compiled app and the console', () => {
    expect(JSON.parse(files.get('host.json')?.data.toString() ?? '{}')).toEqual(
      JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')),
    );
    const manifest = JSON.parse(files.get('package.json')?.data.toString() ?? '{}') as Record<string, unknown>;
    expect(manifest).toMatchObject({ type: 'module', main: 'dist/functions/index.js' });
    expect(manifest.devDependencies).toBeUndefined();
    expect(manifest.scripts).toBeUndefined();
    for (const name of ['dist/functions/index.js', 'dist/orchestrations/breach.js', 'dist/lib/services.js'])
      expect(files.has(name), name).toBe(true);
    expect([...files.keys()].some((n) => /^dist\/console\/assets\/app-[0-9a-f]{16}\.js$/.test(n))).toBe(true);
  });

  it('carries every production dependency and no development one', () => {
    const { dependencies, devDependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    for (const name of Object.keys(dependencies))
      expect(files.has(`node_modules/${name}/package.json`), name).toBe(true);
    for (const name of Object.keys(devDependencies))
      expect(files.has(`node_modules/${name}/package.json`), name).toBe(false);
  });

  it('leaves out tests, scripts, the local host, TypeScript sources and the sources inside maps', () => {
    const names = [...files.keys()];
    expect(names.filter((n) => /^(tests|scripts|local-host|console|bicep|docs|functions|lib)\//.test(n))).toEqual([]);
    expect(names.filter((n) => n.endsWith('.ts'))).toEqual([]);
    expect(names.filter((n) => n.startsWith('node_modules/.bin/'))).toEqual([]);
    const maps = names.filter((n) => n.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(0);
    for (const map of maps.filter((n) => n.startsWith('dist/')))
      expect(JSON.parse(files.get(map)?.data.toString() ?? '{}'), map).not.toHaveProperty('sourcesContent');
  });

  it('loads with @azure/functions in a clean process and registers every route', () => {
    const unpacked = join(work, 'unpacked');
    for (const [name, { data, mode }] of files) {
      if (name.endsWith('/')) continue;
      const path = join(unpacked, name);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, data);
      if (mode) chmodSync(path, mode);
    }
    // Outside the Functions host the package switches to test mode and names each registration it skips.
    const loaded = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "await import('./dist/functions/index.js'); console.log('loaded')"],
      { cwd: unpacked, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: unpacked } },
    );
    expect(loaded.status, loaded.stderr).toBe(0);
    expect(loaded.stdout).toContain('loaded');
    const registered = new Set(
      [...`${loaded.stdout}${loaded.stderr}`.matchAll(/register function "([^"]+)"/g)].map((m) => m[1]),
    );
    for (const op of ALL_OPERATIONS) expect(registered.has(op.id), op.id).toBe(true);
    for (const name of [
      'breachHandling',
      'exportTenantData',
      'tenantDeletion',
      'tableBackup',
      'nightlyBackup',
      'anchorAuditChains',
    ])
      expect(registered.has(name), name).toBe(true);
  });
});
