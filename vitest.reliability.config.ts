import { defineConfig } from 'vitest/config';

// `npm run test:reliability`: the long runs (load, faults, crashes, fuzzing, isolation, canary data).
// One suite at a time: each one loads the two cores with its own host and Azurite.
export default defineConfig({
  test: {
    include: ['tests/reliability/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 600_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
  },
});
