/** Settings: validation errors name the path of the bad field; production guard; redaction; syntax errors unquoted. */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { GatewayError } from '../../gateway/errors.ts'
import { parseSettings, readRawConfig, redactSettings } from '../../gateway/settings.ts'

const KEY32 = 'a'.repeat(32)

function raw(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: {}, admin: {}, log: {}, dataDir: './data', upstream: {}, reload: {},
    plugins: {}, chains: { default: [] }, routes: {}, providers: {},
    ...over,
  }
}

function rejection(r: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseSettings(r, env)
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError)
    expect((e as GatewayError).code).toBe('MCP_ERR_CONFIG_INVALID')
    return (e as GatewayError).message
  }
  throw new Error('expected the settings to be rejected')
}

describe('parseSettings', () => {
  it('usage timer settings a timer cannot hold are refused (Node ran the export or the flush retry every 1 ms)', () => {
    const secret = 'whsec_0123456789abcdef'
    // Past 2^31 - 1 ms (24.8 days) setTimeout warns and fires after 1 ms.
    expect(rejection(raw({ usage: { webhook: { url: 'https://b.example.com/u', secret, intervalMs: 3_000_000_000 } } }))).toContain('usage.webhook.intervalMs')
    expect(rejection(raw({ usage: { maxRetryDelayMs: 3_000_000_000 } }))).toContain('usage.maxRetryDelayMs')
    // AbortSignal.timeout overflows the same way: every POST was aborted after 1 ms, no bucket was ever delivered.
    expect(rejection(raw({ usage: { webhook: { url: 'https://b.example.com/u', secret, timeoutMs: 3_000_000_000 } } }))).toContain('usage.webhook.timeoutMs')
    expect(parseSettings(raw({ usage: { maxRetryDelayMs: 3_600_000, webhook: { url: 'https://b.example.com/u', secret, intervalMs: 86_400_000 } } }), {}).usage.webhook?.intervalMs).toBe(86_400_000)
  })

  it('executionLogs.retentionDays past what a date can hold is refused (every purge failed on an invalid date)', () => {
    expect(rejection(raw({ executionLogs: { retentionDays: 1e9 } }))).toContain('executionLogs.retentionDays')
    expect(parseSettings(raw({ executionLogs: { retentionDays: 36_500 } }), {}).executionLogs.retentionDays).toBe(36_500)
  })

  it('a usage.webhook.url that does not parse is refused (every export POST failed in fetch, at every run)', () => {
    const secret = 'whsec_0123456789abcdef'
    for (const url of ['https://', 'http://exa mple.com/usage', 'http://[::1/usage']) {
      expect(rejection(raw({ usage: { webhook: { url, secret } } })), url).toContain('usage.webhook.url: not a valid URL')
    }
    expect(parseSettings(raw({ usage: { webhook: { url: 'https://billing.example.com/usage', secret } } }), {}).usage.webhook?.url).toBe('https://billing.example.com/usage')
  })

  it('${NAME} in alert and usage webhook settings is read from the environment, as under providers (it was used as the literal text)', () => {
    const env = { MCP_ALERT_SECRET: 'alert-secret-0123456789', MCP_USAGE_WEBHOOK_SECRET: 'usage-secret-0123456789' }
    const s = parseSettings(raw({
      alerts: { webhooks: { ops: { url: 'https://hooks.example.com/mcp', secret: '${MCP_ALERT_SECRET}' } }, rules: [] },
      usage: { webhook: { url: 'https://billing.example.com/mcp', secret: '${MCP_USAGE_WEBHOOK_SECRET}' } },
    }), env)
    expect(s.alerts.webhooks['ops']?.secret).toBe('alert-secret-0123456789')
    expect(s.usage.webhook?.secret).toBe('usage-secret-0123456789')
    expect(rejection(raw({ usage: { webhook: { url: 'https://billing.example.com/mcp', secret: '${MCP_UNSET_SECRET}' } } }))).toContain('usage.webhook.secret: environment variable MCP_UNSET_SECRET is not set')
  })

  it('applies defaults and deep-freezes the result', () => {
    const s = parseSettings(raw(), {})
    expect(s.server.port).toBe(8080)
    expect(s.server.bodyLimitBytes).toBe(10 * 1024 * 1024)
    expect(s.reload).toEqual({ watch: true, debounceMs: 250, drainTimeoutMs: 600_000 })
    expect(Object.isFrozen(s)).toBe(true)
    expect(Object.isFrozen(s.server)).toBe(true)
  })

  it('sizes the embedded store at 16MB of shared buffers unless told otherwise, and names a size without a unit', () => {
    expect(parseSettings(raw(), {}).pglite).toEqual({ sharedBuffers: '16MB' })
    expect(parseSettings(raw({ pglite: { sharedBuffers: '64MB' } }), {}).pglite.sharedBuffers).toBe('64MB')
    expect(rejection(raw({ pglite: { sharedBuffers: '64' } }))).toContain('pglite.sharedBuffers: must match pattern')
    expect(rejection(raw({ pglite: { sharedBuffers: '16 MB; DROP' } }))).toContain('pglite.sharedBuffers')
  })

  it('names server.port when it has the wrong type or range', () => {
    expect(rejection(raw({ server: { port: 'abc' } }))).toContain('server.port: must be integer')
    expect(rejection(raw({ server: { port: 70000 } }))).toContain('server.port: must be <= 65535')
  })

  it('names an unknown top-level key and an unknown nested key', () => {
    expect(rejection(raw({ bogus: 1 }))).toContain('bogus: unknown key')
    expect(rejection(raw({ server: { prot: 1 } }))).toContain('server.prot: unknown key')
  })

  it('names a missing required section', () => {
    const r = raw()
    delete r['dataDir']
    expect(rejection(r)).toContain('dataDir: is required')
  })

  it('names every bad field at once', () => {
    const msg = rejection(raw({ server: { port: -1 }, log: { level: 'loud' } }))
    expect(msg).toContain('server.port')
    expect(msg).toContain('log.level: must be one of')
  })

  // Regression: propertyNames errors were reported as `routes: must be one of ...` without the bad key.
  it('names an unknown route as routes.<name>', () => {
    expect(rejection(raw({ routes: { bogus: { chain: 'default' } } }))).toContain('routes.bogus')
  })

  it('names an invalid provider name as providers.<name>', () => {
    expect(rejection(raw({ providers: { 'bad name': { type: 'openai' } } }))).toContain('providers.bad name')
  })

  it('names a route that refers to a missing chain', () => {
    expect(rejection(raw({ routes: { chat: { chain: 'nope' } } }))).toContain("routes.chat.chain: no chain named 'nope'")
  })

  it('names a bad plugin reference inside a chain', () => {
    expect(rejection(raw({ chains: { default: [{ name: 'auth', bogus: 1 }] } }))).toContain('chains.default[0].bogus: unknown key')
  })

  it('names a defaultProvider that does not exist', () => {
    expect(rejection(raw({ defaultProvider: 'ghost' }))).toContain("defaultProvider: no provider named 'ghost'")
  })

  it('substitutes ${ENV} references in providers and names an unset one', () => {
    const s = parseSettings(raw({ providers: { oa: { type: 'openai', apiKey: '${MCP_TEST_KEY}' } } }), { MCP_TEST_KEY: 'sk-from-env' })
    expect(s.providers['oa']?.['apiKey']).toBe('sk-from-env')
    const msg = rejection(raw({ providers: { oa: { type: 'openai', apiKey: '${MCP_TEST_UNSET_VAR}' } } }), {})
    expect(msg).toContain('providers.oa.apiKey: environment variable MCP_TEST_UNSET_VAR is not set')
    // OTLP exporters authenticate with headers (an API key): the tracing block reads the environment too.
    const t = parseSettings(raw({ telemetry: { tracing: { enabled: false, headers: { 'x-api-key': '${MCP_TEST_OTLP_KEY}' } } } }), { MCP_TEST_OTLP_KEY: 'otlp-secret' })
    expect(t.telemetry.tracing.headers['x-api-key']).toBe('otlp-secret')
  })

  it('refuses production without an admin key of at least 32 characters', () => {
    expect(rejection(raw(), { NODE_ENV: 'production' })).toContain('admin.key')
    expect(rejection(raw({ admin: { key: 'a'.repeat(31) } }), { NODE_ENV: 'production' })).toContain('admin.key: MCP_ADMIN_KEY of at least 32 characters')
    expect(parseSettings(raw({ admin: { key: KEY32 } }), { NODE_ENV: 'production' }).admin.key).toBe(KEY32)
    // Outside production a missing key is allowed (development).
    expect(parseSettings(raw(), { NODE_ENV: 'development' }).admin.key).toBeUndefined()
  })
})

