// The LDT 3 reader under fast-check: whatever a practice system sends, the answer is orders that
// pass the order model, or a domain error naming a line (and a field where there is one).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../lib/errors.js';
import { ordersOfLdt } from '../../lib/intake/ldt/order.js';
import { parseLdt } from '../../lib/intake/ldt/parser.js';
import { createOrderSchema } from '../../lib/orders/schemas.js';
import { ldtFile, ldtLines } from '../support/ldt.js';

const GOLDEN = readFileSync('docs/examples/order.ldt');
const lines = ldtLines(GOLDEN);

function outcomeOf(file: Buffer): 'orders' | 'refused' {
  try {
    const orders = ordersOfLdt(parseLdt(file));
    for (const { order } of orders) expect(createOrderSchema.safeParse(order).success).toBe(true);
    return 'orders';
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    const errors = (error as DomainError).extras.errors ?? [];
    if ((error as DomainError).kind !== 'unsupported-media-type') expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e.path).toMatch(/^line \d+/);
    return 'refused';
  }
}

describe('the LDT 3 reader', () => {
  it('reads the golden packet', () => {
    expect(outcomeOf(GOLDEN)).toBe('orders');
  });

  it('answers line mutations (content changed, lines dropped or repeated) with orders or a located refusal', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant('set' as const), fc.nat(lines.length - 1), fc.string({ maxLength: 30 })),
            fc.tuple(fc.constant('drop' as const), fc.nat(lines.length - 1), fc.constant('')),
            fc.tuple(fc.constant('repeat' as const), fc.nat(lines.length - 1), fc.constant('')),
          ),
          { minLength: 1, maxLength: 3 },
        ),
        (mutations) => {
          const copy = [...lines];
          for (const [kind, at, value] of mutations) {
            const i = at % copy.length;
            if (kind === 'set') copy[i] = `${(copy[i] ?? '0000').slice(0, 4)} ${value}`;
            else if (kind === 'drop') copy.splice(i, 1);
            else copy.splice(i, 0, copy[i] ?? '');
          }
          seen.add(outcomeOf(ldtFile(copy)));
        },
      ),
      { numRuns: 500, seed: 20261130 },
    );
    expect(seen).toEqual(new Set(['orders', 'refused']));
  });

  it('refuses arbitrary bytes with a domain error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        expect(outcomeOf(Buffer.from(bytes))).toBe('refused');
      }),
      { numRuns: 300, seed: 20261130 },
    );
  });
});
