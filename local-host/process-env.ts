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
