/**
 * Hot reload under load: the config is reloaded every second for 10 s while ~500 req/s (keep-alive,
 * one in ten streaming) go through the gateway. Zero failed requests. Runs in CI: no skip.
 */
import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

const RATE = 500 // requests per second
const DURATION_MS = 10_000
const TOKENS12 = Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' ')

describe('hot reload under load', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  let pool: Pool

  const configA = (): Record<string, unknown> => ({
    providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-load-a' } },
    plugins: { 'request-id': { trustIncoming: true } },
  })
  const configB = (): Record<string, unknown> => ({
    providers: {
      mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-load-a' },
      spare: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-load-b' },
    },
    plugins: { 'request-id': { trustIncoming: false } },
  })

  beforeAll(async () => {
    mock = await startOpenAIMock({ record: false })
    tg = await startGateway(configA())
    pool = new Pool(tg.url, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 })
  })
  afterAll(async () => {
    await pool?.close()
    await tg?.close()
    await mock?.close()
  })

  it(`${RATE} req/s for ${DURATION_MS / 1000} s with a reload every second: 0 failed requests`, async () => {
    const failures: string[] = []
    let completed = 0
    let sent = 0
    const inflight = new Set<Promise<void>>()
    const body = (stream: boolean): string => JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'load' }], stream })

    async function one(i: number): Promise<void> {
      const stream = i % 10 === 0
      try {
        const r = await pool.request({
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'x-request-id': `load-${i}` },
          body: body(stream),
        })
        const text = await r.body.text()
        if (r.statusCode !== 200) { failures.push(`#${i}: ${r.statusCode} ${text.slice(0, 200)}`); return }
        if (stream) {
          if (!text.trimEnd().endsWith('data: [DONE]') || text.includes('"error"')) failures.push(`#${i}: stream incomplete: ${text.slice(-200)}`)
          else completed++
        } else {
          const content = (JSON.parse(text) as { choices: { message: { content: string } }[] }).choices[0]?.message.content
          if (content !== TOKENS12) failures.push(`#${i}: unexpected content ${String(content)}`)
          else completed++
        }
      } catch (e) {
        failures.push(`#${i}: ${(e as Error).message}`)
      }
    }

    // Reloads: alternate two valid configs every second of the load (sent by the load's own clock below: a
    // setInterval drifts when the event loop is busy, and gave 9 reloads in 10 s on a loaded machine).
    const reloads: { status: number; ok: boolean; generation: number }[] = []
    const startGeneration = tg.gw.holder.current.generation
    let useB = false
    let reloadsSent = 0
    const reload = (): void => {
      reloadsSent++
      useB = !useB
      tg.setConfig(useB ? configB() : configA())
      void fetch(`${tg.adminUrl}/api/v1/mcp/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
        .then(async (r) => {
          const j = await r.json() as { ok?: boolean; generation?: number }
          reloads.push({ status: r.status, ok: j.ok === true, generation: j.generation ?? -1 })
        })
        .catch((e: unknown) => {
          reloads.push({ status: 0, ok: false, generation: -1 })
          failures.push(`reload: ${(e as Error).message}`)
        })
    }

    // Paced load: every tick, send what is due at RATE per second.
    const t0 = performance.now()
    const total = (RATE * DURATION_MS) / 1000
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now() - t0
        if (now >= (reloadsSent + 1) * 1000 && reloadsSent < DURATION_MS / 1000 - 1) reload()
        const due = Math.min(total, Math.floor((now * RATE) / 1000))
        while (sent < due) {
          const p = one(sent++)
          inflight.add(p)
          void p.finally(() => inflight.delete(p))
        }
        if (sent >= total) resolve()
        else setTimeout(tick, 2)
      }
      tick()
    })
    const elapsed = performance.now() - t0
    await Promise.all(inflight)
    await vi.waitFor(() => expect(reloads.length).toBe(reloadsSent), { timeout: 3000, interval: 20 })
    expect(reloadsSent).toBe(DURATION_MS / 1000 - 1)

    expect(failures.slice(0, 10)).toEqual([])
    expect(sent).toBe(total)
    expect(completed).toBeGreaterThanOrEqual(4500)
    expect(elapsed).toBeLessThan(DURATION_MS + 1500) // the pace was held
    const good = reloads.filter((r) => r.status === 200 && r.ok)
    expect(good.length).toBeGreaterThanOrEqual(9)
    expect(tg.gw.holder.current.generation).toBeGreaterThanOrEqual(startGeneration + 9)
    expect(new Set(good.map((r) => r.generation)).size).toBe(good.length) // every reload was a real swap

    // Old generations drained; nothing is left in flight.
    await vi.waitFor(() => expect(tg.gw.holder.retiring).toBe(0), { timeout: 3000, interval: 20 })
    expect(tg.gw.metrics.inflight).toBe(0)
  }, 30_000)
})
