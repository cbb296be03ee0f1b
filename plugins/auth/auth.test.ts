/**
 * auth: config (unknown keys), the key format and its verification (constant-time digests, unknown prefixes,
 * expiry), the role matrix's subset rule, scopes (what a request may reach, what a minted key may hold), and the
 * plugin's hooks on a fake context (401 / 403 / 404, the principal slot, the counters).
 */
import { createHash } from 'node:crypto'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { RequestCtx } from '../../gateway/context.ts'
import { Metrics } from '../../gateway/metrics.ts'
import { validatePluginConfig } from '../../gateway/pipeline/compile.ts'
import type { LocalReply, PluginDeps, PluginInstance } from '../../gateway/pipeline/types.ts'
import { createAuthenticator, generateKey, parseKey, type KeyRecord, type KeyResolver } from './api-key.ts'
import type { AuthConfig } from './config.ts'
import { authPlugin, principalOf } from './index.ts'
import { MATRIX, ROLES, roleCan, roleWithin, rolesWithin } from './roles.ts'
import { modelAllowed, numbersWithin, scopeRefusal, scopesWithin, UNRESTRICTED, type KeyScopes } from './scopes.ts'

const ADMIN = 'bootstrap-admin-key-0123456789abcdef'

function record(o: Partial<KeyRecord> & { secret: string; prefix: string }): KeyRecord {
  return {
    id: '11111111-1111-4111-8111-111111111111', role: 'invoker', team: 'blue', scopes: UNRESTRICTED, limits: {}, budgets: {}, expiresAt: null,
    ...o, hash: createHash('sha256').update(o.secret).digest(),
  }
}

function resolver(...records: KeyRecord[]): KeyResolver & { usedIds: string[] } {
  const byPrefix = new Map(records.map((r) => [r.prefix, r]))
  const usedIds: string[] = []
  return { lookup: (p) => byPrefix.get(p), used: (id) => { usedIds.push(id) }, usedIds }
}

function scopes(s: Partial<KeyScopes>): KeyScopes {
  return { ...UNRESTRICTED, ...s }
}

describe('key format', () => {
  it('is mcp_<12 base62>_<43 base64url>: 256 random bits, the digest of the secret only', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const k = generateKey()
      expect(k.key).toMatch(/^mcp_[0-9A-Za-z]{12}_[A-Za-z0-9_-]{43}$/)
      const p = parseKey(k.key)!
      expect(p.prefix).toBe(k.prefix)
      expect(Buffer.from(p.secret, 'base64url')).toHaveLength(32)
      expect(k.hashHex).toBe(createHash('sha256').update(p.secret).digest('hex'))
      expect(k.key).not.toContain(k.hashHex)
      seen.add(k.prefix)
    }
    expect(seen.size).toBe(200)
    for (const bad of ['', 'mcp_', 'mcp_short_x', `mcp_${'a'.repeat(12)}_${'b'.repeat(42)}`, `mcp_${'a'.repeat(12)}_${'b'.repeat(44)}`, `xyz_${'a'.repeat(12)}_${'b'.repeat(43)}`]) {
      expect(parseKey(bad), bad).toBeUndefined()
    }
  })
})

