/**
 * The access-control matrix, as a test: roles × endpoints × (own team / other team) × fields, each case's outcome
 * compared with what docs/rbac.md documents (roles.ts MATRIX, rbac.ts ROUTE_ACTIONS and WRITE_RULES):
 *   allowed → 2xx · role lacks the action → 403 · another team's object → 404 · forbidden field → 403 / 422
 *   (read-only) / 400 (a field no schema lists).
 * Escalations are counted separately and must be 0: a refused case that answered 2xx or changed anything (every
 * change writes an audit row in its transaction, so "no new change row" is the witness), a list showing another
 * team's object, and, at the end, any key in the database broader than the key that created it.
 * Runs on PGlite in memory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { broaderField } from '../../admin/keys.ts'
import { findKey, powersOf } from '../../admin/repo/keys.ts'
import { registerExecutionRoutes } from '../../admin/routes/executions.ts'
import { registerTargetRoutes } from '../../admin/routes/targets.ts'
import { registerUsageRoutes } from '../../admin/routes/usage.ts'
import { ROLES, roleCan, roleWithin, type Action, type Role } from '../../plugins/auth/roles.ts'
import type { Principal } from '../../plugins/auth/scopes.ts'
import { testEngines, type ApiResponse } from '../admin/helpers.ts'
import { bearer, startStack, type Stack } from './helpers.ts'

const [pglite] = testEngines('rbac matrix')
const OWN = 'blue'
const OTHER = 'red'
type Target = 'own' | 'other' | 'none'
/** 'ok' = any 2xx; a number = exactly that status; a list = one of them. */
type Want = 'ok' | number | number[]

interface Case {
  name: string
  want: Want
  /** Creates what the case acts on (with the bootstrap key), before the change witness is read. */
  prep?: () => Promise<string>
  run: (prepared: string) => Promise<ApiResponse>
  /** Returns a description when a 2xx answer leaks another team's data. */
  leak?: (r: ApiResponse) => string | undefined | Promise<string | undefined>
}

function want(role: Role, action: Action, target: Target): Want {
  if (!roleCan(role, action)) return 403
  if (target === 'other' && role !== 'admin') return 404
  return 'ok'
}

