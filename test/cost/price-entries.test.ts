/**
 * Price entries mean the same in every plugin that takes them (cost-meter `pricing.models`, budget `prices`, cache
 * `prices`): one schema (gateway/cost/price-entry.ts), the same limits and the same calendar check of effectiveFrom.
 */
import { describe, expect, it } from 'vitest'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import { cachePlugin } from '../../plugins/cache/index.ts'
import { costMeterPlugin } from '../../plugins/cost-meter/index.ts'
import { createBudgetPlugin } from '../../plugins/budget/index.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'

const budgetPlugin = createBudgetPlugin()
const entry = { provider: 'openai', model: 'gpt-4o', input: 2.5, output: 10 }
const where: [PluginFactory, string, (prices: unknown[]) => Record<string, unknown>][] = [
  [costMeterPlugin, 'plugins.cost-meter', (p) => ({ pricing: { models: p } })],
  [budgetPlugin as PluginFactory, 'plugins.budget', (p) => ({ prices: p })],
  [cachePlugin, 'plugins.cache', (p) => ({ prices: p })],
]

describe('price entries in every plugin', () => {
  for (const [f, at, cfg] of where) {
    it(`${f.name}: the same entries accepted, and the same refused naming the field`, () => {
      expect(() => validatePluginConfig(f, cfg([entry]), at)).not.toThrow()
      expect(() => validatePluginConfig(f, cfg([{ ...entry, effectiveFrom: '2027-01-01T09:00Z' }]), at)).not.toThrow()
      // An absurd price (USD per million tokens) makes costs Infinity; a date-time without an offset is ambiguous.
      expect(() => validatePluginConfig(f, cfg([{ ...entry, output: 1e9 }]), at)).toThrow(/output/)
      expect(() => validatePluginConfig(f, cfg([{ ...entry, model: '' }]), at)).toThrow(/model/)
      expect(() => validatePluginConfig(f, cfg([{ ...entry, effectiveFrom: '2027-01-01T09:00' }]), at)).toThrow(/effectiveFrom/)
      // Processing tiers: flex and priority, each with at least input and output.
      const tiers = { flex: { input: 1.25, output: 5 }, priority: { input: 4.25, cachedInput: 2.125, output: 17 } }
      expect(() => validatePluginConfig(f, cfg([{ ...entry, serviceTiers: tiers }]), at)).not.toThrow()
      expect(() => validatePluginConfig(f, cfg([{ ...entry, serviceTiers: { scale: { input: 1, output: 1 } } }]), at)).toThrow(/scale/)
      expect(() => validatePluginConfig(f, cfg([{ ...entry, serviceTiers: { priority: { input: 4.25 } } }]), at)).toThrow(/output/)
    })
  }

  it('a date that does not exist is refused by every plugin when it is created', async () => {
    for (const [f, , cfg] of where) {
      const config = validatePluginConfig(f, cfg([{ ...entry, effectiveFrom: '2025-02-30' }]), 'x')
      const deps = { logger: { warn() {}, info() {}, error() {}, debug() {} }, metrics: undefined, services: {} } as never
      await expect(Promise.resolve().then(() => f.create(config, deps)), f.name).rejects.toThrow(/effectiveFrom: not a valid date/)
    }
  })
})
