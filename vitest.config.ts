import { defineConfig } from 'vitest/config'

/**
 * Files whose assertions bound latency or throughput under load (a frozen Redis, slow clients, signals mid-load).
 * They run after everything else, one at a time: on a 2-core machine another file's servers starting at the same
 * moment add 100 ms pauses that are not the gateway's.
 */
const TIMING = [
  'test/ratelimit/redis-stall.test.ts',
  'test/hardening/slowloris.test.ts',
  'test/durability/signals.test.ts',
]

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real servers; keep parallelism modest on a 2-core machine.
    maxWorkers: 2,
    env: { NODE_ENV: 'test' },
    projects: [
      // include/exclude live only here: a project that extends the root would add the root's patterns to its own.
      { extends: true, test: { name: 'main', include: ['**/*.test.ts'], exclude: ['node_modules/**', 'data/**', ...TIMING], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'timing', include: TIMING, exclude: ['node_modules/**', 'data/**'], fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
})
