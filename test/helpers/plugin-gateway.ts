/**
 * Like startGateway(), but the plugin registry is extended with test plugins (GatewayOptions.plugins),
 * so pipeline behaviour (hook order, local replies, carry-over) is observed through the real server.
 */
import { Writable } from 'node:stream'
import { AdminServer } from '../../admin/server.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { pluginFactory } from '../../plugins/index.ts'
import { testSettings, type TestGateway } from './gateway.ts'

export async function startGatewayWithPlugins(override: Record<string, unknown>, extra: readonly PluginFactory[]): Promise<TestGateway> {
  let current = override
  const lines: string[] = []
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb() } })
  const logger = createLogger('info', sink)
  const byName = new Map(extra.map((f) => [f.name, f]))
  const gw = await Gateway.create({ logger, load: () => testSettings(current), plugins: (n) => byName.get(n) ?? pluginFactory(n) })
  const admin = new AdminServer(gw)
  const data = await gw.listen()
  const adm = await admin.listen('127.0.0.1', 0, gw.settings.admin.key)
  return {
    gw,
    admin,
    url: `http://127.0.0.1:${data.port}`,
    adminUrl: `http://127.0.0.1:${adm.port}`,
    get logs() { return lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown> } catch { return { raw: l } } }) },
    logText: () => lines.join('\n'),
    setConfig(o) { current = o },
    async close() {
      await gw.shutdown(2000)
      await admin.close()
    },
  }
}
