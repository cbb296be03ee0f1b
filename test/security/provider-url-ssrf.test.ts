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
