/**
 * Folds canonical stream chunks into one ChatResponse: the text, the tool calls (arguments
 * concatenated per index), the thinking blocks (text and signature concatenated per index), the finish
 * reason and the usage. Used for metering and logs of
 * streamed answers, and by tests to check what a client would reassemble.
 */
import type { ChatChunk, ChatResponse, FinishReason, ThinkingBlock, ToolCall, Usage } from '../types.ts'

interface ChoiceAcc { content: string[]; hasContent: boolean; tools: ToolCall[]; finish: FinishReason | null; refusal: string[]; thinking: ThinkingBlock[] | undefined }

export class ChunkAggregator {
  id = ''
  model = ''
  created = 0
  usage: Usage | undefined
  systemFingerprint: string | null | undefined
  serviceTier: string | null | undefined
  #choices: ChoiceAcc[] = []

  add(chunk: ChatChunk): void {
    if (this.id === '') { this.id = chunk.id; this.model = chunk.model; this.created = chunk.created }
    if (chunk.usage) this.usage = chunk.usage
    if (chunk.system_fingerprint !== undefined) this.systemFingerprint = chunk.system_fingerprint
    if (chunk.service_tier !== undefined) this.serviceTier = chunk.service_tier
    for (const c of chunk.choices) {
      let acc = this.#choices[c.index]
      if (!acc) { acc = { content: [], hasContent: false, tools: [], finish: null, refusal: [], thinking: undefined }; this.#choices[c.index] = acc }
      const d = c.delta
      if (typeof d.content === 'string') { acc.content.push(d.content); acc.hasContent = true }
      if (typeof d.refusal === 'string') acc.refusal.push(d.refusal)
      if (d.tool_calls) {
        for (const t of d.tool_calls) {
          let tc = acc.tools[t.index]
          if (!tc) { tc = { id: t.id ?? '', type: 'function', function: { name: t.function?.name ?? '', arguments: '' } }; acc.tools[t.index] = tc }
          else {
            if (t.id) tc.id = t.id
            if (t.function?.name) tc.function.name += tc.function.name === '' ? t.function.name : ''
          }
          if (t.function?.arguments) tc.function.arguments += t.function.arguments
        }
      }
      if (d.thinking_blocks) {
        // Only streams with extended thinking have them: the list is made at the first.
        const thinking = acc.thinking ??= []
        for (const t of d.thinking_blocks) {
          const b = thinking[t.index]
          if (t.type === 'redacted_thinking') thinking[t.index] = { type: 'redacted_thinking', data: (b?.type === 'redacted_thinking' ? b.data : '') + t.data }
          else if (b?.type === 'thinking') { b.thinking += t.thinking ?? ''; b.signature += t.signature ?? '' }
          else thinking[t.index] = { type: 'thinking', thinking: t.thinking ?? '', signature: t.signature ?? '' }
        }
      }
      if (c.finish_reason) acc.finish = c.finish_reason
    }
  }

  /** Text of choice 0, as a chunk `{choices: [{index: 0, delta: {content: text}}]}` would add it (the text lane). */
  addText(text: string): void {
    let acc = this.#choices[0]
    if (!acc) { acc = { content: [], hasContent: false, tools: [], finish: null, refusal: [], thinking: undefined }; this.#choices[0] = acc }
    acc.content.push(text)
    acc.hasContent = true
  }

  get finishReason(): FinishReason | null {
    return this.#choices[0]?.finish ?? null
  }

  /** Concatenated text of choice 0 so far. */
  get text(): string {
    return this.#choices[0]?.content.join('') ?? ''
  }

  toResponse(): ChatResponse {
    const res: ChatResponse = {
      id: this.id,
      object: 'chat.completion',
      created: this.created,
      model: this.model,
      choices: this.#choices.map((acc, index) => {
        const message: ChatResponse['choices'][number]['message'] = {
          role: 'assistant',
          content: acc.hasContent ? acc.content.join('') : null,
        }
        const tools = acc.tools.filter(Boolean)
        if (tools.length > 0) message.tool_calls = tools
        if (acc.refusal.length > 0) message.refusal = acc.refusal.join('')
        const thinking = acc.thinking?.filter(Boolean) ?? []
        if (thinking.length > 0) message.thinking_blocks = thinking
        return { index, message, finish_reason: acc.finish }
      }),
    }
    if (this.usage) res.usage = this.usage
    if (this.systemFingerprint !== undefined) res.system_fingerprint = this.systemFingerprint
    if (this.serviceTier !== undefined) res.service_tier = this.serviceTier
    return res
  }
}
