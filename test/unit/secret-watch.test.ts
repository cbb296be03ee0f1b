import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { adapterFactory } from '../../providers/registry.ts'
import { SecretWatch } from '../../providers/shared/http-adapter.ts'
import type { ProviderConfig } from '../../providers/types.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'

describe('SecretWatch', () => {
  const secret = 'sk-ant-secret-0123456789'

  it('sees a secret inside one read, or cut between two reads at any position', () => {
    const text = `data: {"type":"error","error":{"message":"bad key ${secret}"}}\n\n`
    for (let cut = 0; cut <= text.length; cut++) {
      const w = new SecretWatch([secret])
      w.scan(Buffer.from(text.slice(0, cut)))
      w.scan(Buffer.from(text.slice(cut)))
      expect(w.seen, `cut at ${cut}`).toBe(true)
    }
  })

  it('sees a secret spread over many tiny reads, and stays quiet without one', () => {
    const w = new SecretWatch(['x-not-it-00000', secret])
    for (const ch of `prefix ${secret} suffix`) w.scan(Buffer.from(ch))
    expect(w.seen).toBe(true)
    const clean = new SecretWatch([secret])
    for (let i = 0; i < 50; i++) clean.scan(Buffer.from(`data: {"type":"content_block_delta","text":"sk-ant-secret-01234567 ${i}"}\n\n`))
    expect(clean.seen).toBe(false)
  })
})

describe('a stream error event that echoes the credential', () => {
  let mock: AnthropicMock
  const pools: Pool[] = []
  beforeAll(async () => { mock = await startAnthropicMock() })
  afterAll(async () => { await Promise.all(pools.map((p) => p.close())); await mock?.close() })

  it('reaches the gateway redacted', async () => {
    const apiKey = `sk-ant-api03-${'k'.repeat(40)}`
    const cfg = { type: 'anthropic', baseUrl: mock.url, apiKey } as unknown as ProviderConfig
    const adapter = adapterFactory('anthropic')!.create('claude', cfg, { dispatcherFor: (o: string) => { const p = new Pool(o); pools.push(p); return p } } as never)
    mock.fault = { errorAfter: 2, message: `invalid x-api-key ${apiKey}` } as never
    const stream = await adapter.stream({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'hello' }], stream: true },
      { model: 'claude-sonnet-4-5', signal: new AbortController().signal, deadline: Date.now() + 10_000, requestId: 'r1' })
    let error: unknown
    try { for await (const _ of stream) { /* drain */ } } catch (e) { error = e }
    expect(error).toBeInstanceOf(GatewayError)
    const shown = `${(error as GatewayError).message} ${JSON.stringify(error)}`
    expect(shown).not.toContain(apiKey)
    expect(shown).toContain('[redacted]')
  })

  it('so does a content event that carries it (events are redacted before mapping)', async () => {
    const apiKey = `sk-ant-api03-${'q'.repeat(40)}`
    const cfg = { type: 'anthropic', baseUrl: mock.url, apiKey } as unknown as ProviderConfig
    const adapter = adapterFactory('anthropic')!.create('claude', cfg, { dispatcherFor: (o: string) => { const p = new Pool(o); pools.push(p); return p } } as never)
    mock.fault = null as never
    const stream = await adapter.stream({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: `echo my key is ${apiKey}` }], stream: true },
      { model: 'claude-sonnet-4-5', signal: new AbortController().signal, deadline: Date.now() + 10_000, requestId: 'r2' })
    let text = ''
    for await (const c of stream) text += c.choices[0]?.delta.content ?? ''
    expect(text).toContain('echo: my key is')
    expect(text).not.toContain(apiKey)
    expect(JSON.stringify(await stream.final)).not.toContain(apiKey)
  })
})