describe('readRawConfig: a source that does not parse', () => {
  const SECRET = 'sk-SYNTAXLEAK-0123456789'
  const saved = { dir: process.env['NODE_CONFIG_DIR'], json: process.env['NODE_CONFIG'] }
  let dir: string | undefined
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
    dir = undefined
    for (const [k, v] of [['NODE_CONFIG_DIR', saved.dir], ['NODE_CONFIG', saved.json]] as const) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
  function configDir(file: string, text: string): string {
    dir = mkdtempSync(path.join(tmpdir(), 'mcp-syntax-'))
    cpSync(path.resolve(import.meta.dirname, '../../config'), dir, { recursive: true })
    writeFileSync(path.join(dir, file), text)
    process.env['NODE_CONFIG_DIR'] = dir
    return path.join(dir, file)
  }
  function refusal(): string {
    try {
      readRawConfig()
    } catch (e) {
      expect(e).toBeInstanceOf(GatewayError)
      expect((e as GatewayError).code).toBe('MCP_ERR_CONFIG_INVALID')
      return (e as GatewayError).message
    }
    throw new Error('expected the configuration to be refused')
  }

  // The YAML parser's message quoted the lines around the fault, the apiKey line included; it went to the reload
  // answer, GET /api/v1/mcp/config, the log and the audit log.
  it('a YAML file: names the file, line, column and reason, and quotes none of its text', () => {
    const file = configDir('local.yaml', `providers:\n  mock:\n    type: openai\n    apiKey: ${SECRET}\n   headers: {a: b}\n`)
    const msg = refusal()
    expect(msg).toBe(`Configuration rejected: ${file}: line 5, column 4: bad indentation of a mapping entry`)
    expect(msg).not.toContain('SYNTAXLEAK')
  })

  it('a JSON file: names the file, line, column and reason, without the character at fault', () => {
    const file = configDir('local.json', `{"providers": {"mock": {"type": "openai",\n "apiKey": "${SECRET}" "x": 1}}}`)
    const msg = refusal()
    expect(msg).toBe(`Configuration rejected: ${file}: line 2, column 39: invalid character`)
    expect(msg).not.toContain('SYNTAXLEAK')
  })

  it('NODE_CONFIG: names line and column; the text around an unexpected token is not quoted', () => {
    configDir('local.yaml', '{}\n')
    process.env['NODE_CONFIG'] = `{"providers": {"mock": {"apiKey": "${SECRET}"}}`
    expect(refusal()).toBe(`Configuration rejected: NODE_CONFIG is not valid JSON: line 1, column 63: Expected ',' or '}' after property value`)
    // V8's message for this one is `Unexpected token 's', "{"apiKey": sk-SYNTAXLEAK-…" is not valid JSON`.
    process.env['NODE_CONFIG'] = `{"apiKey": ${SECRET}}`
    const msg = refusal()
    expect(msg).toBe('Configuration rejected: NODE_CONFIG is not valid JSON: line 1, column 12: unexpected token')
    expect(msg).not.toContain('SYNTAXLEAK')
  })
})

