/**
 * A provider's 400 about a message names the client's own path on /v1/messages. The canonical request the providers
 * judge has other indexes (the top-level `system` is messages[0], a turn of tool_result blocks is several `tool`
 * messages and a user message, tool_use blocks are `tool_calls[j]`) and OpenAI's field names (`image_url`, `file`):
 * the official @anthropic-ai/sdk through the running gateway to the google, ollama and anthropic mocks.
 */
import Anthropic from '@anthropic-ai/sdk'
import { describe, expect, it } from 'vitest'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { translatedProvidersForFile } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile({ reset: false })
const client = (): Anthropic => new Anthropic({ apiKey: ADMIN_KEY, baseURL: t().gw.url, maxRetries: 0 })
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='
const PDF = 'JVBERi0xLjQKJcfsj6IKJSVFT0YK'

async function refusal(params: Anthropic.MessageCreateParamsNonStreaming): Promise<string> {
  const err = await client().messages.create(params).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(Anthropic.BadRequestError)
  const e = err as InstanceType<typeof Anthropic.BadRequestError>
  expect(e.status).toBe(400)
  const body = e.error as { type: string; error: { type: string; message: string } }
  expect(body.error.type).toBe('invalid_request_error')
  return body.error.message
}

const toolUse = (id: string, name = 'get_weather'): Anthropic.ToolUseBlockParam => ({ type: 'tool_use', id, name, input: { city: 'Paris' } })

describe('ollama', () => {
  it('an image by URL after a system string: the client\'s block and its source, not messages[2].content[1].image_url', async () => {
    const msg = await refusal({
      model: 'ollama/llama3.2', max_tokens: 64, system: 'Be brief.',
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'hello' },
        { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', source: { type: 'url', url: 'https://example.com/cat.png' } }] },
      ],
    })
    expect(msg).toBe("Parameter 'messages[2].content[1].source' is not supported by provider ollama")
  })

  it('a document inside a tool_result, after split tool results and system blocks: the block inside the tool_result', async () => {
    const msg = await refusal({
      model: 'ollama/llama3.2', max_tokens: 64, system: [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'Use tools.' }],
      messages: [
        { role: 'user', content: 'weather and time?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Checking.' }, toolUse('t1'), toolUse('t2', 'get_time')] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 't1', content: 'sunny' },
          { type: 'tool_result', tool_use_id: 't2', content: [{ type: 'text', text: 'noon' }, { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } }] },
          { type: 'text', text: 'thanks' },
        ] },
      ],
    })
    // Canonical: messages[5].content[0].file (the user message after tool messages 3 and 4).
    expect(msg).toBe("Parameter 'messages[2].content[1].content[1]' is not supported by provider ollama")
  })
})

describe('google', () => {
  it('a tool_result whose tool_use_id matches no call: the tool_result block\'s tool_use_id', async () => {
    const msg = await refusal({
      model: 'google/gemini-2.5-flash', max_tokens: 64, system: 'Be brief.',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [toolUse('t1')] },
        { role: 'user', content: [
          { type: 'text', text: 'first' },
          { type: 'tool_result', tool_use_id: 't1', content: 'sunny' },
          { type: 'tool_result', tool_use_id: 'nope', content: 'rain' },
        ] },
      ],
    })
    expect(msg).toContain('messages[2].content[2].tool_use_id')
    expect(msg).not.toContain('messages[5]')
    expect(msg).not.toContain('tool_call_id')
  })

  it('a tool_use block with an empty name: the block\'s name, not tool_calls[0].function.name', async () => {
    const msg = await refusal({
      model: 'google/gemini-2.5-flash', max_tokens: 64, system: [{ type: 'text', text: 'Be brief.' }],
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm', signature: 'sig' }, { type: 'text', text: 'Checking.' }, toolUse('t1', '')] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'sunny' }] },
      ],
    })
    expect(msg).toContain('messages[1].content[2].name')
    expect(msg).not.toContain('tool_calls')
  })

  it('a conversation with nothing Gemini takes: the last turn the client sent', async () => {
    const msg = await refusal({
      model: 'google/gemini-2.5-flash', max_tokens: 64, system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }],
    })
    expect(msg).toContain('messages[0].content')
    expect(msg).not.toContain('messages[1]')
  })
})

describe('anthropic', () => {
  it('an empty user turn after split tool results: the client\'s turn', async () => {
    const msg = await refusal({
      model: 'anthropic/claude-sonnet-4-5-20250929', max_tokens: 64, system: 'Be brief.',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [toolUse('t1')] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'sunny' }] },
        { role: 'assistant', content: 'It is sunny.' },
        { role: 'user', content: [{ type: 'text', text: '   ' }] },
      ],
    })
    expect(msg).toContain('messages[4].content')
    expect(msg).not.toContain('messages[5]')
  })

  it('an image type Anthropic refuses, inside a tool_result: the image block, not the user message it became (refused before any provider, as Anthropic\'s API does)', async () => {
    const msg = await refusal({
      model: 'anthropic/claude-sonnet-4-5-20250929', max_tokens: 64,
      messages: [
        { role: 'user', content: 'draw' },
        { role: 'assistant', content: [toolUse('t1', 'draw')] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'here' }, { type: 'image', source: { type: 'base64', media_type: 'image/bmp' as 'image/png', data: PNG } }] }] },
      ],
    })
    expect(msg).toBe("Invalid request body: messages[2].content[0].content[1].source.media_type: must be one of 'image/jpeg', 'image/png', 'image/gif', 'image/webp'")
    expect(t().anthropic.requests).toHaveLength(0)
  })
})

describe('streamed', () => {
  it('the same path when the client asked for a stream', async () => {
    const err = await client().messages.stream({
      model: 'ollama/llama3.2', max_tokens: 64, system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://example.com/cat.png' } }] }],
    }).finalMessage().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect(((err as InstanceType<typeof Anthropic.BadRequestError>).error as { error: { message: string } }).error.message)
      .toBe("Parameter 'messages[0].content[0].source' is not supported by provider ollama")
  })
})
