/**
 * GET /v1/models lists what the config can reach: every provider's declared models as `<provider>/<model>`, and
 * every alias by its own name (what clients call: `smart`), read with the official openai SDK.
 */
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'

describe('GET /v1/models', () => {
  let mock: OpenAIMock
  let gw: TestGateway
  beforeAll(async () => {
    mock = await startOpenAIMock()
    gw = await startGateway({
      providers: { oa: { type: 'openai', baseUrl: mock.url, apiKey: 'sk-models-list-0001', models: ['gpt-4o', 'gpt-4o-mini'] } },
      models: { smart: { targets: [{ provider: 'oa', model: 'gpt-4o' }, { provider: 'oa', model: 'gpt-4o-mini' }] } },
    })
  })
  afterAll(async () => { await gw?.close(); await mock?.close() })

  it('lists the declared models and the aliases, each callable by its id', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: ADMIN_KEY })
    const ids: string[] = []
    for await (const m of client.models.list()) ids.push(m.id)
    expect(ids.sort()).toEqual(['oa/gpt-4o', 'oa/gpt-4o-mini', 'smart'])
    const r = await client.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] })
    expect(r.choices[0]!.message.content).toBeTruthy()
  })
})
