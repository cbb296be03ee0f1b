/**
 * Spawns test/ratelimit/gateway-entry.ts as a real process (like test/helpers/gateway-process.ts
 * does for main.ts): a temp copy of config/ plus local.yaml, free ports, ready when /healthz answers.
 */
import type { ChildProcess } from 'node:child_process'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { spawnConfigured } from '../helpers/gateway-process.ts'

export interface EntryProcess {
  readonly proc: ChildProcess
  readonly url: string
  readonly adminUrl: string
  output(): string
  metrics(): Promise<string>
  stop(): Promise<void>
}

export async function spawnEntry(local: Record<string, unknown>, env: Record<string, string>): Promise<EntryProcess> {
  const p = await spawnConfigured('test/ratelimit/gateway-entry.ts', local, { MCP_ADMIN_KEY: ADMIN_KEY, MCP_LOG_LEVEL: 'warn', ...env }, 15_000)
  return {
    proc: p.proc,
    url: p.url,
    adminUrl: p.adminUrl,
    output: p.output,
    async metrics() {
      const r = await fetch(`${p.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      return r.text()
    },
    stop: p.stop,
  }
}

/** Value of one series in a Prometheus text scrape (0 when absent). */
export function series(text: string, s: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${s} `))
  return line === undefined ? 0 : Number(line.slice(s.length + 1))
}
