/**
 * A complete custom provider: it answers with the last user message reversed.
 *
 *   providers:
 *     echo:
 *       type: custom
 *       module: ./examples/custom-provider/echo-adapter.ts   # absolute, or relative to the gateway's cwd
 *       options: { chunkSize: 4, prefix: '' }
 *
 * The default export is the factory `(options, ctx) => adapter`. `execute` returns an OpenAI
 * `chat.completion`; `stream` is an async generator of OpenAI `chat.completion.chunk`s ending with
 * a finish chunk and a usage chunk (`choices: []`). Errors are GatewayErrors with a code from
 * gateway/errors.ts. See docs/providers.md.
 */
import { GatewayError } from '../../gateway/errors.ts'
import type {
  ChatChunk, ChatMessage, ChatRequest, ChatResponse, ExecuteParams, HealthStatus, ProviderMetrics, Usage,
} from '../../providers/types.ts'
import type { CustomAdapter, CustomAdapterContext } from '../../providers/custom/adapter.ts'

interface EchoOptions {
  /** Characters per streamed chunk (default 4). */
  chunkSize: number
  /** Text put before the reversed message (default ''). */
  prefix: string
}

/** Reasons the options are invalid (the gateway shows them when the config is rejected). */
function optionErrors(options: unknown): string[] {
  if (options === null || typeof options !== 'object') return ['options: must be an object']
  const o = options as Record<string, unknown>
  const errors: string[] = []
  for (const key of Object.keys(o)) if (key !== 'chunkSize' && key !== 'prefix') errors.push(`options.${key}: unknown key`)
  if (o['chunkSize'] !== undefined && !(Number.isInteger(o['chunkSize']) && (o['chunkSize'] as number) > 0)) errors.push('options.chunkSize: must be a positive integer')
  if (o['prefix'] !== undefined && typeof o['prefix'] !== 'string') errors.push('options.prefix: must be a string')
  return errors
}

function textOf(content: ChatMessage['content']): string {
  if (content == null) return ''
  if (typeof content === 'string') return content
  return content.map((p) => (p.type === 'text' && typeof p['text'] === 'string' ? p['text'] : '')).join('')
}

/** A rough token count (4 characters per token), enough for usage and budgets. */
function tokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4))
}

export default function createEchoAdapter(options: Readonly<Record<string, unknown>>, ctx: CustomAdapterContext): CustomAdapter {
  const opts: EchoOptions = {
    chunkSize: typeof options['chunkSize'] === 'number' ? options['chunkSize'] : 4,
    prefix: typeof options['prefix'] === 'string' ? options['prefix'] : '',
  }
  const metrics = { requests: 0, inflight: 0, errors: 0, errorsByCode: {} as Record<string, number> }
  let seq = 0

  function answer(req: ChatRequest): { text: string; usage: Usage } {
    const last = [...req.messages].reverse().find((m) => m.role === 'user')
    const input = last ? textOf(last.content) : ''
    if (input === '') {
      const e = new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: 'the echo provider needs a user message with text' }, { param: 'messages' })
      metrics.errors++
      metrics.errorsByCode[e.code] = (metrics.errorsByCode[e.code] ?? 0) + 1
      throw e
    }
    const text = opts.prefix + [...input].reverse().join('')
    const prompt = req.messages.reduce((n, m) => n + tokens(textOf(m.content)), 0)
    const completion = tokens(text)
    return { text, usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } }
  }

  return {
    async execute(req: ChatRequest, params: ExecuteParams): Promise<ChatResponse> {
      metrics.requests++
      const { text, usage } = answer(req)
      return {
        id: `chatcmpl-${ctx.name}-${++seq}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: params.model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        usage,
      }
    },

    async *stream(req: ChatRequest, params: ExecuteParams): AsyncGenerator<ChatChunk> {
      metrics.requests++
      const { text, usage } = answer(req)
      const base = { id: `chatcmpl-${ctx.name}-${++seq}`, object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model: params.model }
      metrics.inflight++
      try {
        yield { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }
        for (let i = 0; i < text.length; i += opts.chunkSize) {
          if (params.signal.aborted) throw new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' })
          yield { ...base, choices: [{ index: 0, delta: { content: text.slice(i, i + opts.chunkSize) }, finish_reason: null }] }
        }
        yield { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }
        yield { ...base, choices: [], usage }
      } finally {
        metrics.inflight--
      }
    },

    validateConfig(o: unknown): boolean {
      return optionErrors(o).length === 0
    },

    configErrors: optionErrors,

    getMetrics(): ProviderMetrics {
      return { ...metrics, errorsByCode: { ...metrics.errorsByCode }, latencyMs: { p50: 0, p99: 0 } }
    },

    async healthCheck(): Promise<HealthStatus> {
      return { ok: true, checkedAt: Date.now(), latencyMs: 0, detail: 'echo is always up' }
    },

    listModels(): readonly string[] {
      return ['echo-1']
    },
  }
}
