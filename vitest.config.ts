import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The long runs have their own command: npm run test:reliability.
    exclude: ['tests/reliability/**', '**/node_modules/**'],
    pool: 'forks',
    // Every answer the suites get from the API is checked against the OpenAPI document (ajv).
    setupFiles: ['tests/support/contract.ts'],
    testTimeout: 60_000,
    // Pages and workflows settle in their own time on two shared cores: poll up to 15 s, not 1 s.
    expect: { poll: { timeout: 15_000, interval: 100 } },
    hookTimeout: 60_000,
    // Integration and e2e suites each start their own Azurite; two cores are shared with it.
    maxWorkers: 2,
  },
});
