/**
 * `/v1/messages` requests the canonical form cannot carry go to an Anthropic provider as the client sent them, and the
 * answer comes back as Anthropic sent it (gateway/upstream/native-messages.ts). The case that matters: a server tool
 * (web search, as Claude Code's WebSearch sends it), whose server_tool_use and web_search_tool_result blocks and cited
 * text must reach the client, stream included, and go back in the next turn's history. These requests were a 400.
 *
 * The official Anthropic SDK is the client; the Anthropic mock answers web searches in Anthropic's documented wire
 * format (test/helpers/anthropic-mock.ts). Cost and usage come from the answer's own usage, the final message_delta's
 * counters superseding message_start's (a search adds input), each web search priced at the catalogue's fee ($10 per
 * 1,000) on top of the tokens. Any other provider refuses such a request with a 400
 * naming the field; mid-stream failures end with an Anthropic error event.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { loadCatalogue, PriceCatalogue } from '../../gateway/cost/catalogue.ts'
import { normalizeUsage } from '../../gateway/cost/meter.ts'
import { startAnthropicMock, thinkingSignature, WEB_CITATION, WEB_RESULT, type AnthropicMock } from '../helpers/anthropic-mock.ts'
import { startOpenAIMock, type OpenAIMock } from '../helpers/openai-mock.ts'
import { ADMIN_KEY, startGateway } from '../helpers/gateway.ts'
import { CHAIN, startCostGateway, type CostGateway } from '../cost/harness.ts'

const KEY = 'sk-ant-native-000000000001'
const SEARCH: Anthropic.Messages.ToolUnion = { type: 'web_search_20250305', name: 'web_search', max_uses: 2 }
let mock: AnthropicMock
let oa: OpenAIMock
let g: CostGateway
const catalogue = loadCatalogue()

beforeAll(async () => {
  mock = await startAnthropicMock()
  oa = await startOpenAIMock()
  g = await startCostGateway({
    providers: {
      claude: { type: 'anthropic', baseUrl: mock.url, apiKey: KEY },
      claudet: { type: 'anthropic', baseUrl: mock.url, apiKey: KEY, nativeMessages: false },
      strict: { type: 'anthropic', baseUrl: mock.url, apiKey: KEY, serverTools: ['web_fetch_*'] },
      oa: { type: 'openai', baseUrl: oa.url, apiKey: 'sk-native-openai-0001' },
    },
    chains: { default: CHAIN },
  })
})
afterAll(async () => {
  await g?.close()
  await mock?.close()
  await oa?.close()
})
beforeEach(() => { mock.reset(); oa.reset(); g.observed.length = 0 })

const client = (): Anthropic => new Anthropic({ apiKey: ADMIN_KEY, baseURL: g.url, maxRetries: 0 })
const ask = (content: string, model = 'claude/claude-sonnet-4-5'): Anthropic.MessageCreateParamsNonStreaming => ({
  model, max_tokens: 256, tools: [SEARCH], messages: [{ role: 'user', content }],
})

/** A raw Messages API call to the gateway (what the SDK hides: the events as sent, the headers). */
const post = (path: string, body: unknown): Promise<Response> => fetch(`${g.url}${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY, 'anthropic-version': '2023-06-01' }, body: JSON.stringify(body),
})

/** The mock's prompt count for one user message (ceil(chars / 4)); the search adds 500 (see the mock). */
const inputOf = (text: string): number => Math.max(1, Math.ceil(text.length / 4))

describe('every /v1/messages request to an Anthropic provider goes as sent (nativeMessages, the default)', () => {
  // A turn Claude Code sends: cache breakpoints on an assistant's tool_use block and on the tool_result, which the
  // canonical form does not carry on a tool_use, and a citation in the history (translated: dropped).
  const cc = { type: 'ephemeral' as const }
  const turn = (model: string): Anthropic.MessageCreateParamsNonStreaming => ({
    model, max_tokens: 64, system: [{ type: 'text', text: 'Be brief.', cache_control: cc }],
    tools: [{ name: 'weather', input_schema: { type: 'object' }, cache_control: cc }],
    messages: [
      { role: 'user', content: 'weather in Paris?' },
      { role: 'assistant', content: [
        { type: 'text', text: 'Checking.', citations: [{ type: 'char_location', cited_text: 'Paris', document_index: 0, document_title: null, start_char_index: 0, end_char_index: 5 }] },
        { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Paris' }, cache_control: cc },
      ] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny', cache_control: cc }] },
    ],
  })

  it('the body exactly as the client sent it (model replaced), the answer exactly as Anthropic sent it, usage metered', async () => {
    const r = await client().messages.create(turn('claude/claude-sonnet-4-5'))
    expect(mock.requests.at(-1)!.body).toEqual({ ...JSON.parse(JSON.stringify(turn('claude/claude-sonnet-4-5'))), model: 'claude-sonnet-4-5' })
    expect(r.model).toBe('claude-sonnet-4-5')
    expect((r.content[0] as Anthropic.TextBlock).text).toBe('tool result: sunny')
    const [o] = await g.completed(1)
    expect(o!.usage).toMatchObject({ prompt_tokens: r.usage.input_tokens, completion_tokens: r.usage.output_tokens })
    expect(o!.late?.usd).toBeGreaterThan(0)
  })

  it('streamed: message_start carries the real input usage (translated streams report it only at the end)', async () => {
    const events: Anthropic.MessageStreamEvent[] = []
    const s = client().messages.stream(turn('claude/claude-sonnet-4-5')).on('streamEvent', (e) => { events.push(e) })
    const final = await s.finalMessage()
    expect(final.content).toEqual([{ type: 'text', text: 'tool result: sunny' }])
    const start = events.find((e) => e.type === 'message_start') as Anthropic.RawMessageStartEvent
    expect(start.message.usage.input_tokens).toBeGreaterThan(0)
    expect(mock.requests.at(-1)!.body.messages[1].content[1].cache_control).toEqual(cc)
  })

  it('nativeMessages: false translates it (the tool_use breakpoint and the citation are not carried; the model named as asked)', async () => {
    const r = await client().messages.create(turn('claudet/claude-sonnet-4-5'))
    expect(r.model).toBe('claudet/claude-sonnet-4-5')
    const sent = mock.requests.at(-1)!.body
    expect(sent.messages[1].content).toEqual([{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Paris' } }])
    // The tool_result's breakpoint is carried by the translation too.
    expect(sent.messages[2].content[0].cache_control).toEqual(cc)
  })

  it('interleaved thinking keeps its places (translated, the thinking blocks go first)', async () => {
    const thinking = (t: string): Anthropic.ThinkingBlockParam => ({ type: 'thinking', thinking: t, signature: thinkingSignature(t) })
    const assistant: Anthropic.ContentBlockParam[] = [
      thinking('First, the city.'), { type: 'text', text: 'Let me check.' }, thinking('Then the tool.'),
      { type: 'tool_use', id: 'toolu_2', name: 'weather', input: { city: 'Paris' } },
    ]
    const body = (model: string): Anthropic.MessageCreateParamsNonStreaming => ({
      model, max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
      tools: [{ name: 'weather', input_schema: { type: 'object' } }],
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: assistant },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_2', content: 'sunny' }] },
      ],
    })
    await client().messages.create(body('claude/claude-sonnet-4-5'))
    expect(mock.requests.at(-1)!.body.messages[1].content).toEqual(assistant)
    await client().messages.create(body('claudet/claude-sonnet-4-5'))
    expect(mock.requests.at(-1)!.body.messages[1].content.map((b: { type: string }) => b.type)).toEqual(['thinking', 'thinking', 'text', 'tool_use'])
  })

  it('count_tokens counts the body as sent', async () => {
    const { max_tokens: _, ...body } = turn('claude/claude-sonnet-4-5')
    const r = await post('/v1/messages/count_tokens', body)
    expect(r.status).toBe(200)
    expect(mock.requests.at(-1)!.body).toEqual({ ...JSON.parse(JSON.stringify(body)), model: 'claude-sonnet-4-5' })
  })
})

describe('server tools through /v1/messages to an Anthropic provider', () => {
  it('web search, not streamed: the blocks, citations and usage as Anthropic sent them; the body went upstream as sent', async () => {
    const r = await client().messages.create(ask('Please search gateway news'))
    expect(r.content.map((b) => b.type)).toEqual(['server_tool_use', 'web_search_tool_result', 'text'])
    const [use, result, text] = r.content as [Anthropic.ServerToolUseBlock, Anthropic.WebSearchToolResultBlock, Anthropic.TextBlock]
    expect(use.input).toEqual({ query: 'gateway news' })
    expect(result).toMatchObject({ tool_use_id: use.id, content: [WEB_RESULT] })
    expect(text.citations).toEqual([WEB_CITATION])
    expect(r.usage.server_tool_use).toEqual({ web_search_requests: 1 })

    const sent = mock.requests.at(-1)!
    expect(sent.body).toEqual({ ...ask('Please search gateway news'), model: 'claude-sonnet-4-5' })
    expect(sent.headers['x-api-key']).toBe(KEY)

    const [o] = await g.completed(1)
    const input = inputOf('Please search gateway news') + 500
    expect(o!.usage).toMatchObject({ prompt_tokens: input, completion_tokens: 9 })
    const prices = catalogue.lookup('anthropic', 'claude-sonnet-4-5')!
    expect(o!.late?.usd).toBe(PriceCatalogue.cost(prices, normalizeUsage(o!.usage!)).usd)
    // Worked by hand: 507 input × $3 + 9 output × $15 per million, and one search at $10 per 1,000.
    expect(input).toBe(507)
    expect(o!.late).toMatchObject({ inputTokens: 507, outputTokens: 9, webSearchRequests: 1, pico: 507 * 3e6 + 9 * 15e6 + 1e10 })
  })

  it('streamed: the SDK reassembles what the non-streamed answer holds; usage from the final message_delta', async () => {
    const whole = await client().messages.create(ask('search the gateway'))
    g.observed.length = 0
    const stream = client().messages.stream(ask('search the gateway'))
    const final = await stream.finalMessage()
    expect(final.content).toEqual(whole.content.map((b) => (b.type === 'server_tool_use' ? { ...b, id: (final.content[0] as Anthropic.ServerToolUseBlock).id } : b.type === 'web_search_tool_result' ? { ...b, tool_use_id: (final.content[0] as Anthropic.ServerToolUseBlock).id } : b)))
    expect(final.stop_reason).toBe('end_turn')
    expect(final.usage).toMatchObject({ input_tokens: inputOf('search the gateway') + 500, output_tokens: 9, server_tool_use: { web_search_requests: 1 } })
    const [o] = await g.completed(1)
    // message_start said inputOf(...) alone; the final message_delta's count supersedes it.
    expect(o!.usage).toMatchObject({ prompt_tokens: inputOf('search the gateway') + 500, completion_tokens: 9, server_tool_use: { web_search_requests: 1 } })
    expect(o!.late).toMatchObject({ webSearchRequests: 1, pico: (inputOf('search the gateway') + 500) * 3e6 + 9 * 15e6 + 1e10 })
    expect(o!.errorCode).toBeUndefined()
  })

  it('the next turn: the server-tool blocks and cited text go back in the history exactly as the client holds them', async () => {
    const first = await client().messages.create(ask('Please search gateway news'))
    const history: Anthropic.MessageParam[] = [
      { role: 'user', content: 'Please search gateway news' },
      { role: 'assistant', content: first.content as unknown as Anthropic.ContentBlockParam[] },
      { role: 'user', content: 'echo thanks' },
    ]
    const r = await client().messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 64, tools: [SEARCH], messages: history })
    expect((r.content[0] as Anthropic.TextBlock).text).toBe('echo: thanks')
    expect(mock.requests.at(-1)!.body['messages']).toEqual(JSON.parse(JSON.stringify(history)))
  })

  it('count_tokens counts the body as sent at Anthropic (the server tool included)', async () => {
    const r = await post('/v1/messages/count_tokens', { model: 'claude/claude-sonnet-4-5', tools: [SEARCH], messages: [{ role: 'user', content: 'search it' }] })
    expect(r.status).toBe(200)
    expect(await r.json()).toEqual({ input_tokens: inputOf('search it') })
    expect(r.headers.get('x-mcp-token-count')).toBe('provider')
    const sent = mock.requests.at(-1)!
    expect(sent.path).toBe('/v1/messages/count_tokens')
    expect(sent.body).toEqual({ model: 'claude-sonnet-4-5', tools: [SEARCH], messages: [{ role: 'user', content: 'search it' }] })
  })

  it('any other provider: a 400 in Anthropic\'s shape naming the field and the provider; nothing sent upstream', async () => {
    const e = await client().messages.create(ask('Please search', 'oa/gpt-4o')).catch((x: unknown) => x) as InstanceType<typeof Anthropic.APIError>
    expect(e).toBeInstanceOf(Anthropic.BadRequestError)
    expect(e.status).toBe(400)
    const body = e.error as { type: string; error: { type: string; message: string } }
    expect(body.error.type).toBe('invalid_request_error')
    expect(body.error.message).toContain("tools[0].type: server tool 'web_search_20250305' runs at Anthropic")
    expect(body.error.message).toContain('provider oa (openai)')
    expect(oa.requests).toHaveLength(0)
    // count_tokens says the same.
    const c = await post('/v1/messages/count_tokens', { model: 'oa/gpt-4o', tools: [SEARCH], messages: [{ role: 'user', content: 'search it' }] })
    expect(c.status).toBe(400)
    expect(((await c.json()) as { error: { message: string } }).error.message).toContain('tools[0].type')
  })

  it('the 400 names the client\'s own path (a system prompt moves the canonical indexes, not this one)', async () => {
    const e = await client().messages.create({
      model: 'oa/gpt-4o', max_tokens: 64, system: 'Be brief.',
      messages: [
        { role: 'user', content: 'news?' },
        { role: 'assistant', content: [{ type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: { query: 'news' } }, { type: 'text', text: 'Found.' }] },
        { role: 'user', content: 'more' },
      ],
    }).catch((x: unknown) => x) as InstanceType<typeof Anthropic.APIError>
    expect((e.error as { error: { message: string } }).error.message).toMatch(/^Invalid request body: messages\[1\]\.content\[0\]\.type: content block type 'server_tool_use' is not translated/)
  })

  it('a server tool the provider\'s serverTools does not allow is a 400 naming it; nothing sent upstream', async () => {
    const e = await client().messages.create({ ...ask('Please search'), model: 'strict/claude-sonnet-4-5', tools: [{ name: 'f', input_schema: { type: 'object' } }, SEARCH] }).catch((x: unknown) => x) as InstanceType<typeof Anthropic.APIError>
    expect(e).toBeInstanceOf(Anthropic.BadRequestError)
    expect((e.error as { error: { message: string } }).error.message).toContain("tools[1].type: server tool 'web_search_20250305' is not allowed by provider strict (its serverTools)")
    expect(mock.requests).toHaveLength(0)
    // A fetch it allows goes through.
    await client().beta.messages.create({ model: 'strict/claude-sonnet-4-5', max_tokens: 64, tools: [{ type: 'web_fetch_20250910', name: 'web_fetch' }], messages: [{ role: 'user', content: 'echo hi' }] })
    expect(mock.requests).toHaveLength(1)
  })

  it('upstream errors before the first byte keep Anthropic\'s type, status, retry-after and request id', async () => {
    mock.fault = 'status:429 retryAfter:7 times:1'
    const e = await client().messages.create(ask('Please search')).catch((x: unknown) => x) as InstanceType<typeof Anthropic.APIError>
    expect(e).toBeInstanceOf(Anthropic.RateLimitError)
    expect(e.headers?.get('retry-after')).toBe('7')
    expect((e.error as { error: { type: string } }).error.type).toBe('rate_limit_error')
    // Anthropic's own id of the refused request, what its support asks for: the SDK's requestID, and the gateway's record.
    expect(e.requestID).toMatch(/^req_mock/)
    const [o] = await g.completed(1)
    expect(o!.upstreamRequestId).toBe(e.requestID)
  })

  it('Anthropic\'s request id reaches the client (the SDK\'s _request_id and stream request_id) and the gateway\'s records', async () => {
    const r = await client().messages.create(ask('hello'))
    expect(r._request_id).toMatch(/^req_mock/)
    const s = client().messages.stream({ ...ask('hello'), stream: true })
    await s.finalMessage()
    expect(s.request_id).toMatch(/^req_mock/)
    expect(s.request_id).not.toBe(r._request_id)
    const [a, b] = await g.completed(2)
    expect([a!.upstreamRequestId, b!.upstreamRequestId]).toEqual([r._request_id, s.request_id])
    // Translated, the answer is the gateway's: no Anthropic request-id header is made up for it.
    const t = await client().messages.create({ model: 'claudet/claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hello' }] })
    expect(t._request_id ?? null).toBeNull()
    const [c] = await g.completed(3).then((x) => x.slice(2))
    expect(c!.upstreamRequestId).toMatch(/^req_mock/)
  })

  it('a stream cut before message_stop ends with an Anthropic error event, never as a finished message', async () => {
    mock.fault = 'cutAfter:9 times:1'
    const r = await post('/v1/messages', { ...ask('search the gateway'), stream: true })
    expect(r.status).toBe(200)
    const text = await r.text()
    const events = text.trim().split('\n\n')
    expect(events).toHaveLength(10)
    expect(events.at(-1)).toMatch(/^event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"The stream from provider claude was interrupted/)
    expect(text).not.toContain('message_stop')
    const [o] = await g.completed(1)
    expect(o!.errorCode).toBe('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED')
    // The SDK reports it as an error, not a message.
    mock.fault = 'cutAfter:9 times:1'
    await expect(client().messages.stream(ask('search the gateway')).finalMessage()).rejects.toThrow(/interrupted/)
  })

  it('the upstream\'s own error event reaches the client as sent, and the request counts as failed', async () => {
    mock.fault = 'errorAfter:4 times:1 type:overloaded_error'
    const r = await post('/v1/messages', { ...ask('search the gateway'), stream: true })
    const events = (await r.text()).trim().split('\n\n')
    expect(events).toHaveLength(5)
    expect(events.at(-1)).toBe('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    const [o] = await g.completed(1)
    expect(o!.errorCode).toBeDefined()
  })

  it('the provider\'s key is masked wherever an upstream echoes it, streamed or not', async () => {
    const r = await client().messages.create(ask(`search ${KEY}`))
    expect(JSON.stringify(r)).not.toContain(KEY)
    expect((r.content[0] as Anthropic.ServerToolUseBlock).input).toEqual({ query: expect.stringContaining('[redacted]') })
    const s = await client().messages.stream(ask(`search ${KEY}`)).finalMessage()
    expect(JSON.stringify(s)).not.toContain(KEY)
    expect(JSON.stringify(g.logs())).not.toContain(KEY)
  })
})

describe('budgets reserve for server tools', () => {
  let b: Awaited<ReturnType<typeof startGateway>> | undefined
  afterAll(async () => { await b?.close() })

  it('a web search tool\'s max_uses at the search fee is reserved before the call; the settlement includes the fee', async () => {
    b = await startGateway({
      providers: { claude: { type: 'anthropic', baseUrl: mock.url, apiKey: KEY } },
      plugins: { budget: { backend: 'local', keyPrefix: `test:native-budget:${process.pid}:`, budgets: [{ name: 'all', scope: 'global', period: 'day', amountUsd: 0.015 }] } },
      chains: { default: ['request-id', 'auth', 'budget'] },
    })
    const c = new Anthropic({ apiKey: ADMIN_KEY, baseURL: b.url, maxRetries: 0 })
    const search = (maxUses: number): Anthropic.MessageCreateParamsNonStreaming => ({ ...ask('Please search gateway news'), tools: [{ ...SEARCH, max_uses: maxUses }] })
    // Tokens at worst about $0.004, and two searches $0.02: over $0.015, refused before the call.
    const refused = await c.messages.create(search(2)).catch((x: unknown) => x) as InstanceType<typeof Anthropic.APIError>
    expect(refused.status).toBe(402)
    expect(mock.requests).toHaveLength(0)
    // One search fits ($0.014); it costs 507 × $3 + 9 × $15 per million + $0.01 = $0.011656.
    const ok = await c.messages.create(search(1))
    expect(ok.usage.server_tool_use).toEqual({ web_search_requests: 1 })
    // What is left ($0.003344) no longer covers a plain request's worst case (about $0.004): the fee was charged.
    const after = await c.messages.create({ model: 'claude/claude-sonnet-4-5', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x) as InstanceType<typeof Anthropic.APIError>
    expect(after.status).toBe(402)
    expect(mock.requests).toHaveLength(1)
  })

  it('a web search tool without max_uses is reserved at estimate.webSearchesWithoutMaxUses searches (default 10)', async () => {
    await b?.close()
    const start = (plugins: Record<string, unknown>): ReturnType<typeof startGateway> => startGateway({
      providers: { claude: { type: 'anthropic', baseUrl: mock.url, apiKey: KEY } },
      plugins: { budget: { backend: 'local', keyPrefix: `test:native-unbounded:${process.pid}:${Math.random()}:`, budgets: [{ name: 'all', scope: 'global', period: 'day', amountUsd: 0.05 }], ...plugins } },
      chains: { default: ['request-id', 'auth', 'budget'] },
    })
    const unbounded: Anthropic.MessageCreateParamsNonStreaming = { ...ask('Please search gateway news'), tools: [{ type: 'web_search_20250305', name: 'web_search' }] }
    // Ten searches ($0.10) and the tokens: more than $0.05, refused before the call.
    b = await start({})
    const refused = await new Anthropic({ apiKey: ADMIN_KEY, baseURL: b.url, maxRetries: 0 }).messages.create(unbounded).catch((x: unknown) => x) as InstanceType<typeof Anthropic.APIError>
    expect(refused.status).toBe(402)
    expect(mock.requests).toHaveLength(0)
    await b.close()
    // Reserved at three searches ($0.03 and the tokens), it fits; the search it made is settled. It went with
    // max_uses: 3 (capWebSearches, the default), so it could not have searched more than it reserved.
    b = await start({ estimate: { webSearchesWithoutMaxUses: 3 } })
    const ok = await new Anthropic({ apiKey: ADMIN_KEY, baseURL: b.url, maxRetries: 0 }).messages.create(unbounded)
    expect(ok.usage.server_tool_use).toEqual({ web_search_requests: 1 })
    expect(mock.requests).toHaveLength(1)
    expect(mock.requests[0]!.body.tools).toEqual([{ type: 'web_search_20250305', name: 'web_search', max_uses: 3 }])
    expect(unbounded.tools![0]).not.toHaveProperty('max_uses')
  })

  it('the bound is added only under a hard amount budget, only where max_uses is missing, and not with capWebSearches: false', async () => {
    await b?.close()
    const start = (budget: Record<string, unknown>, plugins: Record<string, unknown> = {}): ReturnType<typeof startGateway> => startGateway({
      providers: { claude: { type: 'anthropic', baseUrl: mock.url, apiKey: KEY } },
      plugins: { budget: { backend: 'local', keyPrefix: `test:native-cap:${process.pid}:${Math.random()}:`, budgets: [{ name: 'all', scope: 'global', period: 'day', ...budget }], estimate: { webSearchesWithoutMaxUses: 2 }, ...plugins } },
      chains: { default: ['request-id', 'auth', 'budget'] },
    })
    const tools: Anthropic.Messages.ToolUnion[] = [
      { type: 'web_search_20250305', name: 'web_search' },
      { name: 'lookup', description: 'a client tool', input_schema: { type: 'object', properties: {} } },
    ]
    const sentTools = async (these = tools): Promise<unknown> => {
      mock.reset()
      await new Anthropic({ apiKey: ADMIN_KEY, baseURL: b!.url, maxRetries: 0 }).messages.create({ ...ask('Please search gateway news'), tools: these })
      return mock.requests[0]!.body.tools
    }
    b = await start({ amountUsd: 10 })
    expect(await sentTools()).toEqual([{ ...tools[0], max_uses: 2 }, tools[1]])
    // A tool with its own max_uses keeps it.
    expect(await sentTools([SEARCH])).toEqual([SEARCH])
    await b.close()
    b = await start({ amountUsd: 10 }, { capWebSearches: false })
    expect(await sentTools()).toEqual(tools)
    await b.close()
    // A soft amount and a hard token quota bound nothing in USD: the body goes as the client sent it.
    b = await start({ amountUsd: 10, mode: 'soft' })
    expect(await sentTools()).toEqual(tools)
    await b.close()
    b = await start({ tokens: 1e9 })
    expect(await sentTools()).toEqual(tools)
  })
})
