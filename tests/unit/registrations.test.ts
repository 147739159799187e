// Every HTTP function the app registers must be an operation of the contract. The OpenAPI
// document, the per-principal route matrix, the isolation test and the fuzz test all enumerate
// ALL_OPERATIONS, so a route registered without joining it would be served but never documented,
// authorised by the matrix or fuzzed (POST /orders/search was, until this test).
import { describe, expect, it } from 'vitest';
import { installCoreModule } from '../../local-host/core-module.js';

// As the worker loads the app: the core module first, then the package entry.
const core = installCoreModule();
await import('../../functions/index.js');
const { ALL_OPERATIONS } = await import('../../lib/operations.js');

/** The console's static files: pages and scripts, no data, outside the API contract. */
const NOT_OPERATIONS = new Set(['consoleFiles']);

const httpRegistrations = [...core.registrations.values()].flatMap((registration) => {
  const trigger = Object.values(registration.bindings).find((b) => b.type === 'httpTrigger');
  if (!trigger) return [];
  const methods = (trigger.methods as string[]).map((m) => m.toUpperCase());
  return [{ name: registration.name, route: String(trigger.route), methods }];
});

describe('HTTP registrations', () => {
  it('registers each operation once, under its own id, method and route', () => {
    const operations = httpRegistrations.filter((r) => !r.name.startsWith('allow_') && !NOT_OPERATIONS.has(r.name));
    expect(operations.length).toBeGreaterThan(100);
    const unknown = operations.filter((r) => !ALL_OPERATIONS.some((op) => op.id === r.name)).map((r) => r.name);
    expect(unknown, 'registered as HTTP functions but missing from ALL_OPERATIONS').toEqual([]);
    for (const registration of operations) {
      const op = ALL_OPERATIONS.find((o) => o.id === registration.name);
      expect(registration.route, registration.name).toBe(op?.route);
      expect(
        registration.methods.filter((m) => m !== 'HEAD'),
        registration.name,
      ).toEqual([op?.method]);
    }
    expect(operations.map((r) => r.name).sort()).toEqual(ALL_OPERATIONS.map((op) => op.id).sort());
  });

  it('answers OPTIONS and 405 only on routes the contract has', () => {
    const allowRoutes = httpRegistrations.filter((r) => r.name.startsWith('allow_')).map((r) => r.route);
    expect(new Set(allowRoutes)).toEqual(new Set(ALL_OPERATIONS.map((op) => op.route)));
    expect(allowRoutes.length).toBe(new Set(allowRoutes).size);
  });
});