describe('access-control matrix', () => {
  let s: Stack
  const actors = new Map<Role, { key: string; id: string }>()
  let seq = 0
  const uniq = (p: string): string => `${p}-${++seq}`
  const results: { name: string; status: number; want: Want; ok: boolean; escalation?: string }[] = []

  const boot = <T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>> => s.as<T>(undefined, method, path, body, headers)

  async function prompt(team: string | null): Promise<string> {
    const p = await boot('POST', 'prompts', { name: uniq('p'), ...(team ? { team } : {}) })
    const v = await boot('POST', `prompts/${p.body.id}/versions`, { template: 'echo hello', model: 'mock/gpt-4o-mini' })
    if (p.status !== 201 || v.status !== 201) throw new Error(`seed prompt: ${p.text} ${v.text}`)
    return p.body.id
  }
  async function deployment(team: string | null, environment = 'staging'): Promise<{ id: string; promptId: string }> {
    const promptId = await prompt(team)
    const d = await boot('POST', 'deployments', { prompt_id: promptId, environment })
    if (d.status !== 201) throw new Error(`seed deployment: ${d.text}`)
    return { id: d.body.id, promptId }
  }
  async function key(body: Record<string, unknown>): Promise<{ key: string; id: string }> {
    return s.mint(body)
  }
  const teamOf = (t: Target): string => (t === 'other' ? OTHER : OWN)

  /** Change rows (what a refused request must never add). */
  async function changeRows(): Promise<number> {
    // Background rows (refusals, reloads, breakers) land asynchronously: not a witness of this case.
    const { rows } = await s.t.store.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_log WHERE action NOT IN ('admin.refused', 'config.reload', 'config.reload_refused', 'target.breaker')")
    return rows[0]!.n
  }

  async function runCase(c: Case): Promise<void> {
    const prepared = c.prep ? await c.prep() : ''
    const before = await changeRows()
    const r = await c.run(prepared)
    const after = await changeRows()
    const ok2xx = r.status >= 200 && r.status < 300
    const wanted = Array.isArray(c.want) ? c.want : [c.want]
    const matches = wanted.some((w) => (w === 'ok' ? ok2xx : r.status === w))
    const expectedRefusal = wanted.every((w) => w !== 'ok' && (w < 200 || w >= 300))
    let escalation: string | undefined
    if (expectedRefusal && ok2xx) escalation = `answered ${r.status} where ${wanted.join('/')} was documented`
    else if (expectedRefusal && after !== before) escalation = `refused with ${r.status} but wrote ${after - before} change row(s)`
    else if (ok2xx && c.leak) escalation = await c.leak(r)
    results.push({ name: c.name, status: r.status, want: c.want, ok: matches && escalation === undefined, ...(escalation ? { escalation } : {}) })
  }

  beforeAll(async () => {
    const store = await pglite!.open()
    s = await startStack({
      store,
      adminRoutes: (admin, _cp, gw) => {
        registerTargetRoutes(admin, gw)
        registerExecutionRoutes(admin, store)
        registerUsageRoutes(admin, store)
      },
    })
    for (const role of ROLES) actors.set(role, await key({ role, name: `actor-${role}`, ...(role === 'admin' ? {} : { team: OWN }) }))
  }, 60_000)

  afterAll(async () => {
    await s?.close()
  })

  it('every case matches the documented matrix, with 0 escalations', async () => {
    const cases: Case[] = []
    const as = (role: Role) => (method: string, path: string, body?: unknown, headers?: Record<string, string>) => s.as(actors.get(role)!.key, method, path, body, headers)

    // Shared targets of each team (not destroyed by the cases that use them).
    const shared = {
      own: { dep: await deployment(OWN), key: await key({ team: OWN, role: 'invoker' }) },
      other: { dep: await deployment(OTHER), key: await key({ team: OTHER, role: 'invoker' }) },
    }
    const promptTeams = async (): Promise<Map<string, string | null>> =>
      new Map((await s.t.store.query<{ id: string; team: string | null }>('SELECT id, team FROM prompts')).rows.map((r) => [r.id, r.team]))
    const onlyOwn = (role: Role, teamOfItem: (x: any, teams: Map<string, string | null>) => string | null | undefined) => async (r: ApiResponse): Promise<string | undefined> => {
      if (role === 'admin') return undefined
      const teams = await promptTeams()
      const bad = (r.body?.data ?? []).find((x: any) => teamOfItem(x, teams) !== OWN)
      return bad ? `list shows an object of team ${String(teamOfItem(bad, teams))}` : undefined
    }

    for (const role of ROLES) {
      const call = as(role)
      // A. Object endpoints × own / other team.
      for (const target of ['own', 'other'] as const) {
        const t = shared[target]
        const pid = t.dep.promptId
        cases.push(
          { name: `${role} GET prompt (${target})`, want: want(role, 'prompts.read', target), run: () => call('GET', `prompts/${pid}`) },
          { name: `${role} GET prompt versions (${target})`, want: want(role, 'prompts.read', target), run: () => call('GET', `prompts/${pid}/versions`) },
          { name: `${role} GET prompt version 1 (${target})`, want: want(role, 'prompts.read', target), run: () => call('GET', `prompts/${pid}/versions/1`) },
          { name: `${role} POST prompt version (${target})`, want: want(role, 'prompts.write', target), run: () => call('POST', `prompts/${pid}/versions`, { template: `echo ${uniq('v')}`, model: 'mock/gpt-4o-mini' }) },
          { name: `${role} GET deployment (${target})`, want: want(role, 'deployments.read', target), run: () => call('GET', `deployments/${t.dep.id}`) },
          { name: `${role} GET deployment history (${target})`, want: want(role, 'deployments.read', target), run: () => call('GET', `deployments/${t.dep.id}/history`) },
          { name: `${role} GET deployment health (${target})`, want: want(role, 'deployments.read', target), run: () => call('GET', `deployments/${t.dep.id}/health`) },
          { name: `${role} PUT deployment (${target})`, want: want(role, 'deployments.write', target), run: () => call('PUT', `deployments/${t.dep.id}`, { status: 'active' }, { 'if-match': '*' }) },
          { name: `${role} POST deployment rollback (${target})`, want: want(role, 'deployments.write', target), run: () => call('POST', `deployments/${t.dep.id}/rollback`, { version: 1 }) },
          { name: `${role} GET key (${target})`, want: want(role, 'keys.read', target), run: () => call('GET', `keys/${t.key.id}`) },
          { name: `${role} PATCH key name (${target})`, want: want(role, 'keys.write', target), run: () => call('PATCH', `keys/${t.key.id}`, { name: uniq('n') }) },
          { name: `${role} rotate key (${target})`, want: want(role, 'keys.write', target), prep: async () => (await key({ team: teamOf(target), role: 'invoker' })).id, run: (id) => call('POST', `keys/${id}/rotate`, { overlap_seconds: 0 }) },
          { name: `${role} revoke key (${target})`, want: want(role, 'keys.write', target), prep: async () => (await key({ team: teamOf(target), role: 'invoker' })).id, run: (id) => call('DELETE', `keys/${id}`) },
          { name: `${role} DELETE deployment (${target})`, want: want(role, 'deployments.write', target), prep: async () => (await deployment(teamOf(target))).id, run: (id) => call('DELETE', `deployments/${id}`, undefined, { 'if-match': '*' }) },
          { name: `${role} POST deployment of a prompt (${target})`, want: want(role, 'deployments.write', 'none') === 'ok' && target === 'other' && role !== 'admin' ? 422 : want(role, 'deployments.write', 'none'), prep: () => prompt(teamOf(target)), run: (pid) => call('POST', 'deployments', { prompt_id: pid, environment: 'production' }) },
          { name: `${role} POST prompt with team (${target})`, want: want(role, 'prompts.write', 'none') === 'ok' && target === 'other' && role !== 'admin' ? 403 : want(role, 'prompts.write', 'none'), run: () => call('POST', 'prompts', { name: uniq('tp'), team: teamOf(target) }) },
          { name: `${role} POST key with team (${target})`, want: want(role, 'keys.write', 'none') === 'ok' && target === 'other' && role !== 'admin' ? 403 : want(role, 'keys.write', 'none'), run: () => call('POST', 'keys', { role: 'invoker', team: teamOf(target) }) },
          { name: `${role} execute deployment (${target})`, want: want(role, 'invoke', target), run: () => s.t.data('POST', '/api/v1/mcp/execute', { deployment_id: t.dep.id }, bearer(actors.get(role)!.key)) },
        )
      }

      // B. Collections and global endpoints.
      cases.push(
        { name: `${role} GET prompts`, want: want(role, 'prompts.read', 'none'), run: () => call('GET', 'prompts?limit=200'), leak: onlyOwn(role, (x) => x.team) },
        { name: `${role} GET prompts ?team=other`, want: want(role, 'prompts.read', 'none'), run: () => call('GET', `prompts?team=${OTHER}&limit=200`), leak: onlyOwn(role, (x) => x.team) },
        { name: `${role} GET deployments`, want: want(role, 'deployments.read', 'none'), run: () => call('GET', 'deployments?limit=200'), leak: onlyOwn(role, (x, teams) => teams.get(x.prompt_id)) },
        { name: `${role} GET keys`, want: want(role, 'keys.read', 'none'), run: () => call('GET', 'keys?limit=200'), leak: onlyOwn(role, (x) => x.team) },
        { name: `${role} GET keys ?team=other`, want: want(role, 'keys.read', 'none'), run: () => call('GET', `keys?team=${OTHER}`), leak: onlyOwn(role, (x) => x.team) },
        { name: `${role} GET audit`, want: want(role, 'audit.read', 'none'), run: () => call('GET', 'audit?limit=200'), leak: onlyOwn(role, (x) => x.team) },
        { name: `${role} GET environments`, want: want(role, 'deployments.read', 'none'), run: () => call('GET', 'environments') },
        { name: `${role} GET providers`, want: want(role, 'providers.read', 'none'), run: () => call('GET', 'providers') },
        { name: `${role} POST provider`, want: want(role, 'providers.write', 'none'), run: () => call('POST', 'providers', { name: uniq('prov'), provider: 'openai', config: { baseUrl: 'https://api.example.com/v1' } }) },
        { name: `${role} PUT provider`, want: want(role, 'providers.write', 'none'), prep: async () => (await boot('POST', 'providers', { name: uniq('prov'), provider: 'openai', config: { baseUrl: 'https://api.example.com/v1' } })).body.id, run: (id) => call('PUT', `providers/${id}`, { status: 'disabled' }, { 'if-match': '*' }) },
        { name: `${role} DELETE provider`, want: want(role, 'providers.write', 'none'), prep: async () => (await boot('POST', 'providers', { name: uniq('prov'), provider: 'openai', config: { baseUrl: 'https://api.example.com/v1' } })).body.id, run: (id) => call('DELETE', `providers/${id}`, undefined, { 'if-match': '*' }) },
        { name: `${role} GET openapi`, want: want(role, 'openapi.read', 'none'), run: () => call('GET', 'openapi.json') },
        { name: `${role} GET config`, want: want(role, 'config.read', 'none'), run: () => call('GET', 'config') },
        { name: `${role} POST config reload`, want: want(role, 'config.reload', 'none'), run: () => call('POST', 'config/reload') },
        { name: `${role} GET metrics`, want: want(role, 'metrics.read', 'none'), run: () => call('GET', '/metrics') },
        { name: `${role} GET targets`, want: want(role, 'targets.read', 'none'), run: () => call('GET', 'targets') },
        { name: `${role} POST target breaker`, want: want(role, 'targets.write', 'none') === 'ok' ? [200, 404] : 403, run: () => call('POST', 'targets/mock/gpt-4o/breaker', { state: 'auto' }) },
        { name: `${role} GET executions`, want: want(role, 'executions.read', 'none'), run: () => call('GET', 'executions') },
        { name: `${role} GET usage`, want: want(role, 'usage.read', 'none'), run: () => call('GET', 'usage?group_by=team'), leak: (r) => (role === 'admin' ? undefined : JSON.stringify(r.body).includes(`"${OTHER}"`) ? 'usage of another team' : undefined) },
        { name: `${role} chat`, want: want(role, 'invoke', 'none'), run: () => s.chat(actors.get(role)!.key) },
      )

      // D. Minting: every role × every role of the new key (own team).
      for (const child of ROLES) {
        const can = roleCan(role, 'keys.write') ? (roleWithin(child, role) ? 'ok' : 403) : 403
        cases.push({ name: `${role} mints ${child}`, want: can, run: () => call('POST', 'keys', { role: child, team: OWN }) })
      }

      // E. Fields: read-only (422), admin-only on PATCH (403), unknown to the schema (400).
      const writer = roleCan(role, 'keys.write')
      for (const f of ['key_hash', 'prefix', 'id', 'revoked_at', 'last_used_at', 'key']) {
        cases.push({ name: `${role} POST key with ${f}`, want: writer ? 422 : 403, run: () => call('POST', 'keys', { role: 'invoker', team: OWN, [f]: f === 'key_hash' ? 'a'.repeat(64) : 'x' }) })
      }
      const patches: [string, unknown][] = [['role', 'admin'], ['team', OTHER], ['scopes', { models: null }], ['limits', { rpm: 1 }], ['budgets', { daily_usd: 1 }]]
      for (const [f, v] of patches) {
        cases.push({ name: `${role} PATCH key ${f}`, want: writer ? (role === 'admin' ? 'ok' : 403) : 403, prep: async () => (await key({ team: OWN, role: 'invoker' })).id, run: (id) => call('PATCH', `keys/${id}`, { [f]: v }) })
      }
      cases.push(
        { name: `${role} PATCH key key_hash`, want: writer ? 422 : 403, run: () => call('PATCH', `keys/${shared.own.key.id}`, { key_hash: 'b'.repeat(64) }) },
        { name: `${role} PUT deployment environment`, want: roleCan(role, 'deployments.write') ? 400 : 403, run: () => call('PUT', `deployments/${shared.own.dep.id}`, { environment: 'production' }, { 'if-match': '*' }) },
        { name: `${role} POST provider with id`, want: roleCan(role, 'providers.write') ? 400 : 403, run: () => call('POST', 'providers', { id: '00000000-0000-4000-8000-000000000000', name: uniq('prov'), provider: 'openai', config: { baseUrl: 'https://api.example.com/v1' } }) },
      )

      // G. Acting on a key broader than the caller (an operator key of the caller's team).
      for (const [verb, method, path, body] of [['rotate', 'POST', 'rotate', { overlap_seconds: 0 }], ['revoke', 'DELETE', '', undefined], ['change', 'PATCH', '', { name: 'x' }]] as const) {
        const w: Want = !roleCan(role, 'keys.write') ? 403 : roleWithin('operator', role) ? 'ok' : 403
        cases.push({ name: `${role} ${verb}s an operator key`, want: w, prep: async () => (await key({ team: OWN, role: 'operator' })).id, run: (id) => call(method, `keys/${id}${path ? `/${path}` : ''}`, body) })
      }
    }

    // F. A scoped developer: every dimension of what it mints must stay inside it.
    const hour = Date.now() + 3_600_000
    const sdev = await key({
      team: OWN, role: 'developer', scopes: { models: ['mock/gpt-4o-mini'], environments: ['staging'] }, limits: { rpm: 10 }, budgets: { daily_usd: 5 },
      expires_at: new Date(hour).toISOString(),
    })
    const sd = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => s.as(sdev.key, method, path, body, headers)
    const inside = { role: 'invoker', team: OWN, scopes: { models: ['mock/gpt-4o-mini'], environments: ['staging'] }, limits: { rpm: 10 }, budgets: { daily_usd: 5 }, expires_at: new Date(hour - 60_000).toISOString() }
    const prodDep = await deployment(OWN, 'production')
    cases.push(
      { name: 'scoped developer mints a key inside itself', want: 'ok', run: () => sd('POST', 'keys', inside) },
      { name: 'scoped developer mints without scopes', want: 403, run: () => sd('POST', 'keys', { ...inside, scopes: undefined }) },
      { name: 'scoped developer mints models mock/*', want: 403, run: () => sd('POST', 'keys', { ...inside, scopes: { ...inside.scopes, models: ['mock/*'] } }) },
      { name: 'scoped developer mints an alias', want: 403, run: () => sd('POST', 'keys', { ...inside, scopes: { ...inside.scopes, aliases: ['smart'] } }) },
      { name: 'scoped developer mints environment production', want: 403, run: () => sd('POST', 'keys', { ...inside, scopes: { ...inside.scopes, environments: ['production'] } }) },
      { name: 'scoped developer mints rpm 11', want: 403, run: () => sd('POST', 'keys', { ...inside, limits: { rpm: 11 } }) },
      { name: 'scoped developer mints no limits', want: 403, run: () => sd('POST', 'keys', { ...inside, limits: undefined }) },
      { name: 'scoped developer mints budget 6', want: 403, run: () => sd('POST', 'keys', { ...inside, budgets: { daily_usd: 6 } }) },
      { name: 'scoped developer mints no expiry', want: 403, run: () => sd('POST', 'keys', { ...inside, expires_at: undefined }) },
      { name: 'scoped developer mints a later expiry', want: 403, run: () => sd('POST', 'keys', { ...inside, expires_at: new Date(hour + 60_000).toISOString() }) },
      { name: 'scoped developer rotates an unscoped key', want: 403, prep: async () => (await key({ team: OWN, role: 'invoker' })).id, run: (id) => sd('POST', `keys/${id}/rotate`, {}) },
      { name: 'scoped developer PATCHes an unscoped key expiry', want: 403, prep: async () => (await key({ team: OWN, role: 'invoker' })).id, run: (id) => sd('PATCH', `keys/${id}`, { expires_at: new Date(hour - 1000).toISOString() }) },
      { name: 'scoped developer updates a staging deployment', want: 'ok', run: () => sd('PUT', `deployments/${shared.own.dep.id}`, { status: 'active' }, { 'if-match': '*' }) },
      { name: 'scoped developer updates a production deployment', want: 403, run: () => sd('PUT', `deployments/${prodDep.id}`, { status: 'active' }, { 'if-match': '*' }) },
      { name: 'scoped developer promotes to production', want: 403, run: () => sd('POST', `deployments/${shared.own.dep.id}/promote`, {}) },
      { name: 'scoped developer creates a production deployment', want: 403, prep: () => prompt(OWN), run: (pid) => sd('POST', 'deployments', { prompt_id: pid, environment: 'production' }) },
      { name: 'scoped developer calls its model', want: 'ok', run: () => s.chat(sdev.key, 'mock/gpt-4o-mini') },
      { name: 'scoped developer calls another model', want: 403, run: () => s.chat(sdev.key, 'mock/gpt-4o') },
      { name: 'scoped developer calls an alias', want: 403, run: () => s.chat(sdev.key, 'cheap') },
    )

    for (const c of cases) await runCase(c)

    // Global escalation check: no key in the database is broader than the key that created it.
    const { rows } = await s.t.store.query<{ id: string; created_by: string | null }>('SELECT id, created_by FROM api_keys WHERE created_by IS NOT NULL')
    let broader = 0
    for (const r of rows) {
      const child = (await findKey(s.t.store, r.id))!
      const creator = (await findKey(s.t.store, r.created_by!))!
      const cp = powersOf(creator)
      const principal: Principal = {
        keyId: creator.id, role: creator.role, scopes: creator.scopes, limits: creator.limits, budgets: creator.budgets,
        ...(creator.team !== null ? { team: creator.team } : {}), ...(cp.expiresAt !== null ? { expiresAt: cp.expiresAt } : {}),
      }
      const childPowers = powersOf(child)
      // A rotated key's overlap end is not part of what it was minted with.
      const f = broaderField({ ...childPowers, expiresAt: child.expires_at?.getTime() ?? null }, principal)
      const teamBad = creator.role !== 'admin' && child.team !== creator.team
      if (f !== undefined || teamBad) {
        broader++
        results.push({ name: `key ${child.id} (${child.role}, ${child.team}) minted by ${creator.role}/${creator.team}`, status: 0, want: 'ok', ok: false, escalation: `broader than its creator: ${f ?? 'team'}` })
      }
    }

    const escalations = results.filter((r) => r.escalation !== undefined)
    const mismatches = results.filter((r) => !r.ok)
    const byOutcome = results.reduce<Record<string, number>>((m, r) => { const k = String(r.status); m[k] = (m[k] ?? 0) + 1; return m }, {})
    console.log(`[rbac matrix] ${results.length} cases (${rows.length} minted keys checked, ${broader} broader); outcomes ${JSON.stringify(byOutcome)}; mismatches ${mismatches.length}; escalations ${escalations.length}`)
    for (const m of mismatches.slice(0, 30)) console.log(`  ✗ ${m.name}: got ${m.status}, documented ${JSON.stringify(m.want)}${m.escalation ? ` — ESCALATION: ${m.escalation}` : ''}`)
    expect(results.length).toBeGreaterThanOrEqual(200)
    expect(escalations).toEqual([])
    expect(mismatches).toEqual([])
  }, 180_000)
})
