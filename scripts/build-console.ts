// Builds the web console (console/) into dist/console: the app bundled and minified by esbuild,
// Pico's classless CSS and the console's own, each under a content hash (cached for a year), and
// index.html naming them (never cached). `npm run build` runs it; `npm start` runs it when stale.
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  readdirSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
export const CONSOLE_DIST = join(ROOT, 'dist', 'console');

const hashed = (name: string, ext: string, content: string | Uint8Array) =>
  `${name}-${createHash('sha256').update(content).digest('hex').slice(0, 16)}.${ext}`;

function newestSource(): number {
  const files = [
    ...readdirSync(join(ROOT, 'console'), { recursive: true, encoding: 'utf8' }).map((f) => join(ROOT, 'console', f)),
    join(ROOT, 'scripts', 'build-console.ts'),
  ];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

/** True when dist/console is missing or older than its sources. */
export function consoleIsStale(): boolean {
  try {
    return statSync(join(CONSOLE_DIST, 'index.html')).mtimeMs < newestSource();
  } catch {
    return true;
  }
}

/** Builds into `target` (dist/console unless a packaging run names its own folder). */
export async function buildConsole(target: string = CONSOLE_DIST): Promise<void> {
  const bundle = await build({
    entryPoints: [join(ROOT, 'console', 'src', 'main.ts')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    write: false,
    legalComments: 'none',
  });
  const app = bundle.outputFiles[0]?.contents ?? new Uint8Array();
  const pico = readFileSync(join(ROOT, 'node_modules', '@picocss', 'pico', 'css', 'pico.classless.min.css'));
  const css = readFileSync(join(ROOT, 'console', 'console.css'));
  const names = {
    APP: hashed('app', 'js', app),
    PICO: hashed('pico', 'css', pico),
    CSS: hashed('console', 'css', css),
  };
  // Written beside and renamed into place, so a host serving the old build never sees half a new one.
  mkdirSync(resolve(target, '..'), { recursive: true });
  const staging = mkdtempSync(join(resolve(target, '..'), '.console-'));
  mkdirSync(join(staging, 'assets'));
  writeFileSync(join(staging, 'assets', names.APP), app);
  writeFileSync(join(staging, 'assets', names.PICO), pico);
  writeFileSync(join(staging, 'assets', names.CSS), css);
  const index = readFileSync(join(ROOT, 'console', 'index.html'), 'utf8').replace(
    /%(APP|PICO|CSS)%/g,
    (_, key: keyof typeof names) => names[key],
  );
  writeFileSync(join(staging, 'index.html'), index);
  const old = `${target}.old-${process.pid}`;
  try {
    renameSync(target, old);
  } catch {
    // no earlier build
  }
  try {
    renameSync(staging, target);
  } catch {
    rmSync(staging, { recursive: true, force: true }); // another process built it at the same moment
  }
  rmSync(old, { recursive: true, force: true });
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  await buildConsole();
  process.stdout.write(`console built into ${CONSOLE_DIST}\n`);
}
