import { describe, expect, it } from 'vitest'
import type { ChatRequest, ContentPart } from '../../providers/types.ts'
import { anthropicToCanonical } from './anthropic.ts'
import { clientPaths } from './anthropic-paths.ts'

/** The value at a client path (`messages[2].content[1].source`) of a body. */
function at(body: unknown, path: string): unknown {
  let v: unknown = body
  for (const [, key, index] of path.matchAll(/\.?([A-Za-z_]\w*)|\[(\d+)\]/g)) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<string, unknown>)[key ?? index!]
  }
  return v
}

const PDF = 'JVBERi0xLjQK'
const body = {
  model: 'm', max_tokens: 10,
  system: [{ type: 'text', text: 's0' }, { type: 'text', text: 's1' }],
  messages: [
    { role: 'user', content: 'u0' },
    { role: 'assistant', content: [{ type: 'thinking', thinking: 't', signature: 'sig' }, { type: 'text', text: 'a0', cache_control: { type: 'ephemeral' } }, { type: 'tool_use', id: 'c1', name: 'f1', input: {} }, { type: 'text', text: 'a1' }, { type: 'tool_use', id: 'c2', name: 'f2', input: { x: 1 } }] },
    { role: 'user', content: [
      { type: 'text', text: 'before' },
      { type: 'tool_result', tool_use_id: 'c1', content: [{ type: 'image', source: { type: 'url', url: 'https://x/i.png' } }, { type: 'text', text: 'r1' }, { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } }, { type: 'text', text: 'r2' }] },
      { type: 'tool_result', tool_use_id: 'c2', content: 'r3' },
      { type: 'text', text: 'after' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } },
    ] },
    { role: 'assistant', content: 'done' },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'c9', content: [{ type: 'image', source: { type: 'url', url: 'https://x/j.png' } }] }] },
  ],
}

describe('clientPaths', () => {
  const req: ChatRequest = anthropicToCanonical(structuredClone(body))
  const map = clientPaths(req)!

  it('places every canonical message, part, tool call and tool result where the client sent it', () => {
    let checked = 0
    req.messages.forEach((m, i) => {
      const content = (m as { content: unknown }).content
      if (Array.isArray(content)) {
        (content as ContentPart[]).forEach((p, n) => {
          const where = map(`messages[${i}].content[${n}]`)
          if (p.type === 'text') { expect(at(body, `${map(`messages[${i}].content[${n}].text`)}`)).toBe(p.text); checked++ }
          if (p.type === 'image_url') {
            const source = at(body, map(`messages[${i}].content[${n}].image_url.url`)) as { url?: string; data?: string }
            expect((p as { image_url: { url: string } }).image_url.url.endsWith(source.url ?? source.data ?? '?')).toBe(true)
            expect(at(body, `${where}.type`)).toBe('image')
            checked++
          }
          if (p.type === 'file') { expect(at(body, map(`messages[${i}].content[${n}].file`))).toMatchObject({ type: 'document' }); expect(at(body, map(`messages[${i}].content[${n}].file.file_data`))).toBe(PDF); checked++ }
        })
      } else if (typeof content === 'string' && content !== '') {
        expect(at(body, map(`messages[${i}].content`))).toBe(content)
        checked++
      }
      if (m.role === 'tool') { expect(at(body, map(`messages[${i}].tool_call_id`))).toBe(m.tool_call_id); checked++ }
      if (m.role === 'assistant') {
        m.tool_calls?.forEach((tc, j) => {
          expect(at(body, map(`messages[${i}].tool_calls[${j}].function.name`))).toBe(tc.function.name)
          expect(JSON.stringify(at(body, map(`messages[${i}].tool_calls[${j}].function.arguments`)))).toBe(tc.function.arguments)
          expect(at(body, map(`messages[${i}].tool_calls[${j}].id`))).toBe(tc.id)
          checked++
        })
        m.thinking_blocks?.forEach((_t, j) => { expect(at(body, map(`messages[${i}].thinking_blocks[${j}].signature`))).toBe('sig'); checked++ })
      }
    })
    expect(checked).toBe(21)
  })

  it('names the system prompt as the client sent it', () => {
    expect(map('messages[0].content[1].text')).toBe('system[1].text')
    expect(map('messages[0].content')).toBe('system')
    const plain = anthropicToCanonical({ model: 'm', max_tokens: 1, system: 'be brief', messages: [{ role: 'user', content: 'x' }] })
    expect(clientPaths(plain)!("Parameter 'messages[0].content' and messages[1].content.")).toBe("Parameter 'system' and messages[0].content.")
  })

  it('leaves text without canonical message paths, and indexes it cannot place, as they are', () => {
    expect(map('Invalid request body: stop_sequences must be short')).toBe('Invalid request body: stop_sequences must be short')
    expect(map('messages[99].content')).toBe('messages[99].content')
    expect(map('x_messages[1].content')).toBe('x_messages[1].content')
  })

  it('knows only requests that came from a Messages body, and never puts the body on the request', () => {
    expect(clientPaths({ model: 'm', messages: [] })).toBeUndefined()
    expect(clientPaths(undefined)).toBeUndefined()
    expect(Object.keys(req)).toEqual(['model', 'messages', 'max_tokens'])
    expect(Object.getOwnPropertySymbols(req)).toEqual([])
  })
})
