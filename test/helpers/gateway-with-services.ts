/** Like startGateway(), with shared plugin services (a Redis client for the rate-limit plugin, sinks). */
import type { PluginServices } from '../../gateway/pipeline/types.ts'
import { startGateway, type TestGateway } from './gateway.ts'

export function startGatewayWithServices(override: Record<string, unknown>, services: PluginServices): Promise<TestGateway> {
  return startGateway(override, { services })
}
