import { randomBytes, randomFillSync } from 'node:crypto';

/**
 * Random bytes from the system's CSPRNG, fetched 4 KiB at a time and handed out once each (copied,
 * never reused). Every order takes six small draws (five AES-GCM nonces and its id); one
 * `randomBytes` call each was 3 % of the host's CPU per order. Node's own `randomUUID` pools the
 * same way.
 */
const POOL = Buffer.alloc(4096);
let offset = POOL.length;

export function pooledRandomBytes(size: number): Buffer {
  if (size > POOL.length / 8) return randomBytes(size);
  if (offset + size > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  const out = Buffer.from(POOL.subarray(offset, offset + size));
  POOL.fill(0, offset, offset + size); // what was handed out does not stay in the pool
  offset += size;
  return out;
}
