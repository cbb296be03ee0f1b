/**
 * The execute API's dialect. Errors are OpenAI-shaped (`{error:{message,type,code,param,request_id}}`).
 *
 * Non-streaming answer:
 *   { execution_id, deployment_id, prompt_id, prompt_version_id, version, environment, model, upstream_request_id,
 *     output: <chat.completion>, usage, latency_ms, cost }
 *
 * Streaming answer (SSE): the OpenAI `chat.completion.chunk` events as they come (usage-only chunks left out),
 * then one last chunk with no choices that carries the usage and an `execution` object, then `data: [DONE]`:
 *   data: {"id":…,"object":"chat.completion.chunk","choices":[],"usage":{…},"execution":{"execution_id":…,…}}
 * OpenAI SDKs read it as an ordinary (empty) chunk. A failure after the first byte ends with an error event and
 * no [DONE], like every other stream of the gateway.
 *
 * `cost` (USD) is the cost meter's price of the answer (costOf), null without a meter, usage or price.
 */
import type { RequestCtx } from '../gateway/context.ts'
import { costOf } from '../gateway/cost/meter.ts'
import { openaiErrorBody } from '../gateway/inbound/openai.ts'
import type { Inbound, StreamEncoder } from '../gateway/inbound/types.ts'
import type { ChatChunk } from '../providers/types.ts'

function executionFields(ctx: RequestCtx | undefined): Record<string, unknown> {
  const x = ctx?.slots.execution
  return {
    execution_id: x?.executionId ?? ctx?.id ?? null,
    deployment_id: x?.deploymentId ?? null,
    prompt_id: x?.promptId ?? null,
    prompt_version_id: x?.promptVersionId ?? null,
    version: x?.version ?? null,
    environment: x?.environment ?? null,
    ...(x?.label ? { label: x.label } : {}),
    model: ctx ? (ctx.providerName ? `${ctx.providerName}/${ctx.model}` : ctx.requestedModel) : null,
    upstream_request_id: ctx?.upstreamRequestId ?? null,
  }
}

/**
 * USD as the cost meter prices the answer (costOf: computed once, from the usage, as soon as it is in: a JSON answer
 * before it is encoded, a stream after its last event; the execution log records the same). Null without a cost
 * meter on the route, without usage yet, or for a model the catalogue does not price.
 */
function cost(ctx: RequestCtx | undefined): number | null {
  const c = ctx && costOf(ctx)
  return c && !c.unknown ? c.usd : null
}

function latency(ctx: RequestCtx | undefined): number | null {
  return ctx ? Math.round(ctx.elapsedMs() * 10) / 10 : null
}

export const executeInbound: Inbound = {
  name: 'execute',
  errorBody: openaiErrorBody,
  encodeResponse(res, _requestModel, ctx) {
    return JSON.stringify({
      ...executionFields(ctx),
      output: res,
      usage: ('usage' in res ? res.usage : undefined) ?? null,
      latency_ms: latency(ctx),
      cost: cost(ctx),
    })
  },
  createStreamEncoder(requestModel, _includeUsage, ctx): StreamEncoder {
    let id = ''
    let created = Math.floor(Date.now() / 1000)
    let model = requestModel
    return {
      chunk(c: ChatChunk): string {
        id = c.id
        created = c.created
        model = c.model
        if (c.choices.length === 0) return ''
        if (c.usage != null) { const { usage: _u, ...rest } = c; return `data: ${JSON.stringify(rest)}\n\n` }
        return `data: ${JSON.stringify(c)}\n\n`
      },
      end(): string {
        const last = {
          id, object: 'chat.completion.chunk', created, model, choices: [],
          usage: ctx?.usage ?? null,
          execution: { ...executionFields(ctx), latency_ms: latency(ctx), cost: cost(ctx) },
        }
        return `data: ${JSON.stringify(last)}\n\ndata: [DONE]\n\n`
      },
      error: (e) => `data: ${JSON.stringify(openaiErrorBody(e, ctx?.id ?? ''))}\n\n`,
    }
  },
}
