/**
 * Spawns test/durability/gateway-entry.ts as a real process (like test/helpers/gateway-process.ts does for
 * main.ts): NODE_CONFIG_DIR is a temp copy of config/ plus a local.yaml, ports picked beforehand.
 */
import type { ChildProcess } from 'node:child_process'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { spawnConfigured } from '../helpers/gateway-process.ts'

export interface EntryProcess {
  readonly proc: ChildProcess
  readonly url: string
  readonly adminUrl: string
  output(): string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop(): Promise<void>
}

export async function spawnEntry(local: Record<string, unknown>, env: Record<string, string>): Promise<EntryProcess> {
  const p = await spawnConfigured('test/durability/gateway-entry.ts', local, { MCP_ADMIN_KEY: ADMIN_KEY, MCP_LOG_LEVEL: 'warn', ...env })
  return { proc: p.proc, url: p.url, adminUrl: p.adminUrl, output: p.output, exited: p.exited, stop: p.stop }
}

export { ADMIN_KEY }
