/**
 * /metrics is valid Prometheus text (format 0.0.4) after a mixed load, read by a strict parser:
 * families declared once before their samples, no duplicate series, escaped label values, cumulative
 * histograms, counters that only go up. The metrics the docs name and the Grafana dashboard queries exist.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, authHeaders, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { checkMonotone, parseExposition } from '../helpers/prom-parse.ts'
import { Metrics } from '../../gateway/metrics.ts'

const ROOT = join(import.meta.dirname, '..', '..')
/** A model name that needs escaping in a label (a newline is not a model name: a 400 at the edge; escaped below). */
const WEIRD = 'we"ird\\model name'

describe('/metrics exposition after a mixed load', () => {
  let gw: TestGateway
  let openai: OpenAIMock
  let claude: AnthropicMock

  beforeAll(async () => {
    ;[openai, claude] = await Promise.all([startOpenAIMock(), startAnthropicMock()])
    gw = await startGateway({
      providers: {
        mock: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-expo-openai-0001' },
        claude: { type: 'anthropic', baseUrl: claude.url, apiKey: 'sk-ant-expo-000001' },
      },
      routing: { health: { enabled: false } },
      models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }, { provider: 'claude', model: 'claude-3-5-haiku-20241022', priority: 1 }] } },
      log: { level: 'warn' },
    })
  })

  afterAll(async () => {
    await gw?.close()
    await Promise.all([openai?.close(), claude?.close()])
  })

  const scrape = async (): Promise<string> => (await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
  const chat = (body: Record<string, unknown>, headers: Record<string, string> = authHeaders()) =>
    fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...body }) }).then((r) => r.text())

  async function load(): Promise<void> {
    await Promise.all([
      ...Array.from({ length: 5 }, () => chat({ model: 'mock/gpt-4o' })),
      ...Array.from({ length: 3 }, () => chat({ model: 'mock/gpt-4o', stream: true })),
      ...Array.from({ length: 3 }, () => chat({ model: 'claude/claude-3-5-haiku-20241022' })),
      ...Array.from({ length: 2 }, () => chat({ model: 'claude/claude-3-5-haiku-20241022', stream: true })),
      ...Array.from({ length: 2 }, () => chat({ model: 'smart' })),
      chat({ model: `mock/${WEIRD}` }),
      chat({ model: 'nope/gpt-4o' }),
      chat({ model: 'mock/gpt-4o' }, { 'content-type': 'application/json' }),
      chat({ model: 'mock/gpt-4o' }, { ...authHeaders(), 'x-mock-fault': 'status:500' }),
      fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'claude/claude-3-5-haiku-20241022', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }) }).then((r) => r.text()),
      fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'mock/text-embedding-3-small', input: 'x' }) }).then((r) => r.text()),
    ])
    claude.fault = 'status:529,times:1'
    await chat({ model: 'claude/claude-3-5-haiku-20241022' })
    claude.fault = null
  }

  it('is strict Prometheus text, label values escaped, counters monotone across scrapes', async () => {
    await load()
    const first = parseExposition(await scrape())
    await load()
    const text = await scrape()
    const second = parseExposition(text)
    checkMonotone(first, second)
    const cost = second.get('mcp_tokens_total')!
    expect(cost.samples.some((s) => s.labels['model'] === WEIRD), 'the odd model name round-trips through escaping').toBe(true)
    // Every label value a registry takes round-trips, a newline included.
    const m = new Metrics()
    m.counter('mcp_test_escape_total', 'escaping', ['v']).labels('a\nb"c\\d').inc()
    expect(parseExposition(m.render()).get('mcp_test_escape_total')!.samples[0]!.labels['v']).toBe('a\nb"c\\d')
    expect(second.get('mcp_requests_total')!.samples.length).toBeGreaterThan(3)
  })

  it('client-chosen model names do not grow the series without bound', async () => {
    const before = parseExposition(await scrape())
    const count = (f: Map<string, { samples: unknown[] }>) => [...f.values()].reduce((n, x) => n + x.samples.length, 0)
    for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 50 }, (_, j) => chat({ model: `mock/random-${i}-${j}` })))
    const after = parseExposition(await scrape())
    // The cost meter caps its series (maxSeries, then model="_other"); nothing else may take the model name.
    for (const f of after.values()) {
      if (f.name.startsWith('mcp_cost_') || f.name === 'mcp_tokens_total') continue
      expect(f.samples.filter((s) => Object.values(s.labels).some((v) => v.startsWith('random-') || v.includes('/random-'))), f.name).toEqual([])
    }
    expect(count(after) - count(before)).toBeLessThan(200 * 12)
  })
})

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    if (e === 'node_modules' || e.startsWith('.') || e === 'test') continue
    const p = join(dir, e)
    if (statSync(p).isDirectory()) sources(p, out)
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p)
  }
  return out
}