describe('redactSettings', () => {
  it('hides provider keys, the admin key and URL passwords, and keeps everything else', () => {
    const s = parseSettings(raw({
      admin: { key: KEY32 },
      databaseUrl: 'postgres://mcp:db-secret-pw@db.internal:5432/mcp',
      redisUrl: 'redis://:redis-secret-pw@cache:6379/0',
      providers: {
        oa: { type: 'openai', baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-live-secret-123', headers: { 'x-api-key': 'hdr-secret', authorization: 'Bearer tok-secret' } },
      },
    }), {})
    const red = redactSettings(s) as Record<string, Record<string, unknown>>
    const text = JSON.stringify(red)
    for (const secret of [KEY32, 'db-secret-pw', 'redis-secret-pw', 'sk-live-secret-123', 'hdr-secret', 'tok-secret']) expect(text).not.toContain(secret)
    expect(red['admin']?.['key']).toBe('[redacted]')
    expect(red['databaseUrl']).toBe('postgres://[redacted]@db.internal:5432/mcp')
    expect(red['redisUrl']).toBe('redis://[redacted]@cache:6379/0')
    const oa = (red['providers'] as Record<string, Record<string, unknown>>)['oa']
    expect(oa?.['apiKey']).toBe('[redacted]')
    expect(oa?.['baseUrl']).toBe('https://api.openai.com/v1')
    expect((red['server'] as Record<string, unknown>)['port']).toBe(8080)
    // The input is untouched.
    expect(s.providers['oa']?.['apiKey']).toBe('sk-live-secret-123')
  })

  it('cuts webhook URLs to scheme and host (a Slack-style URL is authorised by its path alone)', () => {
    const s = parseSettings(raw({
      alerts: { webhooks: { slack: { url: 'https://hooks.slack.com/services/T000/B000/SLACKPATHSECRET', secret: 'whsec_0123456789abcdef' } } },
      usage: { webhook: { url: 'https://billing.example.com:8443/in?token=QUERYSECRET', secret: 'whsec_0123456789abcdef' } },
    }), {})
    const red = redactSettings(s) as { alerts: { webhooks: Record<string, { url: string }> }; usage: { webhook: { url: string } } }
    expect(red.alerts.webhooks['slack']?.url).toBe('https://hooks.slack.com/[redacted]')
    expect(red.usage.webhook.url).toBe('https://billing.example.com:8443/[redacted]')
    expect(JSON.stringify(red)).not.toMatch(/PATHSECRET|QUERYSECRET/)
  })

  it('hides every header value (exporters and webhooks authenticate with headers of any name)', () => {
    const s = parseSettings(raw({
      telemetry: { tracing: { enabled: false, headers: { 'x-honeycomb-team': 'hc-secret-team-key', dataset: 'gw' } } },
      providers: { oa: { type: 'openai', apiKey: 'sk-x-12345678', headers: { 'x-tenant-token-v2': 'tenant-secret' } } },
    }), {})
    const text = JSON.stringify(redactSettings(s))
    for (const secret of ['hc-secret-team-key', 'tenant-secret']) expect(text).not.toContain(secret)
    expect(text).toContain('"x-honeycomb-team":"[redacted]"')
  })
})
