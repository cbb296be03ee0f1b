/**
 * A real gateway (data plane + admin API on ephemeral ports) wired for cost metering as the composition root
 * would wire it: a store, the usage aggregator as `services.usage`, the usage routes on the admin API. Test
 * plugins observe the cost:
 *   test-principal   sets ctx.slots.principal (x-test-key, x-test-team) and ctx.slots.execution
 *                    (x-test-deployment, x-test-prompt-version), like the keys plugin and the execute route would
 *   cost-probe-early listed AFTER cost-meter: its onComplete runs BEFORE cost-meter's and reads costOf(ctx)
 *   cost-probe-late  listed BEFORE cost-meter: its onComplete runs AFTER and reads ctx.cost as stored
 */
import { Writable } from 'node:stream'
import { registerUsageRoutes } from '../../admin/routes/usage.ts'
import { AdminServer } from '../../admin/server.ts'
import type { CostBreakdown } from '../../gateway/cost/catalogue.ts'
import { costOf, costReady } from '../../gateway/cost/meter.ts'
import { Gateway } from '../../gateway/gateway.ts'
import { createLogger } from '../../gateway/logger.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'
import { pluginFactory } from '../../plugins/index.ts'
import type { Usage } from '../../providers/types.ts'
import { openStore } from '../../store/index.ts'
import type { Store } from '../../store/types.ts'
import { UsageAggregator } from '../../store/usage-rollups.ts'
import { ADMIN_KEY, testSettings } from '../helpers/gateway.ts'

export interface Observed {
  early: CostBreakdown | undefined
  late: CostBreakdown | undefined
  usage: Usage | undefined
  provider: string
  providerType: string | undefined
  model: string
  status: number
  errorCode: string | undefined
  /** The provider's own id of the answering attempt (ctx.upstreamRequestId). */
  upstreamRequestId: string | undefined
}

export interface CostGateway {
  gw: Gateway
  store: Store
  aggregator: UsageAggregator
  url: string
  adminUrl: string
  observed: Observed[]
  logs(): Record<string, unknown>[]
  /** Resolves once `n` requests completed (onComplete ran). */
  completed(n: number, timeoutMs?: number): Promise<Observed[]>
  metrics(): Promise<string>
  close(): Promise<void>
}

function header(ctx: { headers: Record<string, string | string[] | undefined> }, name: string): string | undefined {
  const v = ctx.headers[name]
  return typeof v === 'string' ? v : undefined
}

export function testPlugins(observed: Observed[]): PluginFactory[] {
  const early: Partial<Observed>[] = []
  return [
    {
      name: 'test-principal', configSchema: { type: 'object' }, sideEffects: 'none',
      create: () => ({
        onRequestHeaders(ctx) {
          const key = header(ctx, 'x-test-key')
          if (key !== undefined) {
            const team = header(ctx, 'x-test-team')
            ctx.slots.principal = { keyId: key, role: 'user', ...(team !== undefined ? { team } : {}) }
          }
          const dep = header(ctx, 'x-test-deployment')
          if (dep !== undefined) (ctx.slots as Record<string, unknown>)['execution'] = { deploymentId: dep, promptVersionId: header(ctx, 'x-test-prompt-version') }
        },
      }),
    },
    {
      name: 'cost-probe-early', configSchema: { type: 'object' }, sideEffects: 'none',
      create: () => ({
        onComplete(ctx) {
          const push = (): void => { early.push({ early: costOf(ctx) }) }
          const ready = costReady(ctx)
          if (ready) return ready.then(push)
          push()
        },
      }),
    },
    {
      name: 'cost-probe-late', configSchema: { type: 'object' }, sideEffects: 'none',
      create: () => ({
        onComplete(ctx, outcome) {
          // The cost-meter's onComplete waits for the tokenizer on the first estimate (costReady): so does this probe.
          const push = (): void => {
            const e = early.shift()
            observed.push({
              early: e?.early, late: ctx.cost, usage: ctx.usage, provider: ctx.providerName, providerType: ctx.adapter?.type,
              model: ctx.model, status: outcome.status, errorCode: outcome.errorCode, upstreamRequestId: ctx.upstreamRequestId,
            })
          }
          const ready = costReady(ctx)
          if (ready) return ready.then(push)
          push()
        },
      }),
    },
  ]
}

