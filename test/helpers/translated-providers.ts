/**
 * The running gateway in front of the google, ollama and anthropic mocks: the three translations with their own wire
 * formats, for tests of what each provider receives (`requests`) from a client's request.
 */
import { afterAll, beforeAll, beforeEach } from 'vitest'
import { startAnthropicMock, type AnthropicMock } from './anthropic-mock.ts'
import { authHeaders, startGateway, type TestGateway } from './gateway.ts'
import { startGeminiMock, type GeminiMock } from './gemini-mock.ts'
import { startOllamaMock, type OllamaMock } from './ollama-mock.ts'

export const TRANSLATED_MODELS = { google: 'google/gemini-2.5-flash', ollama: 'ollama/llama3.2', anthropic: 'anthropic/claude-sonnet-4-5-20250929' } as const
export type TranslatedProvider = keyof typeof TRANSLATED_MODELS
export const TRANSLATED_PROVIDERS = Object.keys(TRANSLATED_MODELS) as TranslatedProvider[]

export interface TranslatedProviders {
  gw: TestGateway
  google: GeminiMock
  ollama: OllamaMock
  anthropic: AnthropicMock
  /** What provider `p`'s mock received (since the last reset). */
  requests(p: TranslatedProvider): { body: any }[]
  reset(): void
  /** POST /v1/chat/completions to provider `p`'s model with `max_tokens: 32` and `body`. */
  chat(p: TranslatedProvider, body: object): Promise<{ status: number; json: any }>
  close(): Promise<void>
}

export async function startTranslatedProviders(): Promise<TranslatedProviders> {
  const [google, ollama, anthropic] = await Promise.all([startGeminiMock(), startOllamaMock(), startAnthropicMock()])
  const gw = await startGateway({
    providers: {
      google: { type: 'google', baseUrl: google.url, apiKey: 'AIzaTranslatedKey0000000000001' },
      ollama: { type: 'ollama', baseUrl: ollama.url },
      // Translated from /v1/messages too (by default a Messages request goes to Anthropic as sent): these tests are of the translation.
      anthropic: { type: 'anthropic', baseUrl: anthropic.url, apiKey: 'sk-ant-translated-0001', nativeMessages: false },
    },
  })
  const mocks = { google, ollama, anthropic }
  return {
    gw, google, ollama, anthropic,
    requests: (p) => mocks[p].requests,
    reset: () => { google.reset(); ollama.reset(); anthropic.reset() },
    async chat(p, body) {
      const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: TRANSLATED_MODELS[p], max_tokens: 32, ...body }) })
      return { status: r.status, json: await r.json() }
    },
    async close() {
      await gw.close()
      await Promise.all([google.close(), ollama.close(), anthropic.close()])
    },
  }
}

/**
 * The same for a test file: started before its tests, closed after them, the mocks' records cleared before each test
 * (`reset: false` keeps them). Returns a getter.
 */
export function translatedProvidersForFile(opts: { reset?: boolean } = {}): () => TranslatedProviders {
  let t: TranslatedProviders | undefined
  beforeAll(async () => { t = await startTranslatedProviders() }, 30_000)
  afterAll(async () => { await t?.close() })
  if (opts.reset !== false) beforeEach(() => { t!.reset() })
  return () => t!
}
