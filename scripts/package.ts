// `npm run package`: the zip Azure Functions accepts for Flex Consumption "one deploy" and for zip
// deploy (`az functionapp deployment source config-zip`): host.json, a production package.json,
// the compiled functions, orchestrations and lib with the built console, and the production
// node_modules only. No tests, scripts, local host, TypeScript sources, or source maps carrying
// sources. Native binaries are the ones installed here (linux-x64, glibc): what Flex Consumption
// runs.
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import yazl from 'yazl';
import { buildConsole } from './build-console.js';

const ROOT = resolve(import.meta.dirname, '..');
/** What the build compiles (tsconfig.build.json) and the console build writes, under dist/. */
const APP_FOLDERS = ['functions', 'orchestrations', 'lib', 'console'];
/** Files no deployment needs, wherever they are: maps with sources, TypeScript, docs of packages. */
const LEAVE_OUT = [/\.ts$/, /\.tsbuildinfo$/, /(^|\/)\.github\//];

function* filesUnder(folder: string): Generator<string> {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path);
    else if (entry.isFile()) yield path;
  }
}

/** The installed production packages (npm's own view of the tree), outermost first. */
function productionPackages(): string[] {
  const listed = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  })
    .split('\n')
    .filter((line) => line && line !== ROOT)
    .map((line) => relative(ROOT, line))
    .filter((path) => path.startsWith(`node_modules${sep}`))
    .sort();
  // A nested package travels with the package it is nested in.
  return listed.filter((path, i) => !listed.slice(0, i).some((outer) => path.startsWith(`${outer}${sep}`)));
}

/** package.json as deployed: what the host reads (main, type, engines) and the dependencies. */
function productionManifest(): string {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const { name, version, description, type, main, engines, dependencies } = manifest;
  return JSON.stringify({ name, version, description, type, main, engines, dependencies }, null, 2) + '\n';
}

/** A source map is kept for stack traces, but only without the sources inside. */
function withoutSources(path: string): Buffer {
  const map = JSON.parse(readFileSync(path, 'utf8')) as { sourcesContent?: unknown };
  delete map.sourcesContent;
  return Buffer.from(JSON.stringify(map));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, work: { type: 'string' } } });
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const out = resolve(values.out ?? join(ROOT, 'artifacts', `labvault-${version}.zip`));
  // A clean build of its own (not dist/, which a running local host may be serving from).
  const work = resolve(values.work ?? join(ROOT, 'artifacts', 'build'));
  const dist = join(work, 'dist');
  rmSync(work, { recursive: true, force: true });
  // Emit only: the types are checked by `npm run typecheck` (CI runs it before the tests).
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', dist, '--noCheck'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  await buildConsole(join(dist, 'console'));
  mkdirSync(resolve(out, '..'), { recursive: true });
  const zip = new yazl.ZipFile();
  const written = pipeline(zip.outputStream, createWriteStream(out));
  // Fixed entry times: the same tree gives the same archive.
  const mtime = new Date('2026-01-01T00:00:00Z');
  zip.addBuffer(readFileSync(join(ROOT, 'host.json')), 'host.json', { mtime });
  zip.addBuffer(Buffer.from(productionManifest()), 'package.json', { mtime });
  let files = 2;
  const add = (path: string, name: string) => {
    if (LEAVE_OUT.some((pattern) => pattern.test(name))) return;
    const mode = statSync(path).mode;
    if (name.endsWith('.js.map')) zip.addBuffer(withoutSources(path), name, { mtime, mode });
    else zip.addFile(path, name, { mtime, mode });
    files++;
  };
  const nameIn = (base: string, path: string) => relative(base, path).split(sep).join('/');
  for (const folder of APP_FOLDERS)
    for (const path of filesUnder(join(dist, folder))) add(path, `dist/${nameIn(dist, path)}`);
  const packages = productionPackages();
  for (const folder of packages) for (const path of filesUnder(join(ROOT, folder))) add(path, nameIn(ROOT, path));
  zip.end();
  await written;
  const summary = { zip: relative(ROOT, out), files, packages: packages.length, bytes: statSync(out).size };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

await main();
