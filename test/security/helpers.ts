/**
 * The security suites' stack: the whole process (startMcp) on PGlite in memory or PostgreSQL, a mock OpenAI
 * upstream as the file provider `mock` (alias `smart` → mock/gpt-4o), and helpers to act with a given key.
 */
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startTestMcp, type ApiResponse, type StartTestMcpOptions, type TestMcp } from '../admin/helpers.ts'

export interface Stack {
  t: TestMcp
  mock: OpenAIMock
  /** An admin API call with `key` (the bootstrap key when undefined). */
  as<T = any>(key: string | undefined, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>
  /** A chat completion on the data plane with `key`. */
  chat(key: string, model?: string, extra?: Record<string, unknown>): Promise<ApiResponse>
  /** Creates a key with the bootstrap key (or `by`); returns the key and its id. */
  mint(body: Record<string, unknown>, by?: string): Promise<{ key: string; id: string; body: any }>
  close(): Promise<void>
}

export function bearer(key: string | undefined): Record<string, string> {
  return key === undefined ? {} : { authorization: `Bearer ${key}` }
}

export async function startStack(opts: Partial<StartTestMcpOptions> & Pick<StartTestMcpOptions, 'store'>, providerKey = 'sk-mock-provider-key'): Promise<Stack> {
  const mock = await startOpenAIMock()
  const { override, ...rest } = opts
  const t = await startTestMcp({
    ...rest,
    override: {
      providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: providerKey } },
      models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] }, cheap: { targets: [{ provider: 'mock', model: 'gpt-4o-mini' }] } },
      ...override,
    },
  })
  const as = <T = any>(key: string | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> =>
    t.api<T>(method, path, body, { ...bearer(key), ...headers })
  return {
    t,
    mock,
    as,
    chat: (key, model = 'mock/gpt-4o', extra = {}) => t.data('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'echo ping' }], ...extra }, bearer(key)),
    async mint(body, by) {
      const r = await as(by, 'POST', 'keys', body)
      if (r.status !== 201) throw new Error(`mint failed: ${r.status} ${r.text}`)
      return { key: r.body.key as string, id: r.body.id as string, body: r.body }
    },
    async close() {
      await t.close()
      await mock.close()
    },
  }
}

/** Polls `fn` until it returns true or `timeoutMs` passes; returns the elapsed ms, or -1 on timeout. */
export async function waitUntil(fn: () => Promise<boolean>, timeoutMs = 5000, stepMs = 20): Promise<number> {
  const start = performance.now()
  while (performance.now() - start < timeoutMs) {
    if (await fn()) return performance.now() - start
    await new Promise((r) => setTimeout(r, stepMs))
  }
  return -1
}
