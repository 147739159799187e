// The local host behaves like a service: a failed start leaves nothing running, a restart keeps
// Azurite's ports (so links issued before still work), and `npm start` ends with the next steps.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BlockBlobClient } from '@azure/storage-blob';
import { describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { plainPng } from '../support/images.js';
import { admin, startHost } from '../support/local-host.js';
import { callJson } from '../reliability/support.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** Runs `npm start`'s script to its end (a failed start) and returns its exit code and output. */
function startExpectingFailure(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start-local.ts'], {
      cwd: ROOT,
      env: { ...process.env, LABVAULT_ENVIRONMENT: 'test', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, output });
    });
  });
}

/** Processes whose command line mentions the folder (an Azurite started for it would). */
function processesFor(folder: string): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes(folder) && !line.includes('ps -eo'));
}

describe('the local host as a service', () => {
  it('stops what it started when the port is taken: no orphaned Azurite', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'labvault-failed-start-'));
    try {
      const run = await startExpectingFailure({ PORT: String(port), LABVAULT_DATA_DIR: dataDir });
      expect(run.code).toBe(1);
      expect(run.output).toContain(`port ${port} is in use`);
      await new Promise((r) => setTimeout(r, 500));
      expect(processesFor(dataDir)).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it('stops Azurite when a setting is invalid, naming the setting in one line', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'labvault-bad-setting-'));
    const run = await startExpectingFailure({
      PORT: '0',
      LABVAULT_DATA_DIR: dataDir,
      LABVAULT_TERMINATION_NOTICE_DAYS: '3',
    });
    expect(run.code).toBe(2);
    expect(run.output.trim().split('\n').at(-1)).toMatch(/^Invalid setting LABVAULT_TERMINATION_NOTICE_DAYS: /);
    await new Promise((r) => setTimeout(r, 500));
    expect(processesFor(dataDir)).toEqual([]);
  });

  it('keeps Azurite on its ports across a restart, so an upload link issued before it still works; ends its output with the next steps', async () => {
    let host = await startHost();
    const lines = host.output().trim().split('\n');
    const ready = lines.findIndex((l) => l === 'LabVault local host is ready.');
    expect(ready).toBeGreaterThan(0);
    expect(lines.slice(ready).map((l) => l.split(':')[0]?.trim())).toEqual([
      'LabVault local host is ready.',
      'API',
      'Console',
      'OpenAPI',
      'Health',
      'Durable API',
      'Data',
      'Admin CLI',
      'Stop',
    ]);
    expect(lines.at(-1)).toMatch(/^ {2}Stop: +Ctrl\+C/);
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-restart', '--name', 'Lab Restart']);
    const key = `ApiKey ${String(admin(host.dataDir, ['integration', 'create', '--tenant', 'lab-restart', '--name', 'lis', '--permissions', 'orders:create,images:upload,images:read']).json?.apiKey)}`;
    const order = await callJson(host.apiBaseUrl, 'POST', '/orders', key, exampleOrder({ externalId: 'RESTART-1' }));
    const upload = await callJson(
      host.apiBaseUrl,
      'POST',
      `/orders/${String(order.json.id)}/specimens/S-0001/images`,
      key,
      { contentType: 'image/png', fileName: 'x.png' },
    );
    const dataDir = host.dataDir;
    await host.kill('SIGTERM'); // a clean stop: Azurite stops with the host
    host = await startHost({ dataDir });
    try {
      const bytes = await plainPng();
      await new BlockBlobClient(String(upload.json.uploadUrl)).upload(bytes, bytes.length);
      const deadline = Date.now() + 20_000;
      let status = '';
      while (status !== 'ready') {
        if (Date.now() > deadline) throw new Error(`image still ${status}`);
        await new Promise((r) => setTimeout(r, 200));
        const items = (
          await callJson(host.apiBaseUrl, 'GET', `/orders/${String(order.json.id)}/specimens/S-0001/images`, key)
        ).json.items as { status: string }[];
        status = items[0]?.status ?? '';
      }
    } finally {
      await host.kill();
    }
  });
});
