import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTING_NAMES } from '../../lib/config.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** The settings named in the first column of docs/settings.md's tables. */
function documentedSettings(): Set<string> {
  const text = readFileSync(join(ROOT, 'docs', 'settings.md'), 'utf8');
  return new Set([...text.matchAll(/^\| `([A-Za-z_]+)` \|/gm)].map((m) => m[1] as string));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, dir, f));
}

/** Every LABVAULT_*, AzureWebJobsStorage* and PORT variable read as `env.NAME` (or the bridge's `setting('NAME')`) outside the config module. */
function settingsReadDirectly(): Set<string> {
  const files = [
    ...['lib', 'functions', 'orchestrations', 'local-host'].flatMap(sourceFiles),
    join(ROOT, 'scripts', 'admin.ts'),
    join(ROOT, 'scripts', 'start-local.ts'),
    join(ROOT, 'scripts', 'mllp-bridge.ts'),
  ];
  const names = new Set<string>();
  for (const file of files)
    for (const m of readFileSync(file, 'utf8').matchAll(
      /(?:env\.|setting\(')((?:LABVAULT_|AzureWebJobsStorage|OTEL_|APPLICATIONINSIGHTS_)\w*|PORT)\b/g,
    ))
      names.add(m[1] as string);
  return names;
}

describe('docs/settings.md', () => {
  it('lists every setting lib/config.ts parses', () => {
    expect(SETTING_NAMES.length).toBeGreaterThan(20);
    const missing = SETTING_NAMES.filter((name) => !documentedSettings().has(name));
    expect(missing).toEqual([]);
  });

  it('lists every setting the hosts and the admin CLI read directly', () => {
    const read = settingsReadDirectly();
    expect(read).toContain('LABVAULT_DURABLE_LEASE_SECONDS');
    expect([...read].filter((name) => !documentedSettings().has(name))).toEqual([]);
  });

  it('names no setting the code does not read', () => {
    const known = new Set([...SETTING_NAMES, ...settingsReadDirectly()]);
    expect([...documentedSettings()].filter((name) => !known.has(name))).toEqual([]);
  });
});
