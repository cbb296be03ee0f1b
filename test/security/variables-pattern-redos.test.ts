/**
 * ReDoS through a prompt version's `variables` schema: a `pattern` written by a user (prompts.write) is checked on every
 * execute, on both ports. With V8's backtracking RegExp, `^(a+)+$` against 29 a's and a '!' blocked the whole process
 * (data plane included) for 14 s. User patterns run on a linear-time engine (RE2JS), bounded in pattern size and input
 * length; patterns that engine cannot run (backreferences, lookaround) are refused when the version is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore } from '../../store/index.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { startTestMcp, type TestMcp } from '../admin/helpers.ts'

let t: TestMcp
let mock: OpenAIMock
let n = 0

beforeAll(async () => {
  mock = await startOpenAIMock()
  t = await startTestMcp({ store: await openStore({ dataDir: 'memory://' }), override: { providers: { mock: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-test' } } } })
}, 60_000)

afterAll(async () => {
  await t?.close()
  await mock?.close()
})

async function deployed(pattern: string): Promise<string> {
  const p = await t.api('POST', 'prompts', { name: `redos-${++n}` })
  const v = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'echo {{x}}', model: 'mock/gpt-4o', variables: { type: 'object', properties: { x: { type: 'string', pattern } } } })
  expect(v.status, v.text).toBe(201)
  const d = await t.api('POST', 'deployments', { prompt_id: p.body.id, environment: 'development' })
  expect(d.status, d.text).toBe(201)
  return d.body.id
}

describe('variables patterns', () => {
  it.each(['^(a+)+$', '^(a|a)*$', '^(a*)*$', '^(a|aa)+$'])('%s: an execute with a non-matching 27 a\'s and a "!" answers a 422 at once, and the data plane stays responsive', async (pattern) => {
    const id = await deployed(pattern)
    const started = performance.now()
    const ex = t.data('POST', '/api/v1/mcp/execute', { deployment_id: id, variables: { x: `${'a'.repeat(27)}!` } })
    const health = t.api('GET', '/healthz')
    const [r, h] = await Promise.all([ex, health])
    const took = performance.now() - started
    expect(r.status, r.text).toBe(422)
    expect(r.body.error.param).toBe('variables.x')
    expect(h.status).toBe(200)
    expect(took).toBeLessThan(1000)
    // A matching value still passes.
    const ok = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: id, variables: { x: 'aaaa' } })
    expect(ok.status, ok.text).toBe(200)
  }, 60_000)

  it('a string too long to be checked in bounded time fails its pattern, and the error says why', async () => {
    const id = await deployed('^[a-z]{1,64}$')
    const r = await t.api('POST', 'execute', { deployment_id: id, variables: { x: 'a'.repeat(100_000) } })
    expect(r.status, r.text).toBe(422)
    expect(r.body.error.param).toBe('variables.x')
    expect(r.body.error.message).toMatch(/100000 characters long, more than the \d+ that its pattern is checked on/)
  })

  it.each([
    ['a backreference', '^(a)\\1$', /not supported by the linear-time engine/],
    ['a lookahead', '^(?=a)a$', /not supported by the linear-time engine/],
    ['a pattern longer than 512 characters', 'a'.repeat(513), /longer than 512/],
    ['repetition counts over 1000 in all', 'a{600}b{600}', /repetition counts/],
  ])('refuses %s when the version is written, with a 422 naming the pattern', async (_what, pattern, why) => {
    const p = await t.api('POST', 'prompts', { name: `redos-${++n}` })
    const v = await t.api('POST', `prompts/${p.body.id}/versions`, {
      template: 'echo {{x}}', model: 'mock/gpt-4o',
      variables: { type: 'object', properties: { x: { type: 'string', default: { pattern: '(x)\\1' } }, y: { type: 'string', pattern } } },
    })
    expect(v.status, v.text).toBe(422)
    expect(v.body.error.param).toBe('variables.properties.y.pattern')
    expect(v.body.error.message).toMatch(why)
  })

  it('patternProperties keys are held to the same rules', async () => {
    const p = await t.api('POST', 'prompts', { name: `redos-${++n}` })
    const v = await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'echo {{x}}', variables: { type: 'object', patternProperties: { '(a)\\1': { type: 'string' } } } })
    expect(v.status, v.text).toBe(422)
    expect(v.body.error.param).toBe('variables.patternProperties.(a)\\1')
  })

  it('a deployment\'s default_variables are checked with the same engine', async () => {
    const p = await t.api('POST', 'prompts', { name: `redos-${++n}` })
    await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'echo {{x}}', model: 'mock/gpt-4o', variables: { type: 'object', properties: { x: { type: 'string', pattern: '^(a+)+$' } } } })
    const started = performance.now()
    const d = await t.api('POST', 'deployments', { prompt_id: p.body.id, environment: 'development', config: { default_variables: { x: `${'a'.repeat(30)}!` } } })
    expect(d.status, d.text).toBe(422)
    expect(d.body.error.param).toBe('config.default_variables.x')
    expect(performance.now() - started).toBeLessThan(1000)
  }, 60_000)

  it('uniqueItems costs time in proportion to the array (ajv compared every pair of items: 30,000 took seconds)', async () => {
    const p = await t.api('POST', 'prompts', { name: `redos-${++n}` })
    await t.api('POST', `prompts/${p.body.id}/versions`, { template: 'echo {{x}}', model: 'mock/gpt-4o', variables: { type: 'object', properties: { x: { type: 'array', uniqueItems: true } } } })
    const d = await t.api('POST', 'deployments', { prompt_id: p.body.id, environment: 'development' })
    const items = Array.from({ length: 30_000 }, (_, i) => [i])
    const started = performance.now()
    const r = await t.data('POST', '/api/v1/mcp/execute', { deployment_id: d.body.id, variables: { x: [[0], ...items] } })
    expect(performance.now() - started).toBeLessThan(1000)
    expect(r.status, r.text).toBe(422)
    expect(r.body.error.message).toMatch(/variables\.x: must NOT have duplicate items/)
    // Equal JSON values are duplicates whatever their key order; distinct ones pass.
    expect((await t.api('POST', 'execute', { deployment_id: d.body.id, variables: { x: [{ a: 1, b: 2 }, { b: 2, a: 1 }] } })).status).toBe(422)
    expect((await t.api('POST', 'execute', { deployment_id: d.body.id, variables: { x: [1, '1', [1], { 1: 1 }] } })).status).toBe(200)
  }, 60_000)
})
