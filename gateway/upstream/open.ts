/**
 * The terminal upstream call, wrapped by plugins' interceptUpstream at compile time. It resolves
 * once the upstream answered 2xx (status known, nothing written to the client yet), so retries and
 * breakers can judge a failure before the first byte. OpenAI-shaped requests to OpenAI-shaped
 * providers on routes without chunk hooks go through byte for byte; so do Messages requests to Anthropic providers
 * (native-messages.ts).
 */
import { GatewayError } from '../errors.ts'
import type { RequestCtx } from '../context.ts'
import type { UpstreamResponse } from '../pipeline/types.ts'
import { openHttp, upstreamRequestIdOf } from '../../providers/shared/http.ts'
import { credentialsOf, redactCredentials } from '../../providers/shared/upstream-error.ts'
import type { ExecuteParams } from '../../providers/types.ts'
import { clientAnthropicBeta, messagesLane, openNativeMessages } from './native-messages.ts'

export async function openUpstream(ctx: RequestCtx): Promise<UpstreamResponse> {
  const adapter = ctx.adapter
  if (!adapter) throw new GatewayError('MCP_ERR_ROUTE_MODEL_NOT_FOUND', { model: ctx.requestedModel })
  ctx.attempts++
  ctx.upstreamRequestId = undefined
  if (ctx.inbound === 'anthropic') {
    const lane = messagesLane(ctx, adapter)
    if (lane === 'native') return openNativeMessages(ctx, adapter)
    if (lane !== 'translated') throw lane
  }
  const pt = adapter.passthrough
  const op = ctx.embedding ? 'embeddings' : 'chat'
  if (pt && ctx.inbound === 'openai' && ctx.route.passthrough && !(ctx.stream && ctx.alias?.settings.streamRecovery === 'resume')) {
    const body = op === 'chat' ? ctx.chat : ctx.embedding
    const head = await openHttp(pt.dispatcher, {
      method: 'POST',
      path: pt.path(op, ctx.model),
      headers: ctx.extraUpstreamHeaders ? { ...pt.headers, 'x-request-id': ctx.id, ...ctx.extraUpstreamHeaders } : { ...pt.headers, 'x-request-id': ctx.id },
      body: JSON.stringify(body),
    }, {
      provider: adapter.name,
      signal: ctx.upstreamSignal ?? ctx.signal,
      headersTimeoutMs: Math.max(1, Math.min(ctx.upstreamTimeouts?.firstByteMs ?? pt.timeouts.firstByteMs, ctx.deadline - Date.now())),
      bodyTimeoutMs: ctx.upstreamTimeouts?.idleMs ?? pt.timeouts.idleMs,
    })
    ctx.upstreamRequestId = upstreamRequestIdOf(head.headers)
    if (head.status >= 300) {
      const text = redactCredentials(await head.text(1024 * 1024).catch(() => ''), credentialsOf(pt.headers))
      throw pt.toError(head.status, text, head.headers)
    }
    return { kind: 'raw', raw: head }
  }
  const params: ExecuteParams = {
    model: ctx.model, signal: ctx.upstreamSignal ?? ctx.signal, deadline: ctx.deadline, requestId: ctx.id,
    onUpstreamHeaders: (h) => { ctx.upstreamRequestId = upstreamRequestIdOf(h) },
  }
  if (ctx.extraUpstreamHeaders) params.extraHeaders = ctx.extraUpstreamHeaders
  const beta = clientAnthropicBeta(ctx)
  if (beta !== undefined) params.anthropicBeta = beta
  if (ctx.upstreamTimeouts) params.timeouts = ctx.upstreamTimeouts
  // deliverStream writes OpenAI SSE itself: plain text may skip the canonical chunk when no hook reads chunks.
  if (ctx.stream && ctx.inbound === 'openai' && ctx.route.onResponseChunk.length === 0) params.textLane = true
  if (op === 'embeddings') {
    if (!adapter.embed) throw new GatewayError('MCP_ERR_ROUTE_OPERATION_UNSUPPORTED', { provider: adapter.name, operation: 'embeddings' }, { param: 'model' })
    return { kind: 'json', response: await adapter.embed(ctx.embedding!, params) }
  }
  if (ctx.stream) return { kind: 'stream', stream: await adapter.stream(ctx.chat!, params) }
  return { kind: 'json', response: await adapter.execute(ctx.chat!, params) }
}
