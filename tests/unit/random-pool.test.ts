import { describe, expect, it } from 'vitest';
import { pooledRandomBytes } from '../../lib/crypto/random-pool.js';

describe('pooledRandomBytes', () => {
  it('never hands out the same bytes twice, across many refills of the pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) seen.add(pooledRandomBytes(12).toString('hex'));
    expect(seen.size).toBe(20_000);
  });

  it('returns copies of the requested size that later draws do not change', () => {
    const first = pooledRandomBytes(16);
    const copy = Buffer.from(first);
    for (let i = 0; i < 1000; i++) pooledRandomBytes(16);
    expect(first).toEqual(copy);
    expect(first).toHaveLength(16);
    expect(pooledRandomBytes(4096)).toHaveLength(4096);
    expect(first.equals(Buffer.alloc(16))).toBe(false);
  });
});
