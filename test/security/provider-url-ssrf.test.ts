/**
 * SSRF through the admin API: provider URLs that arrive through `POST/PUT /providers` must be https,
 * carry no credentials or fragments, and reach no private, loopback, link-local or metadata address
 * unless the operator allowlist permits it; the answer is a 422 naming config.baseUrl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore } from '../../store/index.ts'
import { startTestMcp, type TestMcp } from '../admin/helpers.ts'

let t: TestMcp

beforeAll(async () => {
  const store = await openStore({ dataDir: 'memory://' })
  // The production policy: test.yaml relaxes it for the mocks, this test puts it back.
  t = await startTestMcp({ store, override: { security: { allowHttpProviderUrls: false, providerUrlAllowlist: [] } } })
})

afterAll(async () => { await t?.close() })

const provider = (name: string, baseUrl: string) => ({ name, provider: 'openai', config: { baseUrl }, credentials: { apiKey: 'sk-ssrf-test-000000001' } })

describe('provider URLs from the admin API', () => {
  it.each([
    ['http without permission', 'http://api.example.com/v1', /https/],
    ['loopback', 'https://127.0.0.1/v1', /loopback/],
    ['private range', 'https://10.1.2.3/v1', /private/],
    ['link-local / cloud metadata', 'https://169.254.169.254/latest', /metadata|link-local/],
    ['IPv6 loopback', 'https://[::1]/v1', /loopback/],
    ['credentials in the URL', 'https://user:pass@api.example.com/v1', /credential|userinfo/],
    ['a fragment', 'https://api.example.com/v1#x', /fragment/],
  ])('refuses %s with a 422 naming config.baseUrl', async (_what, url, why) => {
    const r = await t.api('POST', 'providers', provider(`p${Math.random().toString(36).slice(2, 8)}`, url))
    expect(r.status, r.text).toBe(422)
    expect(r.body.error.param).toBe('config.baseUrl')
    expect(r.body.error.message).toMatch(why)
    expect(r.text).not.toContain('sk-ssrf-test-000000001')
  })

  it('accepts an address the operator allowlist permits, and refuses it again when the allowlist goes', async () => {
    t.setConfig({ security: { allowHttpProviderUrls: true, providerUrlAllowlist: ['127.0.0.0/8'] } })
    expect((await t.api('POST', 'config/reload')).status).toBe(200)
    const ok = await t.api('POST', 'providers', provider('local-ok', 'http://127.0.0.1:9/v1'))
    expect(ok.status, ok.text).toBe(201)
    t.setConfig({ security: { allowHttpProviderUrls: false, providerUrlAllowlist: [] } })
    expect((await t.api('POST', 'config/reload')).status).toBe(200)
    const again = await t.api('PUT', `providers/${ok.body.id}`, { config: { baseUrl: 'http://127.0.0.1:10/v1' } }, { 'if-match': '*' })
    expect(again.status, again.text).toBe(422)
  })
})

describe('names that do not resolve from the control plane', () => {
  it('are accepted (the connect-time guard judges their addresses)', async () => {
    const r = await t.api('POST', 'providers', provider('unresolved', 'https://api.example.invalid/v1'))
    expect(r.status, r.text).toBe(201)
  })
})

describe('a provider without baseUrl connects to its adapter\'s default, which is checked too', () => {
  const wait = (ms: number) => new Promise((res) => setTimeout(res, ms))

  it('an ollama provider without baseUrl (default http://127.0.0.1:11434) is refused on POST with a 422 naming config.baseUrl', async () => {
    for (const config of [undefined, {}, { keepAlive: '5m' }]) {
      const r = await t.api('POST', 'providers', { name: `ol${Math.random().toString(36).slice(2, 8)}`, provider: 'ollama', ...(config ? { config } : {}) })
      expect(r.status, r.text).toBe(422)
      expect(r.body.error.param).toBe('config.baseUrl')
      expect(r.body.error.message).toMatch(/default http:\/\/127\.0\.0\.1:11434/)
      expect(r.body.error.message).toMatch(/https only|loopback/)
    }
  })

  it('the public https defaults of openai, anthropic and google are accepted', async () => {
    for (const provider of ['openai', 'anthropic', 'google']) {
      const r = await t.api('POST', 'providers', { name: `def-${provider}`, provider, credentials: { apiKey: 'sk-ssrf-test-000000001' } })
      expect(r.status, r.text).toBe(201)
    }
  })

  it('a PUT whose config omits baseUrl is checked with the default: 422, nothing written', async () => {
    const r = await t.api('POST', 'providers', { name: 'ol-explicit', provider: 'ollama', config: { baseUrl: 'https://ollama.example.invalid' } })
    expect(r.status, r.text).toBe(201)
    for (const config of [{}, { keepAlive: '5m' }]) {
      const put = await t.api('PUT', `providers/${r.body.id}`, { config }, { 'if-match': '*' })
      expect(put.status, put.text).toBe(422)
      expect(put.body.error.param).toBe('config.baseUrl')
    }
    expect((await t.api('GET', `providers/${r.body.id}`)).body).toMatchObject({ revision: 1, config: { baseUrl: 'https://ollama.example.invalid' } })
    // Without config the stored one stays, and is not judged again: a provider can always be disabled.
    expect((await t.api('PUT', `providers/${r.body.id}`, { status: 'disabled' }, { 'if-match': '*' })).status).toBe(200)
  })

  it('the operator allowlist and allowHttp admit the loopback default', async () => {
    t.setConfig({ security: { allowHttpProviderUrls: true, providerUrlAllowlist: ['127.0.0.0/8'] } })
    try {
      expect((await t.api('POST', 'config/reload')).status).toBe(200)
      const r = await t.api('POST', 'providers', { name: 'ol-allowed', provider: 'ollama' })
      expect(r.status, r.text).toBe(201)
      expect((await t.api('DELETE', `providers/${r.body.id}`, undefined, { 'if-match': '*' })).status).toBe(204)
    } finally {
      t.setConfig({ security: { allowHttpProviderUrls: false, providerUrlAllowlist: [] } })
      expect((await t.api('POST', 'config/reload')).status).toBe(200)
    }
  })

  it('a row stored without baseUrl before the rule is guarded at connect time: 502 address blocked, nothing connects', async () => {
    await t.store.query(
      "INSERT INTO provider_configs (id, name, provider, config, credentials, status) VALUES ($1, 'ol-legacy', 'ollama', '{}', '{}', 'active')",
      ['33333333-3333-4333-8333-333333333333'],
    )
    // The insert bumps control_plane_version: the poller (every 100 ms here) reloads the snapshot and the pipeline.
    let chat = await t.data('POST', '/v1/chat/completions', { model: 'ol-legacy/llama3', messages: [{ role: 'user', content: 'hi' }] })
    for (let i = 0; i < 50 && chat.status === 404; i++) {
      await wait(100)
      chat = await t.data('POST', '/v1/chat/completions', { model: 'ol-legacy/llama3', messages: [{ role: 'user', content: 'hi' }] })
    }
    expect(chat.status, chat.text).toBe(502)
    expect(chat.headers.get('x-mcp-error-code')).toBe('MCP_ERR_UPSTREAM_ADDRESS_BLOCKED')
  })
})
