/**
 * Like startGateway(), but with shared plugin services (GatewayOptions.services), e.g. a Redis
 * client for the rate-limit plugin, as the composition root would hand them over.
 */
import { Writable } from 'node:stream'
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { AdminServer } from '../../admin/server.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import type { PluginServices } from '../../gateway/pipeline/types.ts'
import { testSettings, type TestGateway } from './gateway.ts'

export async function startGatewayWithServices(override: Record<string, unknown>, services: PluginServices): Promise<TestGateway> {
  let current = override
  const lines: string[] = []
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb() } })
  const logger = createLogger('info', sink)
  const gw = await Gateway.create({ logger, load: () => testSettings(current), services })
  const admin = new AdminServer(gw)
  registerTargetRoutes(admin, gw)
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
