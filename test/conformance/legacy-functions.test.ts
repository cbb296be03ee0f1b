/**
 * OpenAI's deprecated function calling (`functions`, `function_call`, an assistant turn's `function_call`, role
 * `function`) and assistant refusals, sent on /v1/chat/completions to providers that are not OpenAI: each reaches the
 * provider in its own terms (legacy functions as its tools, calls and results; the answer back in the legacy form) or
 * is a 400 naming the field, never dropped on the way (what the mocks received is checked).
 */
import { describe, expect, it } from 'vitest'
import { authHeaders } from '../helpers/gateway.ts'
import { TRANSLATED_MODELS, TRANSLATED_PROVIDERS as PROVIDERS, translatedProvidersForFile, type TranslatedProvider as Provider } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()
const requests = (p: Provider): { body: any }[] => t().requests(p)
const chat = (p: Provider, body: object): Promise<{ status: number; json: any }> => t().chat(p, body)

const FN = { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }
const LEGACY_CALL = { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{"city":"Paris"}' } }

/** The provider's 400 naming `param`, and nothing sent upstream. */
async function refused(p: Provider, body: object, param: string | RegExp): Promise<void> {
  const { status, json } = await chat(p, body)
  expect(status, JSON.stringify(json)).toBe(400)
  expect(json.error.param).toMatch(param)
  expect(requests(p)).toHaveLength(0)
}

/** The function declarations the provider received, by name. */
function declaredNames(p: Provider): string[] {
  const body = requests(p)[0]!.body
  if (p === 'google') return (body.tools as { functionDeclarations: { name: string }[] }[]).flatMap((t) => t.functionDeclarations.map((d) => d.name))
  if (p === 'anthropic') return (body.tools as { name: string }[]).map((t) => t.name)
  return (body.tools as { function: { name: string } }[]).map((t) => t.function.name)
}

/** The tool calls and results of the history as the provider received them: [name, key] pairs (a result's key is its call's). */
function history(p: Provider): { calls: [string, string][]; results: [string, string][] } {
  const body = requests(p)[0]!.body
  const calls: [string, string][] = []
  const results: [string, string][] = []
  if (p === 'anthropic') {
    const names = new Map<string, string>()
    for (const m of body.messages as { content: string | { type: string; id?: string; name?: string; tool_use_id?: string }[] }[]) {
      if (typeof m.content === 'string') continue
      for (const b of m.content) {
        if (b.type === 'tool_use') { calls.push([b.name!, b.id!]); names.set(b.id!, b.name!) }
        if (b.type === 'tool_result') results.push([names.get(b.tool_use_id!) ?? '?', b.tool_use_id!])
      }
    }
  } else if (p === 'google') {
    for (const c of body.contents as { parts: { functionCall?: { name: string }; functionResponse?: { name: string } }[] }[]) {
      for (const part of c.parts) {
        if (part.functionCall) calls.push([part.functionCall.name, part.functionCall.name])
        if (part.functionResponse) results.push([part.functionResponse.name, part.functionResponse.name])
      }
    }
  } else {
    for (const m of body.messages as { role: string; tool_calls?: { function: { name: string } }[]; tool_name?: string }[]) {
      for (const c of m.tool_calls ?? []) calls.push([c.function.name, c.function.name])
      if (m.role === 'tool') results.push([m.tool_name ?? '?', m.tool_name ?? '?'])
    }
  }
  return { calls, results }
}

/** A streamed chat; its parsed chunks. */
async function streamed(p: Provider, body: object): Promise<{ status: number; chunks: any[]; text: string }> {
  const r = await fetch(`${t().gw.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: TRANSLATED_MODELS[p], max_tokens: 32, stream: true, ...body }) })
  const text = await r.text()
  const chunks = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)))
  return { status: r.status, chunks, text }
}

describe.each(PROVIDERS)('%s: OpenAI\'s deprecated function calling is translated (was a 400)', (p) => {
  it('`functions` reach the provider as its tools; the call comes back as the message\'s `function_call`', async () => {
    const { status, json } = await chat(p, { functions: [FN], messages: [{ role: 'user', content: 'call tool please' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(declaredNames(p)).toEqual(['get_weather'])
    const choice = json.choices[0]
    expect(choice.finish_reason).toBe('function_call')
    expect(choice.message.tool_calls).toBeUndefined()
    expect(choice.message.function_call.name).toBe('get_weather')
    expect(JSON.parse(choice.message.function_call.arguments)).toBeTypeOf('object')
    if (p === 'anthropic') expect(requests(p)[0]!.body.tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true })
  })

  it('a streamed call comes as `function_call` deltas and the finish reason `function_call`', async () => {
    const { status, chunks, text } = await streamed(p, { functions: [FN], messages: [{ role: 'user', content: 'call tool please' }] })
    expect(status, text).toBe(200)
    expect(text).toContain('data: [DONE]')
    const deltas = chunks.flatMap((c) => c.choices.map((ch: any) => ch.delta))
    expect(deltas.some((d) => d.tool_calls !== undefined)).toBe(false)
    const calls = deltas.filter((d) => d.function_call !== undefined).map((d) => d.function_call)
    expect(calls[0].name).toBe('get_weather')
    expect(JSON.parse(calls.map((c) => c.arguments ?? '').join(''))).toBeTypeOf('object')
    expect(chunks.flatMap((c) => c.choices.map((ch: any) => ch.finish_reason)).filter((f) => f !== null)).toEqual(['function_call'])
  })

  it('`function_call` `none` and `auto` become the tool choice', async () => {
    const { status, json } = await chat(p, { functions: [FN], function_call: 'none', messages: [{ role: 'user', content: 'call tool please' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    // Told not to call: the mocks answer with text.
    expect(json.choices[0].message.function_call).toBeUndefined()
    expect(json.choices[0].finish_reason).toBe('stop')
  })

  it('a history of legacy calls and `function` results reaches the provider as calls and results of the same name', async () => {
    const { status, json } = await chat(p, {
      functions: [FN],
      messages: [{ role: 'user', content: 'weather?' }, LEGACY_CALL, { role: 'function', name: 'get_weather', content: '{"sky":"sunny"}' }, { role: 'user', content: 'and?' }],
    })
    expect(status, JSON.stringify(json)).toBe(200)
    const h = history(p)
    expect(h.calls.map(([name]) => name)).toEqual(['get_weather'])
    expect(h.results).toEqual([h.calls[0]])
  })

  it('a `function` result without an earlier call of that name is a 400 naming it', async () => {
    await refused(p, { messages: [{ role: 'user', content: 'weather?' }, { role: 'function', name: 'get_weather', content: 'sunny' }] }, /^messages\[1\]\.name$/)
  })

  it('malformed `functions` are a 400 naming the field, as malformed tools are (went to the provider as they came)', async () => {
    const ask = (functions: unknown): object => ({ functions, messages: [{ role: 'user', content: 'weather?' }] })
    await refused(p, ask([{}]), /^functions\[0\]\.name$/)
    await refused(p, ask([FN, { name: 5 }]), /^functions\[1\]\.name$/)
    await refused(p, ask([{ name: '' }]), /^functions\[0\]\.name$/)
    await refused(p, ask([{ name: 'a', parameters: 'x' }]), /^functions\[0\]\.parameters$/)
    await refused(p, ask([{ name: 'a', description: 7 }]), /^functions\[0\]\.description$/)
    await refused(p, ask([null]), /^functions\[0\]$/)
    await refused(p, ask({ name: 'a' }), /^functions$/)
  })

  it('a `function_call` other than none, auto or {name} is a 400 naming it', async () => {
    const ask = (call: unknown): object => ({ functions: [FN], function_call: call, messages: [{ role: 'user', content: 'weather?' }] })
    await refused(p, ask('required'), /^function_call$/)
    await refused(p, ask(5), /^function_call$/)
    await refused(p, ask({}), /^function_call\.name$/)
    await refused(p, ask({ name: 7 }), /^function_call\.name$/)
  })

  it('both forms at once are a 400 naming the legacy field', async () => {
    await refused(p, { functions: [FN], tools: [{ type: 'function', function: FN }], messages: [{ role: 'user', content: 'weather?' }] }, /^functions$/)
    await refused(p, { functions: [FN], function_call: 'auto', tool_choice: 'auto', messages: [{ role: 'user', content: 'weather?' }] }, /^function_call$/)
    await refused(p, { messages: [{ role: 'user', content: 'weather?' }, { ...LEGACY_CALL, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'x', arguments: '{}' } }] }] }, /^messages\[1\]\.function_call$/)
  })
})

describe.each(PROVIDERS)('%s: a forced `function_call: {name}`', (p) => {
  it(p === 'ollama' ? 'is unsupported, like a tool_choice naming a function (Ollama cannot force one)' : 'forces that function', async () => {
    const body = { functions: [FN], function_call: { name: 'get_weather' }, messages: [{ role: 'user', content: 'call tool please' }] }
    if (p === 'ollama') { await refused(p, body, /^function_call$/); return }
    const { status, json } = await chat(p, body)
    expect(status, JSON.stringify(json)).toBe(200)
    expect(json.choices[0].message.function_call.name).toBe('get_weather')
    const sent = requests(p)[0]!.body
    if (p === 'anthropic') expect(sent.tool_choice).toEqual({ type: 'tool', name: 'get_weather', disable_parallel_tool_use: true })
    if (p === 'google') expect(sent.toolConfig.functionCallingConfig).toMatchObject({ mode: 'ANY', allowedFunctionNames: ['get_weather'] })
  })
})

/** The assistant text of the history as the provider received it. */
function assistantText(p: Provider): string {
  const body = requests(p)[0]!.body
  if (p === 'google') return (body.contents as { role: string; parts: { text?: string }[] }[]).filter((c) => c.role === 'model').flatMap((c) => c.parts.map((x) => x.text ?? '')).join('|')
  if (p === 'ollama') return (body.messages as { role: string; content: string }[]).filter((m) => m.role === 'assistant').map((m) => m.content).join('|')
  return (body.messages as { role: string; content: string | { type: string; text?: string }[] }[]).filter((m) => m.role === 'assistant')
    .map((m) => (typeof m.content === 'string' ? m.content : m.content.map((b) => b.text ?? '').join('|'))).join('|')
}

describe.each(PROVIDERS)('%s: an assistant refusal in the history reaches the provider as the assistant\'s text (was dropped by google and ollama)', (p) => {
  it('the `refusal` field', async () => {
    const { status } = await chat(p, { messages: [{ role: 'user', content: 'do it' }, { role: 'assistant', content: null, refusal: 'I cannot help with that.' }, { role: 'user', content: 'why?' }] })
    expect(status).toBe(200)
    expect(assistantText(p)).toContain('I cannot help with that.')
  })

  it('refusal parts of the content', async () => {
    const { status } = await chat(p, { messages: [{ role: 'user', content: 'do it' }, { role: 'assistant', content: [{ type: 'text', text: 'Well.' }, { type: 'refusal', refusal: 'No.' }] }, { role: 'user', content: 'why?' }] })
    expect(status).toBe(200)
    expect(assistantText(p)).toMatch(/Well\.[\s|]*No\./)
  })
})

describe.each(PROVIDERS)('%s: a message `name` (a participant\'s name, no place for it upstream)', (p) => {
  it('is a 400 naming it (google dropped it)', async () => {
    await refused(p, { messages: [{ role: 'user', name: 'alice', content: 'hi' }] }, /^messages\[0\]\.name$/)
  })
})
