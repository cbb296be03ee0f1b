/** Static plugin registry: name → factory. Reached only from the gateway's composition root. */
import type { PluginFactory } from '../gateway/pipeline/types.ts'
import { accessLogPlugin } from './access-log/index.ts'
import { authPlugin } from './auth/index.ts'
import { budgetPlugin } from './budget/index.ts'
import { cachePlugin } from './cache/index.ts'
import { costMeterPlugin } from './cost-meter/index.ts'
import { executionLogPlugin } from './execution-log/index.ts'
import { rateLimitPlugin } from './rate-limit/index.ts'
import { requestIdPlugin } from './request-id/index.ts'

const factories: ReadonlyMap<string, PluginFactory> = new Map<string, PluginFactory>(
  ([authPlugin, requestIdPlugin, accessLogPlugin, executionLogPlugin, rateLimitPlugin, costMeterPlugin, budgetPlugin, cachePlugin] as PluginFactory[]).map((f) => [f.name, f]),
)

export function pluginFactory(name: string): PluginFactory | undefined {
  return factories.get(name)
}

export function pluginNames(): string[] {
  return [...factories.keys()]
}
