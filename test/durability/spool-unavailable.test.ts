/**
 * A spool that cannot be opened (here: its path is a file; also a second process on the same data directory) was
 * only logged: metrics showed an empty, healthy spool and /readyz said ready, while rows waited in memory during a
 * database outage and those still waiting at shutdown were lost. Now readiness is `degraded` with
 * `execution_log_spool` failed, and `mcp_execution_log_spool_available` is 0. Through the real process (main.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from '../helpers/gateway-process.ts'

describe('an execution-log spool that cannot be opened is reported', () => {
  let gw: GatewayProcess | undefined
  afterEach(async () => { await gw?.stop(); gw = undefined })

  const spoolMetric = async (p: GatewayProcess): Promise<string | undefined> => {
    const text = await (await fetch(`${p.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
    return /^mcp_execution_log_spool_available (\d+)$/m.exec(text)?.[1]
  }
  const ready = async (p: GatewayProcess): Promise<{ status: number; body: { status: string; degraded?: string[]; checks: Record<string, boolean> } }> => {
    const r = await fetch(`${p.adminUrl}/readyz`)
    return { status: r.status, body: await r.json() as { status: string; degraded?: string[]; checks: Record<string, boolean> } }
  }

  it('its path is a file: /readyz degraded (execution_log_spool), the gauge 0, requests still served', async () => {
    gw = await spawnGateway({}, (configDir) => {
      const data = path.join(configDir, 'data')
      mkdirSync(data, { recursive: true })
      writeFileSync(path.join(data, 'spool'), 'not a directory')
      return {}
    })
    const p = gw
    await expect.poll(() => spoolMetric(p), { timeout: 5000 }).toBe('0')
    const r = await ready(p)
    expect(r.status).toBe(200)
    expect(r.body.status).toBe('degraded')
    expect(r.body.degraded).toContain('execution_log_spool')
    expect(r.body.checks['execution_log_spool']).toBe(false)
    expect(p.output()).toContain('the spool cannot be opened')
  })

  it('a spool that opens: the gauge 1 and the check passes', async () => {
    gw = await spawnGateway({})
    const p = gw
    await expect.poll(() => spoolMetric(p), { timeout: 5000 }).toBe('1')
    const r = await ready(p)
    expect(r.body.checks['execution_log_spool']).toBe(true)
    expect(r.body.degraded ?? []).not.toContain('execution_log_spool')
  })
})
