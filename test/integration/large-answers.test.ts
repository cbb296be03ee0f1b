/**
 * Non-streamed answers the gateway reads whole (every translated provider's JSON) are bounded per provider by
 * `maxResponseBytes` (default 64 MiB). The bound used to be a fixed 4 MiB, below what large embedding batches are:
 * Gemini's batch of 100 embeddings of 3,072 dimensions (its limit, and gemini-embedding-001's default size) and
 * Ollama's answer for a few hundred inputs both failed with a 502. Gemini is also asked for compact JSON
 * (`prettyPrint=false`): Google pretty-prints by default, which the mock does too.
 */
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startGeminiMock, type GeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock, type OllamaMock } from '../helpers/ollama-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { googleConfigErrors } from '../../providers/google/config.ts'

const inputs = (n: number): string[] => Array.from({ length: n }, (_, i) => `passage ${i}: ${'lorem ipsum '.repeat(i % 7 + 1)}`)

describe('large non-streamed answers', () => {
  let gemini: GeminiMock
  let ollama: OllamaMock
  let openai: OpenAIMock
  let tg: TestGateway
  let client: OpenAI

  beforeAll(async () => {
    gemini = await startGeminiMock({ apiKey: 'gm-large-answers-0123456789' })
    ollama = await startOllamaMock()
    openai = await startOpenAIMock({ record: false })
    tg = await startGateway({
      providers: {
        gm: { type: 'google', baseUrl: gemini.url, apiKey: 'gm-large-answers-0123456789', models: ['gemini-embedding-001'] },
        small: { type: 'google', baseUrl: gemini.url, apiKey: 'gm-large-answers-0123456789', models: ['gemini-embedding-001'], maxResponseBytes: 65_536 },
        ol: { type: 'ollama', baseUrl: ollama.url, models: ['nomic-embed-text'] },
        oa: { type: 'openai', baseUrl: openai.url, apiKey: 'sk-large-answers-0123456789', models: ['text-embedding-3-large'] },
      },
    })
    client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${tg.url}/v1`, maxRetries: 0, timeout: 60_000 })
  })
  afterAll(async () => {
    await tg?.close()
    await gemini?.close()
    await ollama?.close()
    await openai?.close()
  })

  it('Gemini: 100 embeddings of 3,072 dimensions (one batchEmbedContents call) come back whole', async () => {
    gemini.reset()
    const texts = inputs(100)
    const r = await client.embeddings.create({ model: 'gm/gemini-embedding-001', input: texts, dimensions: 3072, encoding_format: 'float' })
    expect(r.data).toHaveLength(100)
    expect(r.data.every((d, i) => d.index === i && d.embedding.length === 3072)).toBe(true)
    const calls = gemini.requests.filter((q) => q.path.includes(':batchEmbedContents'))
    expect(calls).toHaveLength(1)
    // Asked for compact JSON: the mock, like Google, pretty-prints otherwise.
    expect(calls[0]!.path).toMatch(/\?prettyPrint=false$/)
  })

  it('Ollama: 300 inputs of 1,024 dimensions in one /api/embed answer', async () => {
    const r = await client.embeddings.create({ model: 'ol/nomic-embed-text', input: inputs(300), dimensions: 1024, encoding_format: 'float' })
    expect(r.data).toHaveLength(300)
    expect(r.data.every((d) => d.embedding.length === 1024)).toBe(true)
  })

  it('OpenAI, passed through as it came: a 10 MB answer whole to the client, its usage read from what was kept', async () => {
    const r = await client.embeddings.create({ model: 'oa/text-embedding-3-large', input: inputs(400), dimensions: 1536, encoding_format: 'float' })
    expect(r.data).toHaveLength(400)
    expect(r.data.every((d) => d.embedding.length === 1536)).toBe(true)
    expect(r.usage.prompt_tokens).toBeGreaterThan(0)
    const log = tg.logs.findLast((l) => String(l['model'] ?? '').includes('text-embedding-3-large'))
    expect(log?.['promptTokens']).toBe(r.usage.prompt_tokens)
  })

  it('past the provider\'s maxResponseBytes: a 502 in the API\'s own shape that names the bound', async () => {
    const err = await client.embeddings.create({ model: 'small/gemini-embedding-001', input: inputs(100), dimensions: 3072 }).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.APIError)
    const e = err as InstanceType<typeof OpenAI.APIError>
    expect(e.status).toBe(502)
    expect(e.code).toBe('MCP_ERR_UPSTREAM_BAD_RESPONSE')
    expect(e.message).toContain("response body larger than 65536 bytes (the provider's maxResponseBytes)")
    expect(tg.logs.findLast((l) => l['details'] === 'upstream.body_too_large')).toBeDefined()
    // Within the bound, the same provider answers.
    const ok = await client.embeddings.create({ model: 'small/gemini-embedding-001', input: inputs(2), dimensions: 8 })
    expect(ok.data).toHaveLength(2)
  })

  it('maxResponseBytes is checked in config: an integer from 1 KiB to 1 GiB', () => {
    expect(googleConfigErrors({ type: 'google', apiKey: 'k', maxResponseBytes: 10 }).join(' ')).toContain('maxResponseBytes')
    expect(googleConfigErrors({ type: 'google', apiKey: 'k', maxResponseBytes: 2 ** 31 }).join(' ')).toContain('maxResponseBytes')
    expect(googleConfigErrors({ type: 'google', apiKey: 'k', maxResponseBytes: 1.5e6 })).toEqual([])
  })
})
