import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * What the local host's process starts with, as the Bicep app settings give the Functions worker on
 * Azure: variables the C library reads once at process start, so the app cannot set them itself.
 *
 * `MALLOC_ARENA_MAX=2`: glibc's malloc gives each thread that allocates its own arena, and libvips'
 * worker threads allocate and free tens of megabytes per image; with an arena per thread the host
 * spent a third of its image CPU in the kernel, mapping and unmapping memory. Two arenas cut the CPU
 * per image by about a fifth (docs/performance.md). jemalloc, which sharp suggests, was slower here.
 */
export const HOST_PROCESS_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  // libuv's pool runs sharp's pipelines (and file and crypto work): one thread per core, not libuv's
  // four, so four images at once queue for the pool instead of contending for two cores (7–10 % less
  // CPU per image here). Not in the Bicep: a plan's core count is the platform's to choose.
  UV_THREADPOOL_SIZE: String(availableParallelism()),
};

/**
 * The arguments the local host's Node starts with, as the Bicep's `languageWorkers__node__arguments`
 * gives the Functions worker on Azure.
 *
 * `--max-old-space-size=1536`: V8 lets garbage accumulate up to a factor of the live heap before its
 * next full collection, and that factor's ceiling follows the heap limit: 4 × at a limit of 2 GB or
 * more (the default on a machine with lots of memory), 1.3–2 × below. A long export keeps a flat live
 * heap of about 100 MB but, with the default limit, ran up to 300 MB of garbage between collections,
 * so its peak RSS grew with the tenant's size (docs/performance.md). 1,536 MB is what Node's own docs
 * suggest for a 2-GB machine (the plan's instance size); 1,024 MB cost images a quarter more of the
 * main thread's CPU in collections, 1,536 MB nothing measurable.
 */
export const HOST_NODE_ARGUMENTS: readonly string[] = ['--max-old-space-size=1536'];

/**
 * Starts `scripts/start-local.ts` in a child Node with the arguments and environment above, on a free
 * port, in the test environment: how the tests, the benchmark and the profile script start their
 * hosts. `env` adds to the environment and overrides it.
 */
export function spawnLocalHost(options: {
  root: string;
  env: Record<string, string | undefined>;
  stdio: StdioOptions;
  /** Node arguments after the host's own (V8 flags NODE_OPTIONS refuses, such as `--trace-gc`). */
  nodeArguments?: readonly string[];
}): ChildProcess {
  const args = [...HOST_NODE_ARGUMENTS, ...(options.nodeArguments ?? []), '--import', 'tsx', 'scripts/start-local.ts'];
  return spawn(process.execPath, args, {
    cwd: options.root,
    env: { ...process.env, ...HOST_PROCESS_ENV, PORT: '0', LABVAULT_ENVIRONMENT: 'test', ...options.env },
    stdio: options.stdio,
  });
}
