// The admin CLI says what happened: help on request, the cause of a failure (without secrets),
// unknown tenants and stale host files named as such.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;

describe('the admin CLI', () => {
  beforeAll(async () => {
    host = await startHost();
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('prints usage for --help and for <command> --help, and exits 0', () => {
    for (const args of [['--help'], ['help'], ['-h']]) {
      const r = admin(host.dataDir, args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('usage: npm run -s admin -- <area> <command>');
      expect(r.stdout).toContain('backup list');
    }
    const one = admin(host.dataDir, ['audit', 'verify', '--help']);
    expect(one.status).toBe(0);
    expect(one.stdout).toContain('usage: npm run -s admin -- audit verify --tenant <id>');
    const unknown = admin(host.dataDir, ['frobnicate', 'now']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate now"');
    const badFlag = admin(host.dataDir, ['audit', 'verify', '--no-such-flag']);
    expect(badFlag.status).toBe(2);
    expect(badFlag.stderr).not.toContain('TypeError');
  });

  it('names an unknown tenant instead of reporting a valid chain', () => {
    const r = admin(host.dataDir, ['audit', 'verify', '--tenant', 'no-such-lab']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no such tenant "no-such-lab"');
    expect(r.stdout).toBe('');
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-cli', '--name', 'Lab CLI']);
    expect(admin(host.dataDir, ['audit', 'verify', '--tenant', 'lab-cli']).json).toMatchObject({
      tenant: 'lab-cli',
      valid: true,
    });
  });

  it('gives an operator a new one-time password (break glass): the old password stops, the new one must be changed', async () => {
    const login = (password: string) =>
      fetch(`${host.apiBaseUrl}/auth/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ tenant: 'operator', username: 'operator', password }),
      });
    const first = admin(host.dataDir, ['operator', 'password-reset', '--username', 'operator']);
    expect(first.status, first.stderr).toBe(0);
    const second = admin(host.dataDir, ['operator', 'password-reset', '--username', 'operator']);
    const oneTime = String(second.json?.initialPassword);
    expect(oneTime).toMatch(/^\S{20}$/);
    expect((await login(String(first.json?.initialPassword))).status).toBe(401);
    const answer = await login(oneTime);
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { mustChangePassword: boolean }).mustChangePassword).toBe(true);
    const unknown = admin(host.dataDir, ['operator', 'password-reset', '--username', 'nobody']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('no operator "nobody"');
  });

  it('lists backups, and prints the cause of a failure without the secrets in it', () => {
    const created = admin(host.dataDir, ['backup', 'create']);
    expect(created.status, created.stderr).toBe(0);
    const listed = admin(host.dataDir, ['backup', 'list']);
    expect((listed.json?.backups as { backupId: string }[]).map((b) => b.backupId)).toContain(created.json?.backupId);
    // Restoring into an account nobody listens on: the cause is shown, the key in the target is not.
    const target =
      'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c3VwZXItc2VjcmV0LWtleQ==;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1';
    const failed = admin(host.dataDir, ['backup', 'restore', String(created.json?.backupId), '--target', target]);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/^admin failed: \w+: .*(ECONNREFUSED|connect)/m);
    expect(failed.stderr).not.toContain('c3VwZXItc2VjcmV0LWtleQ');
  });

  it('says "no running local host" when local-host.json belongs to a process that is gone', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'labvault-stale-'));
    writeFileSync(
      join(dataDir, 'local-host.json'),
      JSON.stringify({
        apiBaseUrl: 'http://127.0.0.1:1/api',
        storageConnectionString: 'UseDevelopmentStorage=true',
        pid: 2147483,
      }),
    );
    const r = admin(dataDir, ['backup', 'list']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no running local host');
    const none = admin(mkdtempSync(join(tmpdir(), 'labvault-empty-')), ['backup', 'list']);
    expect(none.stderr).toContain('no running local host');
  });
});
