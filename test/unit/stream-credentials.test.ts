import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { adapterFactory } from '../../providers/registry.ts'
import type { ProviderConfig } from '../../providers/types.ts'
import { startAnthropicMock, type AnthropicMock } from '../helpers/anthropic-mock.ts'

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

  it('and on the text lane, where whole text events are matched in place, only the text is searched: still redacted', async () => {
    const apiKey = `sk-ant-api03-${'z'.repeat(40)}`
    const cfg = { type: 'anthropic', baseUrl: mock.url, apiKey } as unknown as ProviderConfig
    const adapter = adapterFactory('anthropic')!.create('claude', cfg, { dispatcherFor: (o: string) => { const p = new Pool(o); pools.push(p); return p } } as never)
    mock.fault = null as never
    const stream = await adapter.stream({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: `echo my key is ${apiKey} ok` }], stream: true },
      { model: 'claude-sonnet-4-5', signal: new AbortController().signal, deadline: Date.now() + 10_000, requestId: 'r3', textLane: true })
    let text = ''
    let laneItems = 0
    for await (const batch of stream.laneBatches!()) {
      for (const x of batch) {
        if (typeof x === 'string') { laneItems++; text += x } else text += x.choices[0]?.delta.content ?? ''
      }
    }
    // The words around the key came on the lane; the key's own delta was declined there and redacted.
    expect(laneItems).toBeGreaterThan(2)
    expect(text).toContain('echo: my key is')
    expect(text).toContain(' ok')
    expect(text).not.toContain(apiKey)
    expect(text).toContain('[redacted]')
    expect(JSON.stringify(await stream.final)).not.toContain(apiKey)
  })
})
