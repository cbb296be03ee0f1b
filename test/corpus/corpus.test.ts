/**
 * The malformed-input corpus (test/corpus/cases.jsonl, written by generate.ts), replayed byte for byte
 * over raw TCP against the real listeners, data plane and admin, with a mock provider behind them.
 * Every case must get an answer that is JSON (an error body for 4xx), never a 5xx; framing errors and
 * smuggling attempts must close the connection and never serve the smuggled request; and the process
 * must still answer its health checks after every batch.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import type { CorpusCase } from './case.ts'
import { judge, replay } from './replay.ts'

const FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cases.jsonl')
const CASES: CorpusCase[] = readFileSync(FILE, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as CorpusCase)
const CONCURRENCY = 16

/**
 * Cases that fail because of bugs outside this suite's files, each with where the fix goes. Their
 * failures are printed, not fatal; once a bug is fixed its cases pass and the test fails until the
 * entry is removed here, so the list cannot rot.
 */
const KNOWN: readonly { description: RegExp; log?: RegExp; bug: string }[] = []
const knownOf = (c: CorpusCase): (typeof KNOWN)[number] | undefined => KNOWN.find((k) => k.description.test(c.description))
const HEALTH_EVERY = 100

describe('malformed-input corpus', () => {
  let mock: OpenAIMock
  let tg: TestGateway
  let ports: { data: number; admin: number }

  beforeAll(async () => {
    mock = await startOpenAIMock({ record: false })
    tg = await startGateway({
      // Short receive timeouts so the cases that end only with a timeout end quickly.
      // Shedding off: the corpus's own huge cases load the loop, and a 503 would hide the answer under test (shed.test.ts covers it).
      server: { headersTimeoutMs: 2000, requestTimeoutMs: 3000, shedding: { enabled: false } },
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-corpus', models: ['gpt-4o', 'text-embedding-3-small'] } },
    })
    ports = { data: Number(new URL(tg.url).port), admin: Number(new URL(tg.adminUrl).port) }
  })
  afterAll(async () => {
    await tg?.close()
    await mock?.close()
  })

  it('holds at least 1,000 cases across every category', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(1000)
    const cats = new Set(CASES.map((c) => c.category))
    for (const c of ['broken-json', 'wrong-type', 'huge-number', 'deep-nesting', 'huge-payload', 'invalid-utf8', 'content-type', 'headers', 'framing', 'smuggling', 'path-confusion', 'methods', 'request-target']) {
      expect(cats.has(c), c).toBe(true)
    }
    expect(new Set(CASES.map((c) => c.id)).size).toBe(CASES.length)
    expect(CASES.some((c) => c.target === 'admin')).toBe(true)
  })

  async function healthy(): Promise<string | undefined> {
    try {
      const h = await fetch(`${tg.adminUrl}/healthz`)
      if (h.status !== 200) return `admin /healthz answered ${h.status}`
      const m = await fetch(`${tg.url}/v1/models`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      if (m.status !== 200) return `data /v1/models answered ${m.status}`
      const c = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }) })
      if (c.status !== 200) return `data chat answered ${c.status}: ${await c.text()}`
      await c.text()
    } catch (e) {
      return `health check failed: ${(e as Error).message}`
    }
    return undefined
  }

  it('every case: an answer, JSON, never 5xx; framing errors close; smuggled requests never served; the process stays healthy', async () => {
    const failures: string[] = []
    const known: string[] = []
    const knownPassing = new Set<(typeof KNOWN)[number]>()
    const knownFailing = new Set<(typeof KNOWN)[number]>()
    const stats = { statuses: new Map<number, number>(), closed: 0 }
    const run = async (c: CorpusCase): Promise<void> => {
      const x = await replay(c.target === 'admin' ? ports.admin : ports.data, c, c.expect.slow ? 12_000 : 8_000)
      for (const r of x.responses.slice(0, 1)) stats.statuses.set(r.status, (stats.statuses.get(r.status) ?? 0) + 1)
      if (x.closed) stats.closed++
      const errs = judge(c, x).map((e) => `${c.id} [${c.target}] ${c.description}: ${e}`)
      const k = knownOf(c)
      if (k) {
        if (errs.length > 0) { knownFailing.add(k); known.push(...errs) } else knownPassing.add(k)
      } else failures.push(...errs)
    }
    const fast = CASES.filter((c) => !c.expect.slow)
    const slow = CASES.filter((c) => c.expect.slow)
    for (let i = 0; i < fast.length; i += CONCURRENCY) {
      await Promise.all(fast.slice(i, i + CONCURRENCY).map(run))
      if ((i / CONCURRENCY) % Math.ceil(HEALTH_EVERY / CONCURRENCY) === 0 || i + CONCURRENCY >= fast.length) {
        const h = await healthy()
        if (h) { failures.push(`after case ${fast[Math.min(i + CONCURRENCY, fast.length) - 1]!.id}: ${h}`); break }
      }
    }
    await Promise.all(slow.map(run))
    const h = await healthy()
    if (h) failures.push(`after the slow cases: ${h}`)
    const internal = tg.logs.filter((l) => l['msg'] === 'internal error' || (l['level'] as number) >= 50)
    for (const l of internal) {
      const text = JSON.stringify(l)
      if (KNOWN.some((k) => k.log?.test(text))) continue
      failures.push(`error logged: ${text.slice(0, 300)}`)
    }
    for (const k of KNOWN) {
      if (!knownFailing.has(k) && knownPassing.has(k)) failures.push(`known issue fixed, remove it from KNOWN: ${k.bug.slice(0, 120)}`)
      if (knownFailing.has(k)) console.warn(`KNOWN ISSUE (not fatal): ${k.bug}\n  ${known.filter((e) => k.description.test(e.split(': ')[0]!.replace(/^\S+ \[\w+\] /, ''))).length} failing checks`)
    }
    // Shown in the test output: how the corpus was answered.
    console.log(`corpus: ${CASES.length} cases (${slow.length} slow); first-answer statuses ${JSON.stringify(Object.fromEntries([...stats.statuses].sort((a, b) => a[0] - b[0])))}; ${stats.closed} connections closed by the server; ${failures.length} failures; ${known.length} known-issue failures`)
    expect(failures).toEqual([])
  }, 300_000)
})
