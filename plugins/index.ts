/** Static plugin registry: name → factory. Reached only from the gateway's composition root. */
import type { PluginFactory } from '../gateway/pipeline/types.ts'
import { accessLogPlugin } from './access-log/index.ts'
import { authPlugin } from './auth/index.ts'
import { requestIdPlugin } from './request-id/index.ts'

const factories: ReadonlyMap<string, PluginFactory> = new Map<string, PluginFactory>(
  ([authPlugin, requestIdPlugin, accessLogPlugin] as PluginFactory[]).map((f) => [f.name, f]),
)

export function pluginFactory(name: string): PluginFactory | undefined {
  return factories.get(name)
}

export function pluginNames(): string[] {
  return [...factories.keys()]
}