describe('authenticator', () => {
  const k = generateKey()
  const { prefix, secret } = parseKey(k.key)!
  let now = 1_000_000

  it('accepts the bootstrap key as a global admin and API keys as their record', () => {
    const keys = resolver(record({ prefix, secret, role: 'developer', team: 'blue', limits: { rpm: 5 } }))
    const auth = createAuthenticator({ adminKey: ADMIN, keys, now: () => now })
    const b = auth(ADMIN)
    expect(b).toMatchObject({ ok: true, principal: { keyId: 'bootstrap', role: 'admin' } })
    expect(b.ok && b.principal.team).toBeUndefined()
    const a = auth(k.key)
    expect(a).toMatchObject({ ok: true, principal: { keyId: '11111111-1111-4111-8111-111111111111', role: 'developer', team: 'blue', prefix, limits: { rpm: 5 } } })
    expect(keys.usedIds).toEqual(['11111111-1111-4111-8111-111111111111'])
    // The same record gives the same (frozen) principal object.
    expect(a.ok && auth(k.key).ok && (auth(k.key) as { principal: unknown }).principal).toBe(a.ok ? a.principal : undefined)
  })

  it('refuses missing, malformed, unknown-prefix, wrong-secret and expired keys', () => {
    const auth = createAuthenticator({ adminKey: ADMIN, keys: resolver(record({ prefix, secret, expiresAt: now + 1000 })), now: () => now })
    expect(auth(undefined)).toEqual({ ok: false, reason: 'missing' })
    expect(auth('nonsense')).toEqual({ ok: false, reason: 'invalid' })
    expect(auth(`${ADMIN}x`)).toEqual({ ok: false, reason: 'invalid' })
    expect(auth(generateKey().key)).toEqual({ ok: false, reason: 'invalid' })
    expect(auth(`mcp_${prefix}_${generateKey().key.slice(-43)}`)).toEqual({ ok: false, reason: 'invalid' })
    expect(auth(k.key).ok).toBe(true)
    now += 1000
    expect(auth(k.key)).toEqual({ ok: false, reason: 'expired' })
  })

  it('without a bootstrap key or resolver, nothing authenticates', () => {
    const auth = createAuthenticator({})
    expect(auth(k.key)).toEqual({ ok: false, reason: 'invalid' })
    expect(auth('')).toEqual({ ok: false, reason: 'invalid' })
  })
})

describe('roles', () => {
  it('admin holds every action; invoker only invoke; viewer no writes and no invoke', () => {
    expect(roleCan('admin', 'providers.write')).toBe(true)
    expect(MATRIX.invoker).toEqual(['invoke'])
    expect(MATRIX.viewer.some((a) => a.endsWith('.write') || a === 'invoke')).toBe(false)
    expect(roleCan('nobody', 'invoke')).toBe(false)
  })

  it('narrower-or-equal is set inclusion', () => {
    expect(rolesWithin('admin')).toEqual([...ROLES])
    expect(rolesWithin('operator')).toEqual(['operator', 'developer', 'viewer', 'invoker'])
    expect(rolesWithin('developer')).toEqual(['developer', 'viewer', 'invoker'])
    expect(rolesWithin('viewer')).toEqual(['viewer'])
    expect(rolesWithin('invoker')).toEqual(['invoker'])
    expect(roleWithin('viewer', 'invoker')).toBe(false)
    for (const r of ROLES) expect(roleWithin(r, r)).toBe(true)
  })
})

