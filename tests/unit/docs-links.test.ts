import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');

function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(ROOT, 'docs', f));
  return [join(ROOT, 'README.md'), join(ROOT, 'bicep', 'README.md'), ...docs];
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(file: string): Set<string> {
  const headings = [...readFileSync(file, 'utf8').matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1] as string);
  return new Set(
    headings.map((h) =>
      h
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    ),
  );
}

describe('the documentation', () => {
  const links = markdownFiles().flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)].map((m) => ({
      file: relative(ROOT, file),
      target: m[1] as string,
    })),
  );

  it('links only inside the repository', () => {
    expect(links.length).toBeGreaterThan(20);
    expect(links.filter((l) => /^[a-z][a-z0-9+.-]*:/i.test(l.target))).toEqual([]);
    for (const { file, target } of links) {
      const [path] = target.split('#');
      const resolved = path ? resolve(ROOT, dirname(file), path) : resolve(ROOT, file);
      expect(relative(ROOT, resolved).startsWith('..'), `${file} → ${target}`).toBe(false);
      expect(existsSync(resolved), `${file} → ${target}`).toBe(true);
    }
  });

  it('links to headings that exist', () => {
    const anchored = links.filter((l) => l.target.includes('#'));
    expect(anchored.length).toBeGreaterThan(1);
    for (const { file, target } of anchored) {
      const [path, anchor] = target.split('#') as [string, string];
      const resolved = path ? resolve(ROOT, dirname(file), path) : resolve(ROOT, file);
      expect(anchorsOf(resolved).has(anchor), `${file} → ${target}`).toBe(true);
    }
  });
});
