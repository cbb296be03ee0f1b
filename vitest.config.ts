import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'data/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real servers; keep parallelism modest on a 2-core machine.
    maxWorkers: 2,
    env: { NODE_ENV: 'test' },
  },
})