describe('scopes', () => {
  it('models and aliases restrict together; patterns end in *', () => {
    expect(modelAllowed(UNRESTRICTED, 'anything', false)).toBe(true)
    const m = scopes({ models: ['openai/*', 'mock/gpt-4o'] })
    expect(modelAllowed(m, 'openai/gpt-4o', false)).toBe(true)
    expect(modelAllowed(m, 'mock/gpt-4o', false)).toBe(true)
    expect(modelAllowed(m, 'mock/gpt-4o-mini', false)).toBe(false)
    expect(modelAllowed(m, 'smart', true)).toBe(false) // aliases null but models set: no alias
    const a = scopes({ aliases: ['smart'] })
    expect(modelAllowed(a, 'smart', true)).toBe(true)
    expect(modelAllowed(a, 'mock/gpt-4o', false)).toBe(false)
    expect(modelAllowed(scopes({ models: [] }), 'x', false)).toBe(false)
  })

  it('deployment and environment scopes limit execute, and a deployment-scoped key makes no direct calls', () => {
    const d = scopes({ deployments: ['d1'], environments: ['staging'] })
    expect(scopeRefusal(d, { model: 'mock/gpt-4o', isAlias: false })?.param).toBe('model')
    expect(scopeRefusal(d, { model: 'mock/gpt-4o', isAlias: false, deploymentId: 'd2', environment: 'staging' })?.param).toBe('deployment_id')
    expect(scopeRefusal(d, { model: 'mock/gpt-4o', isAlias: false, deploymentId: 'd1', environment: 'production' })?.param).toBe('environment')
    expect(scopeRefusal(d, { model: 'mock/gpt-4o', isAlias: false, deploymentId: 'd1', environment: 'staging' })).toBeUndefined()
  })

  it('a child scope is inside its parent only when every restricted dimension narrows', () => {
    const parent = scopes({ models: ['openai/*'], environments: ['dev', 'staging'] })
    expect(scopesWithin(scopes({ models: ['openai/gpt-4o'], environments: ['dev'] }), parent)).toBeUndefined()
    expect(scopesWithin(scopes({ models: ['openai/*'], environments: ['dev', 'staging'] }), parent)).toBeUndefined()
    expect(scopesWithin(scopes({ environments: ['dev'] }), parent)).toBe('scopes.models')
    expect(scopesWithin(scopes({ models: ['*'], environments: ['dev'] }), parent)).toBe('scopes.models')
    expect(scopesWithin(scopes({ models: ['openai/gpt-4o'] }), parent)).toBe('scopes.environments')
    expect(scopesWithin(scopes({ models: ['openai/gpt-4o'], aliases: ['smart'], environments: ['dev'] }), parent)).toBe('scopes.aliases')
    expect(scopesWithin(scopes({ models: ['anthropic/x'], environments: ['dev'] }), parent)).toBe('scopes.models')
    expect(scopesWithin(scopes({ deployments: ['a'] }), scopes({ deployments: ['a', 'b'] }))).toBeUndefined()
    expect(scopesWithin(UNRESTRICTED, scopes({ deployments: ['a'] }))).toBe('scopes.deployments')
    expect(scopesWithin(scopes({ models: ['x'] }), UNRESTRICTED)).toBeUndefined()
  })

  it('limits and budgets: every value the parent sets, the child sets no higher', () => {
    expect(numbersWithin({ rpm: 5 }, { rpm: 10 }, ['rpm', 'tpm'], 'limits')).toBeUndefined()
    expect(numbersWithin({ rpm: 11 }, { rpm: 10 }, ['rpm'], 'limits')).toBe('limits.rpm')
    expect(numbersWithin({}, { rpm: 10 }, ['rpm'], 'limits')).toBe('limits.rpm')
    expect(numbersWithin({ tpm: 99 }, {}, ['rpm', 'tpm'], 'limits')).toBeUndefined()
  })
})

// ---------- the plugin on a fake context ----------

function deps(keys: KeyResolver | undefined, adminKey: string | undefined, metrics: Metrics): PluginDeps {
  return { services: keys ? { keys } : {}, logger: pino({ level: 'silent' }), metrics, env: { adminKey, production: false } }
}

function ctx(o: { key?: string; model?: string; alias?: boolean; execution?: Record<string, unknown> } = {}): RequestCtx {
  return {
    headers: o.key === undefined ? {} : { authorization: `Bearer ${o.key}` },
    slots: o.execution ? { execution: o.execution } : {},
    requestedModel: o.model ?? 'mock/gpt-4o',
    alias: o.alias ? {} : undefined,
  } as unknown as RequestCtx
}

async function make(keys?: KeyResolver, c: Partial<AuthConfig> = {}, adminKey: string | null = ADMIN, metrics = new Metrics()): Promise<Required<Pick<PluginInstance, 'onRequestHeaders' | 'onRequestBody'>>> {
  const config = validatePluginConfig(authPlugin as never, c, 'plugins.auth') as unknown as AuthConfig
  return await authPlugin.create(config, deps(keys, adminKey ?? undefined, metrics)) as Required<Pick<PluginInstance, 'onRequestHeaders' | 'onRequestBody'>>
}

async function run(inst: Awaited<ReturnType<typeof make>>, c: RequestCtx): Promise<LocalReply | undefined> {
  return (await inst.onRequestHeaders(c)) ?? (await inst.onRequestBody(c)) ?? undefined
}

