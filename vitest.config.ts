import { defineConfig } from 'vitest/config'

// Tests run against real PostgreSQL and Redis (see test/global-setup.ts for the addresses and how
// to point them elsewhere). Each file builds its own app; files isolate their data by unique ids.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