/** name → labels of every series family the code registers. */
function registered(): Map<string, { type: string; labels: string[] }> {
  const out = new Map<string, { type: string; labels: string[] }>()
  const re = /\.(counter|gauge|histogram)\(\s*'(mcp_[a-z0-9_]+)',\s*'(?:[^'\\]|\\.)*'(?:,\s*\[([^\]]*)\])?/g
  for (const f of sources(ROOT)) {
    for (const m of readFileSync(f, 'utf8').matchAll(re)) {
      const labels = (m[3] ?? '').split(',').map((s) => s.trim().replace(/'/g, '')).filter(Boolean)
      out.set(m[2]!, { type: m[1]!, labels })
    }
  }
  return out
}

describe('docs and dashboard name metrics that exist', () => {
  const reg = registered()

  it('every metric named in the README and docs/ is registered', () => {
    const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))]
    const missing: string[] = []
    for (const f of files) {
      for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/\bmcp_[a-z0-9_]*[a-z0-9]\b/g)) {
        const name = m[0].replace(/_(bucket|sum|count)$/, '')
        if (!reg.has(name) && !reg.has(m[0])) missing.push(`${f}: ${m[0]}`)
      }
    }
    expect(missing).toEqual([])
  })

  it('every PromQL expression of the Grafana dashboard uses registered metrics and labels', () => {
    const dash = JSON.parse(readFileSync(join(ROOT, 'docs', 'grafana', 'mcp-gateway.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] }
    const problems: string[] = []
    for (const p of dash.panels) {
      for (const t of p.targets ?? []) {
        const names = [...t.expr.matchAll(/\bmcp_[a-z0-9_]+/g)].map((m) => m[0])
        expect(names.length, t.expr).toBeGreaterThan(0)
        for (const n of names) {
          const base = n.replace(/_(bucket|sum|count)$/, '')
          const r = reg.get(n) ?? (reg.get(base)?.type === 'histogram' ? reg.get(base) : undefined)
          if (!r) { problems.push(`${p.title}: ${n}`); continue }
          const used = [...t.expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g), ...t.expr.matchAll(/\{([^}]*)\}/g)]
            .flatMap((m) => m[1]!.split(',').map((s) => s.trim().split(/[=!~]/)[0]!.trim()))
            .filter(Boolean)
          for (const l of used) if (!r.labels.includes(l) && !(l === 'le' && r.type === 'histogram')) problems.push(`${p.title}: ${n} has no label ${l}`)
        }
      }
    }
    expect(problems).toEqual([])
  })

  // Regression: the "Rate-limit and budget refusals" panel graphed rate-limit and auth refusals, no budget series.
  it('the refusals panel graphs what its title names', () => {
    const dash = JSON.parse(readFileSync(join(ROOT, 'docs', 'grafana', 'mcp-gateway.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] }
    const panel = dash.panels.find((p) => p.title === 'Rate-limit and budget refusals')!
    const exprs = panel.targets!.map((t) => t.expr).join('\n')
    expect(exprs).toContain('mcp_plugin_rate_limit_rejected_total')
    expect(exprs).toContain('mcp_budget_refused_total')
  })
})
