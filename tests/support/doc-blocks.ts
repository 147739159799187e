import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/** The fenced blocks of a Markdown file whose info string is exactly "bash <marker>", in order. */
export function markedBlocks(file: string, marker: string): string[] {
  const text = readFileSync(resolve(ROOT, file), 'utf8');
  return [...text.matchAll(new RegExp('^```bash ' + marker + '\\n([\\s\\S]*?)^```$', 'gm'))].map((m) => m[1] ?? '');
}

export interface ScriptRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the blocks as one bash script from the repository's root, as a reader pasting them into a
 * terminal would, but stopping at the first failing command (`set -euo pipefail`).
 */
export function runBash(script: string, env: Record<string, string>, timeoutMs: number): Promise<ScriptRun> {
  return new Promise((resolveRun) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-s'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolveRun({ status, stdout, stderr });
    });
    child.stdin.end(script);
  });
}
