// The FHIR Bundle mapper under fast-check: whatever a sender gets wrong, the answer is an order
// that passes the order model, or a domain error whose every issue names a FHIRPath into the Bundle.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../lib/errors.js';
import { orderOfBundle } from '../../lib/intake/fhir/bundle.js';
import { createOrderSchema } from '../../lib/orders/schemas.js';

const golden = JSON.parse(readFileSync('docs/examples/order.fhir.json', 'utf8')) as unknown;

/** Every path to a value inside the Bundle. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof value !== 'object' || value === null) return [prefix];
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [prefix, ...keys.flatMap((k) => pathsOf((value as Record<string | number, unknown>)[k], [...prefix, k]))];
}

function mutate(bundle: unknown, path: (string | number)[], replacement: unknown): unknown {
  const copy = structuredClone(bundle) as Record<string | number, unknown>;
  if (path.length === 0) return replacement;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path.at(-1) as string | number;
  // JSON has no holes: a removed array element goes away.
  if (replacement === undefined && Array.isArray(node)) node.splice(Number(last), 1);
  else if (replacement === undefined) delete node[last];
  else node[last] = replacement;
  return copy;
}

function outcomeOf(bundle: unknown): 'order' | 'refused' {
  try {
    const mapped = orderOfBundle(bundle);
    expect(createOrderSchema.safeParse(mapped.order).success).toBe(true);
    return 'order';
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    const errors = (error as DomainError).extras.errors ?? [];
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e.path).toMatch(/^Bundle/);
    return 'refused';
  }
}

describe('orderOfBundle', () => {
  it('maps the golden Bundle', () => {
    expect(outcomeOf(golden)).toBe('order');
  });

  it('answers every mutation with an order or a located refusal, never anything else', () => {
    const paths = pathsOf(golden);
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...paths), fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 }))), {
          minLength: 1,
          maxLength: 3,
        }),
        (mutations) => {
          let bundle = golden;
          for (const [path, replacement] of mutations) {
            try {
              bundle = mutate(bundle, path, replacement);
            } catch {
              // the path no longer exists after an earlier mutation
            }
          }
          seen.add(outcomeOf(bundle));
        },
      ),
      { numRuns: 300, seed: 20261130 },
    );
    expect(seen).toEqual(new Set(['order', 'refused']));
  });
});