describe('auth plugin', () => {
  const k = generateKey()
  const { prefix, secret } = parseKey(k.key)!

  it('rejects unknown config keys', () => {
    expect(() => validatePluginConfig(authPlugin as never, { bogus: true }, 'plugins.auth')).toThrow(/bogus/)
  })

  it('401 without or with a bad key (counted), the principal slot with a good one', async () => {
    const metrics = new Metrics()
    const inst = await make(resolver(record({ prefix, secret, role: 'invoker', team: 'blue' })), {}, ADMIN, metrics)
    expect((await run(inst, ctx()))?.code).toBe('MCP_ERR_AUTH_MISSING')
    expect((await run(inst, ctx({ key: generateKey().key })))?.code).toBe('MCP_ERR_AUTH_INVALID')
    const c = ctx({ key: k.key })
    expect(await run(inst, c)).toBeUndefined()
    expect(principalOf(c)).toMatchObject({ role: 'invoker', team: 'blue', prefix })
    expect(metrics.render()).toMatch(/mcp_plugin_auth_rejected_total\{reason="missing_key"\} 1/)
    expect(metrics.render()).toMatch(/mcp_plugin_auth_rejected_total\{reason="invalid_key"\} 1/)
  })

  it('a viewer key may not call the data plane (403)', async () => {
    const inst = await make(resolver(record({ prefix, secret, role: 'viewer' })))
    const r = await run(inst, ctx({ key: k.key }))
    expect(r).toMatchObject({ code: 'MCP_ERR_AUTH_FORBIDDEN', details: 'auth.forbidden_role' })
  })

  it('scopes: a model, alias, deployment or environment outside them is a 403 naming it', async () => {
    const inst = await make(resolver(record({ prefix, secret, scopes: scopes({ models: ['mock/gpt-4o-mini'], aliases: ['cheap'], environments: ['staging'] }) })))
    expect(await run(inst, ctx({ key: k.key, model: 'mock/gpt-4o-mini' }))).toBeUndefined()
    expect(await run(inst, ctx({ key: k.key, model: 'cheap', alias: true }))).toBeUndefined()
    expect(await run(inst, ctx({ key: k.key, model: 'mock/gpt-4o' }))).toMatchObject({ code: 'MCP_ERR_AUTH_FORBIDDEN', param: 'model' })
    expect(await run(inst, ctx({ key: k.key, model: 'smart', alias: true }))).toMatchObject({ code: 'MCP_ERR_AUTH_FORBIDDEN', params: { action: 'use alias smart' } })
    const prod = ctx({ key: k.key, model: 'mock/gpt-4o-mini', execution: { deploymentId: 'd1', environment: 'production', team: 'blue' } })
    expect(await run(inst, prod)).toMatchObject({ code: 'MCP_ERR_AUTH_FORBIDDEN', param: 'environment' })
  })

  it('a team-bound key executing another team\'s deployment gets the not-found answer; the admin does not', async () => {
    const inst = await make(resolver(record({ prefix, secret, team: 'blue' })))
    expect(await run(inst, ctx({ key: k.key, execution: { deploymentId: 'd1', environment: 'staging', team: 'red' } }))).toMatchObject({ code: 'MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND' })
    expect(await run(inst, ctx({ key: k.key, execution: { deploymentId: 'd1', environment: 'staging', team: null } }))).toMatchObject({ code: 'MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND' })
    expect(await run(inst, ctx({ key: k.key, execution: { deploymentId: 'd1', environment: 'staging', team: 'blue' } }))).toBeUndefined()
    expect(await run(inst, ctx({ key: ADMIN, execution: { deploymentId: 'd1', environment: 'staging', team: 'red' } }))).toBeUndefined()
  })

  it('development without MCP_ADMIN_KEY: anonymous admin, unless allowWithoutKeys is false', async () => {
    const open = await make(undefined, {}, null)
    const c = ctx()
    expect(await run(open, c)).toBeUndefined()
    expect(principalOf(c)).toMatchObject({ keyId: 'anonymous', role: 'admin' })
    const closed = await make(undefined, { allowWithoutKeys: false }, null)
    expect((await run(closed, ctx()))?.code).toBe('MCP_ERR_AUTH_MISSING')
    expect((await run(closed, ctx({ key: k.key })))?.code).toBe('MCP_ERR_AUTH_MISSING')
  })
})
