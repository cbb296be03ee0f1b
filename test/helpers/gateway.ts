/**
 * Starts a real gateway (data plane + admin listener) in-process on ephemeral ports, with settings
 * built from the repo's config/default.yaml plus an override, so tests exercise the real server.
 */
import { Writable } from 'node:stream'
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { AdminServer } from '../../admin/server.ts'
import { Gateway } from '../../gateway/gateway.ts'
import type { PluginFactory, PluginServices } from '../../gateway/pipeline/types.ts'
import { pluginFactory } from '../../plugins/index.ts'
import { createLogger } from '../../gateway/logger.ts'
import { parseSettings, readRawConfig, type Settings } from '../../gateway/settings.ts'

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef-0123'

export interface TestGateway {
  gw: Gateway
  admin: AdminServer
  url: string
  adminUrl: string
  /** Every log line the gateway wrote, parsed. */
  logs: Record<string, unknown>[]
  /** Raw log text (for secret scans). */
  logText(): string
  /** Replaces the override used by the next reload. */
  setConfig(override: Record<string, unknown>): void
  close(): Promise<void>
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k]
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && cur !== null && typeof cur === 'object' && !Array.isArray(cur)
      ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
      : v
  }
  return out
}

export function testSettings(override: Record<string, unknown>): Settings {
  const base = readRawConfig()
  return parseSettings(merge(base, merge({ server: { port: 0 }, admin: { port: 0, key: ADMIN_KEY }, log: { level: 'info' }, reload: { watch: false } }, override)))
}

export interface StartGatewayOptions {
  /** Test plugins added to the registry (GatewayOptions.plugins); the built-in ones stay. */
  plugins?: readonly PluginFactory[]
  /** Shared plugin services (Redis, sinks), as the composition root hands them over. */
  services?: PluginServices
  /** More admin routes, after the targets API. */
  adminRoutes?: (admin: AdminServer, gw: Gateway) => void
}

export async function startGateway(override: Record<string, unknown> = {}, opts: StartGatewayOptions = {}): Promise<TestGateway> {
  let current = override
  const lines: string[] = []
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb() } })
  const logger = createLogger('info', sink)
  const extra = new Map((opts.plugins ?? []).map((f) => [f.name, f] as const))
  const gw = await Gateway.create({
    logger,
    load: () => testSettings(current),
    ...(extra.size > 0 ? { plugins: (n: string) => extra.get(n) ?? pluginFactory(n) } : {}),
    ...(opts.services ? { services: opts.services } : {}),
  })
  const admin = new AdminServer(gw)
  registerTargetRoutes(admin, gw)
  opts.adminRoutes?.(admin, gw)
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

export function authHeaders(key = ADMIN_KEY): Record<string, string> {
  return { authorization: `Bearer ${key}`, 'content-type': 'application/json' }
}
