/**
 * Like startGateway(), but the plugin registry is extended with test plugins (GatewayOptions.plugins),
 * so pipeline behaviour (hook order, local replies, carry-over) is observed through the real server.
 */
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { startGateway, type TestGateway } from './gateway.ts'

export function startGatewayWithPlugins(override: Record<string, unknown>, extra: readonly PluginFactory[]): Promise<TestGateway> {
  return startGateway(override, { plugins: extra })
}
