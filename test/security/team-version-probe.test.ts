/**
 * Another team's object answers exactly as a missing one (docs/rbac.md "Teams"). A deployment write naming a prompt
 * version by id (PUT prompt_version_id, PUT traffic[i], rollback) told another team's version ("belongs to another
 * prompt") from a random id ("does not exist"), so a team-bound key could probe which version ids exist elsewhere.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore } from '../../store/index.ts'
import { startStack, type Stack } from './helpers.ts'

const RANDOM = '11111111-1111-4111-8111-111111111111'
let s: Stack
let dev1: string
let dep1: string
let ownOther: string
let v2: string

beforeAll(async () => {
  s = await startStack({ store: await openStore({ dataDir: 'memory://' }) })
  dev1 = (await s.mint({ role: 'developer', team: 't1' })).key
  const dev2 = (await s.mint({ role: 'developer', team: 't2' })).key
  const p1 = (await s.as(dev1, 'POST', 'prompts', { name: 'probe-1' })).body
  expect((await s.as(dev1, 'POST', `prompts/${p1.id}/versions`, { template: 'echo {{x}}', model: 'mock/gpt-4o' })).status).toBe(201)
  dep1 = (await s.as(dev1, 'POST', 'deployments', { prompt_id: p1.id, environment: 'development' })).body.id
  // A version of another prompt of the same team, and one of the other team.
  const p1b = (await s.as(dev1, 'POST', 'prompts', { name: 'probe-1b' })).body
  ownOther = (await s.as(dev1, 'POST', `prompts/${p1b.id}/versions`, { template: 'echo b {{x}}', model: 'mock/gpt-4o' })).body.id
  const p2 = (await s.as(dev2, 'POST', 'prompts', { name: 'probe-2' })).body
  v2 = (await s.as(dev2, 'POST', `prompts/${p2.id}/versions`, { template: 'echo t2 {{x}}', model: 'mock/gpt-4o' })).body.id
}, 60_000)

afterAll(async () => { await s?.close() })

describe("a prompt version of another team named in a deployment write", () => {
  const writes: [string, (id: string) => [string, string, unknown, Record<string, string>], string][] = [
    ['PUT prompt_version_id', (id) => ['PUT', `deployments/${dep1}`, { prompt_version_id: id }, { 'if-match': '*' }], 'prompt_version_id'],
    ['PUT traffic', (id) => ['PUT', `deployments/${dep1}`, { traffic: [{ version: 1, weight: 90 }, { prompt_version_id: id, weight: 10 }] }, { 'if-match': '*' }], 'traffic[1].prompt_version_id'],
    ['rollback', (id) => ['POST', `deployments/${dep1}/rollback`, { prompt_version_id: id }, {}], 'prompt_version_id'],
  ]

  it.each(writes)('%s: answers exactly as a random id does', async (_what, req, param) => {
    const answer = async (id: string) => {
      const [m, p, b, h] = req(id)
      const r = await s.as(dev1, m, p, b, h)
      return { status: r.status, param: r.body?.error?.param, message: String(r.body?.error?.message ?? '').replaceAll(id, '<id>') }
    }
    const missing = await answer(RANDOM)
    expect(missing.status).toBe(422)
    expect(missing.param).toBe(param)
    expect(await answer(v2)).toEqual(missing)
    // Another prompt of the caller's own team is refused the same way (a version of another prompt).
    expect(await answer(ownOther)).toEqual(missing)
  })
})