/** Providers of the usage mock, one per wire format. */
export function mockProviders(mockUrl: string): Record<string, unknown> {
  return {
    oa: { type: 'openai', baseUrl: `${mockUrl}/v1`, apiKey: 'sk-test' },
    az: { type: 'azure-openai', baseUrl: mockUrl, apiKey: 'az-test', apiVersion: '2024-10-21' },
    an: { type: 'anthropic', baseUrl: mockUrl, apiKey: 'an-test' },
    gg: { type: 'google', baseUrl: mockUrl, apiKey: 'gg-test' },
    ol: { type: 'ollama', baseUrl: mockUrl },
    nu: { type: 'openai-compatible', baseUrl: `${mockUrl}/nousage/v1` },
    cut: { type: 'openai-compatible', baseUrl: `${mockUrl}/cut/v1` },
    anl: { type: 'anthropic', baseUrl: `${mockUrl}/long`, apiKey: 'an-test' },
    ggl: { type: 'google', baseUrl: `${mockUrl}/long`, apiKey: 'gg-test' },
  }
}

export const CHAIN = ['request-id', 'auth', 'test-principal', 'cost-probe-late', 'cost-meter', 'cost-probe-early']

export async function startCostGateway(override: Record<string, unknown>, opts: { store?: Store; flushIntervalMs?: number } = {}): Promise<CostGateway> {
  const lines: string[] = []
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb() } })
  const logger = createLogger('info', sink)
  const store = opts.store ?? await openStore({ dataDir: 'memory://' })
  const aggregator = new UsageAggregator({ store, logger, flushIntervalMs: opts.flushIntervalMs ?? 3_600_000 })
  const observed: Observed[] = []
  const extra = new Map(testPlugins(observed).map((f) => [f.name, f]))
  const gw = await Gateway.create({
    logger,
    load: () => testSettings(override),
    plugins: (n) => extra.get(n) ?? pluginFactory(n),
    services: { usage: aggregator },
  })
  aggregator.bindMetrics(gw.metrics.registry)
  const admin = new AdminServer(gw)
  registerUsageRoutes(admin, store)
  const data = await gw.listen()
  const adm = await admin.listen('127.0.0.1', 0, ADMIN_KEY)
  const adminUrl = `http://127.0.0.1:${adm.port}`
  return {
    gw, store, aggregator, observed,
    url: `http://127.0.0.1:${data.port}`,
    adminUrl,
    logs: () => lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown> } catch { return { raw: l } } }),
    async completed(n, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs
      while (observed.length < n) {
        if (Date.now() > until) throw new Error(`only ${observed.length} of ${n} requests completed`)
        await new Promise((r) => setTimeout(r, 5))
      }
      return observed
    },
    async metrics() {
      const r = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      return r.text()
    },
    async close() {
      await gw.shutdown(2000)
      await admin.close()
      await aggregator.close()
      if (!opts.store) await store.close()
    },
  }
}

export async function chat(g: { url: string }, model: string, opts: { stream?: boolean; headers?: Record<string, string>; includeUsage?: boolean } = {}): Promise<{ status: number; text: string }> {
  const body: Record<string, unknown> = { model, messages: [{ role: 'user', content: 'How much does this cost?' }] }
  if (opts.stream) body['stream'] = true
  if (opts.includeUsage) body['stream_options'] = { include_usage: true }
  const r = await fetch(`${g.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', ...(opts.headers ?? {}) },
    body: JSON.stringify(body),
  })
  return { status: r.status, text: await r.text() }
}

export async function adminGet(g: { adminUrl: string }, path: string): Promise<{ status: number; headers: Headers; text: string; json: () => unknown }> {
  const r = await fetch(`${g.adminUrl}${path}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  const text = await r.text()
  return { status: r.status, headers: r.headers, text, json: () => JSON.parse(text) as unknown }
}
