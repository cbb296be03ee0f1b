/**
 * The model catalog's degraded mode (gateway/model-catalog.ts): a provider whose list fails is served from its stale
 * list, warned about at most once a minute, and concurrent listings share one request.
 */
import { pino, type Logger } from 'pino'
import { describe, expect, it } from 'vitest'
import { ModelCatalog } from '../../gateway/model-catalog.ts'
import type { ProviderAdapter } from '../../providers/types.ts'

function fakeAdapter(answers: (() => Promise<string[]>)[]): ProviderAdapter & { calls: number } {
  const a = {
    calls: 0,
    listModels: () => [],
    discoverModels: () => { const f = answers[Math.min(a.calls, answers.length - 1)]!; a.calls++; return f() },
  }
  return a as unknown as ProviderAdapter & { calls: number }
}

function logger(): { log: Logger; warnings: unknown[] } {
  const warnings: unknown[] = []
  const log: Logger = pino({ level: 'warn' }, { write: (s: string) => { warnings.push(JSON.parse(s)) } }) as unknown as Logger
  return { log, warnings }
}

describe('ModelCatalog', () => {
  it('serves a failed provider from its stale list and warns once a minute, not per listing', async () => {
    const a = fakeAdapter([async () => ['m1', 'm2'], async () => { throw new Error('upstream down, key sk-secret redacted upstream') }])
    const { log, warnings } = logger()
    const c = new ModelCatalog()
    // TTL 0: every listing asks again (and the failure backoff is at most the TTL).
    const s = { cacheTtlMs: 0, timeoutMs: 1000 }
    const providers = new Map([['p', a]])
    expect(await c.list(providers, s, log)).toEqual([['p', ['m1', 'm2']]])
    expect(await c.list(providers, s, log)).toEqual([['p', ['m1', 'm2']]])
    expect(await c.list(providers, s, log)).toEqual([['p', ['m1', 'm2']]])
    expect(a.calls).toBe(3)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ provider: 'p', stale: true, msg: expect.stringContaining('model discovery failed') })
  })

  it('leaves a provider out when it never answered, and concurrent listings share one request', async () => {
    const a = fakeAdapter([async () => { throw new Error('refused') }])
    const b = fakeAdapter([() => new Promise((r) => setTimeout(() => r(['x']), 20))])
    const c = new ModelCatalog()
    const s = { cacheTtlMs: 60_000, timeoutMs: 1000 }
    const providers = new Map([['a', a], ['b', b]])
    const [one, two] = await Promise.all([c.list(providers, s, logger().log), c.list(providers, s, logger().log)])
    expect(one).toEqual([['a', []], ['b', ['x']]])
    expect(two).toEqual(one)
    expect([a.calls, b.calls]).toEqual([1, 1])
  })
})
