import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markedBlocks, runBash } from '../support/doc-blocks.js';
import { type RunningHost, startHost } from '../support/local-host.js';

// The README's walkthrough and docs/api.md's examples, run literally against a fresh local host:
// if the code and the docs part ways, this fails.
let host: RunningHost;

beforeAll(async () => {
  host = await startHost();
});
afterAll(async () => {
  await host?.kill();
});

async function run(file: string, marker: string) {
  const blocks = markedBlocks(file, marker);
  expect(blocks.length).toBeGreaterThan(3);
  const script = blocks.join('\n');
  // Every value is set by a command: no placeholder for the reader to fill in.
  expect(script).not.toMatch(/<[a-z-]+>|…/);
  const result = await runBash(script, { LABVAULT_DATA_DIR: host.dataDir, LABVAULT_ENVIRONMENT: 'test' }, 240_000);
  if (result.status !== 0)
    throw new Error(`${file} stopped (exit ${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

describe('documentation that runs', () => {
  it('the README walkthrough takes one tenant from creation to its signed deletion certificate', async () => {
    const out = await run('README.md', 'walkthrough');
    expect(out).toContain('image: ready');
    expect(out).toMatch(/"valid": true/);
    expect(out).toMatch(/export\.zip: OK/);
    expect(out).toContain('signature valid');
    // After the deletion the tenant's key opens nothing.
    expect(out.trim().split('\n').at(-1)).toBe('401');
  }, 300_000);

  it('every example of docs/api.md answers as the page says', async () => {
    const out = await run('docs/api.md', 'example');
    expect(out).toMatch(/"status": 412/); // the stale If-Match
    expect(out).toMatch(/^404\n"approved"/m); // no grant, then the tenant approves
    expect(out).toMatch(/^403\n"executed"/m); // the requester cannot approve their own request
    expect(out).toMatch(/export\.zip: OK/);
    expect(out).toMatch(/^"cancelled"\n409$/m); // a cancelled erasure is not run again
  }, 300_000);
});
