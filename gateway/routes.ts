/** The data plane's route table: method + path → RouteSpec. */
import type { RequestCtx } from './context.ts'
import { GatewayError } from './errors.ts'
import { validateChatRequest, validateEmbeddingRequest } from './http/schemas.ts'
import { anthropicInbound, anthropicToCanonical } from './inbound/anthropic.ts'
import { openaiInbound } from './inbound/openai.ts'
import type { RouteSpec } from './handler.ts'
import type { GatewayMetrics } from './telemetry.ts'
import { ModelCatalog } from './model-catalog.ts'
import { providerOfBareModel, resolveTarget } from './routing/resolve.ts'
import { checkContentType, parseJson, readBody } from './http/body.ts'
import { estimateChatPrompt, loadTokenizer } from './cost/estimate.ts'
import { clientAnthropicBeta, countNativeTokens, messagesLane } from './upstream/native-messages.ts'
import type { ChatRequest, EmbeddingRequest, ModelInfo } from '../providers/types.ts'

function bodyError(reasons: string[], ctx: RequestCtx): GatewayError {
  const first = reasons[0] ?? 'invalid body'
  const param = first.split(':', 1)[0]!
  void ctx
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: reasons.slice(0, 5).join('; ') }, { param, details: 'request.body_invalid' })
}

function rejectRoutingFields(body: Record<string, unknown>): void {
  for (const f of ['api_base', 'base_url', 'api_key']) {
    if (f in body) throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${f}: routing and credential fields are not accepted in request bodies` }, { param: f, details: 'request.routing_field' })
  }
}

export const chatCompletions: RouteSpec = {
  route: 'chat',
  inbound: openaiInbound,
  parse(json, ctx) {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bodyError(['(root): must be a JSON object'], ctx)
    rejectRoutingFields(json as Record<string, unknown>)
    if (!validateChatRequest(json)) throw bodyError(validateChatRequest.errors(), ctx)
    const req = json as ChatRequest
    ctx.chat = req
    ctx.requestedModel = req.model
    ctx.stream = req.stream === true
    ctx.includeUsage = ctx.stream && req.stream_options?.include_usage === true
    // Metering needs the usage of every stream: ask upstream for it; the client gets it only if it asked.
    if (ctx.stream && !ctx.includeUsage && ctx.route.needsUsage) {
      req.stream_options = { ...(req.stream_options ?? {}), include_usage: true }
      ctx.usageForced = true
    }
  },
}

export const embeddings: RouteSpec = {
  route: 'embeddings',
  inbound: openaiInbound,
  parse(json, ctx) {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bodyError(['(root): must be a JSON object'], ctx)
    rejectRoutingFields(json as Record<string, unknown>)
    if (!validateEmbeddingRequest(json)) throw bodyError(validateEmbeddingRequest.errors(), ctx)
    const req = json as EmbeddingRequest
    ctx.embedding = req
    ctx.requestedModel = req.model
  },
}

/** The Anthropic Messages API inbound: translated to the canonical request, answered in Anthropic's shape. */
export const messages: RouteSpec = {
  route: 'messages',
  inbound: anthropicInbound,
  parse(json, ctx) {
    if (json !== null && typeof json === 'object' && !Array.isArray(json)) rejectRoutingFields(json as Record<string, unknown>)
    const req = anthropicToCanonical(json)
    ctx.chat = req
    ctx.requestedModel = req.model
    ctx.stream = req.stream === true
    // Anthropic streams always report usage (message_start / message_delta): ask the upstream for it.
    if (ctx.stream) req.stream_options = { include_usage: true }
    ctx.includeUsage = ctx.stream
  },
}

const catalog = new ModelCatalog()

/** One model the caller can reach, and who serves it (a provider's name, or `mcp` for an alias). */
interface Reachable { id: string; ownedBy: string }

/**
 * What the caller can reach: each provider's declared models, or the ones it lists itself when none are declared
 * (model-catalog.ts), as `<provider>/<model>`, and every alias; only those the route's plugins allow (auth: the key's scopes).
 * A model the plugins refuse as `<provider>/<model>` but allow by its bare name, which routes to that provider, is
 * listed by the bare name: the listing shows exactly the names the key may call.
 */
async function reachable(ctx: RequestCtx, metrics: GatewayMetrics): Promise<Reachable[]> {
  const p = ctx.pipeline
  const filters = ctx.route.allowsModel
  const allowed = (id: string, isAlias: boolean): boolean => filters.every((f) => f(ctx, id, isAlias))
  const out: Reachable[] = []
  for (const [name, ids] of await catalog.list(p.providers, p.settings.modelList, ctx.log, metrics.modelDiscoveryFailures)) {
    for (const m of ids) {
      const id = `${name}/${m}`
      if (allowed(id, false)) out.push({ id, ownedBy: name })
      // A key scoped to bare names (`gpt-4o`) may call `gpt-4o` but not `oa/gpt-4o`: list the name it may call,
      // when that name reaches this provider (not an alias, and routed here: resolve.ts).
      else if (!p.aliases.has(m) && providerOfBareModel(p, m) === name && allowed(m, false)) out.push({ id: m, ownedBy: name })
    }
  }
  // Aliases are called by their own name (`smart`); the gateway routes them.
  for (const name of p.aliases.keys()) if (allowed(name, true)) out.push({ id: name, ownedBy: 'mcp' })
  return out
}

const openaiModel = (m: Reachable, created: number): ModelInfo => ({ id: m.id, object: 'model', created, owned_by: m.ownedBy })
/** Anthropic's model object; the gateway knows no release date, so `created_at` is when it was asked, as OpenAI's `created`. */
const anthropicModel = (m: Reachable, created: string): Record<string, unknown> => ({ type: 'model', id: m.id, display_name: m.id, created_at: created })

/** The model id of `GET /v1/models/{id}` (SDKs percent-encode it: `oa%2Fgpt-4o`); none is a 400 (MCP_ERR_ROUTE_MODEL_MISSING). */
function modelIdOf(ctx: RequestCtx): string {
  const url = ctx.req.url ?? ''
  const q = url.indexOf('?')
  const raw = (q === -1 ? url : url.slice(0, q)).slice(MODEL_PREFIX.length)
  let id: string
  try { id = decodeURIComponent(raw) } catch { id = raw }
  if (id === '') throw new GatewayError('MCP_ERR_ROUTE_MODEL_MISSING', {})
  return id
}

/** The model the path names, if the caller can reach it; else the 404 a provider answers for an unknown model. */
async function retrieve(ctx: RequestCtx, metrics: GatewayMetrics): Promise<Reachable> {
  const id = modelIdOf(ctx)
  const m = (await reachable(ctx, metrics)).find((x) => x.id === id)
  if (!m) throw new GatewayError('MCP_ERR_ROUTE_MODEL_NOT_FOUND', { model: id.slice(0, 200) }, { param: 'model' })
  return m
}

/** The request's query parameters (Anthropic's list takes `limit`, `after_id` and `before_id`). */
function query(ctx: RequestCtx): URLSearchParams {
  const url = ctx.req.url ?? ''
  const q = url.indexOf('?')
  return new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
}

function badQuery(param: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_QUERY_INVALID', { reason: `${param}: ${reason}` }, { param, details: 'request.query_invalid' })
}

/**
 * Anthropic's list: newest first in Anthropic's API, here in the gateway's order (providers, then aliases), paginated
 * as Anthropic documents it: `limit` (1 to 1000, default 20), `after_id` (the page after that id) or `before_id` (the
 * page before it), `has_more`, `first_id`, `last_id`. An id the list does not hold is a 400 naming the parameter.
 */
function anthropicPage(all: readonly Reachable[], ctx: RequestCtx): Record<string, unknown> {
  const qs = query(ctx)
  const limitText = qs.get('limit')
  const limit = limitText === null ? 20 : Number(limitText)
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000 || limitText === '') throw badQuery('limit', 'must be an integer from 1 to 1000')
  const after = qs.get('after_id')
  const before = qs.get('before_id')
  if (after !== null && before !== null) throw badQuery('before_id', 'cannot be combined with after_id')
  let from = 0
  let to = all.length
  if (after !== null) {
    const i = all.findIndex((m) => m.id === after)
    if (i === -1) throw badQuery('after_id', `no model '${after.slice(0, 200)}' in the list`)
    from = i + 1
    to = Math.min(all.length, from + limit)
  } else if (before !== null) {
    const i = all.findIndex((m) => m.id === before)
    if (i === -1) throw badQuery('before_id', `no model '${before.slice(0, 200)}' in the list`)
    to = i
    from = Math.max(0, to - limit)
  } else to = Math.min(all.length, limit)
  const created = new Date().toISOString()
  const data = all.slice(from, to).map((m) => anthropicModel(m, created))
  const more = before !== null ? from > 0 : to < all.length
  return { data, has_more: more, first_id: data.length > 0 ? all[from]!.id : null, last_id: data.length > 0 ? all[to - 1]!.id : null }
}

/** `GET /v1/models`: what the caller can reach (see reachable), in OpenAI's list shape. */
export const models: RouteSpec = {
  route: 'models',
  inbound: openaiInbound,
  async local(ctx, metrics) {
    const created = Math.floor(Date.now() / 1000)
    return { object: 'list', data: (await reachable(ctx, metrics)).map((m) => openaiModel(m, created)) }
  },
  // The same list for Anthropic clients (they send `anthropic-version`): Anthropic's shape and errors.
  anthropic: {
    route: 'models',
    inbound: anthropicInbound,
    async local(ctx, metrics) { return anthropicPage(await reachable(ctx, metrics), ctx) },
  },
}

/** `GET /v1/models/{id}`: one model the caller can reach, or a 404 (OpenAI's, or Anthropic's for Anthropic clients). */
export const modelById: RouteSpec = {
  route: 'models',
  inbound: openaiInbound,
  async local(ctx, metrics) { return openaiModel(await retrieve(ctx, metrics), Math.floor(Date.now() / 1000)) },
  anthropic: {
    route: 'models',
    inbound: anthropicInbound,
    async local(ctx, metrics) { return anthropicModel(await retrieve(ctx, metrics), new Date().toISOString()) },
  },
}

/**
 * `POST /v1/messages/count_tokens` (Anthropic's token counting; Claude Code asks it every turn to manage its context):
 * a Messages body without `max_tokens`, answered `{input_tokens}`. The model is routed as `/v1/messages` routes it (an
 * alias by its first target) and the key's model scopes apply. An Anthropic target counts upstream (its own
 * count_tokens, the client's `anthropic-beta` passed on); any other provider has no such endpoint, and the gateway
 * counts the prompt with its tokenizer (o200k, as the cost meter's estimates): `x-mcp-token-count` says which
 * (`provider` or `estimated`). As a local reply, only the route's request-header and completion hooks run (no body
 * hooks, no upstream completion): a count reserves no budget and meters no cost. Never a made-up zero: a failed count
 * is an error, on which Claude Code falls back to its own estimate.
 */
export const countTokens: RouteSpec = {
  route: 'count_tokens',
  inbound: anthropicInbound,
  async local(ctx) {
    checkContentType(ctx.req)
    const json = parseJson(await readBody(ctx.req, ctx.pipeline.settings.server.bodyLimitBytes))
    if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
      const body = json as Record<string, unknown>
      rejectRoutingFields(body)
      // count_tokens takes no max_tokens; the Messages parser requires one.
      if ('max_tokens' in body) throw new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: 'max_tokens: is not taken by count_tokens' }, { param: 'max_tokens', details: 'request.body_invalid' })
      body['max_tokens'] = 1
    }
    const req = anthropicToCanonical(json)
    ctx.requestedModel = req.model
    resolveTarget(ctx)
    if (!ctx.route.allowsModel.every((f) => f(ctx, req.model, ctx.alias !== undefined))) {
      throw new GatewayError('MCP_ERR_AUTH_FORBIDDEN', { action: `use ${ctx.alias ? 'alias' : 'model'} ${req.model.slice(0, 200)}` }, { param: 'model', details: 'auth.out_of_scope' })
    }
    const adapter = ctx.adapter!
    // As the Messages call would go: natively, or translated (a native-only body elsewhere: the same 400).
    const lane = messagesLane(ctx, adapter, req)
    if (typeof lane === 'object') throw lane
    let n: number
    if (lane === 'native') {
      n = await countNativeTokens(ctx, adapter, req)
      ctx.responseHeaders['x-mcp-token-count'] = 'provider'
    } else if (adapter.countTokens) {
      const beta = clientAnthropicBeta(ctx)
      n = await adapter.countTokens(req, { model: ctx.model, signal: ctx.signal, deadline: ctx.deadline, requestId: ctx.id, ...(beta !== undefined ? { anthropicBeta: beta } : {}) })
      ctx.responseHeaders['x-mcp-token-count'] = 'provider'
    } else {
      await loadTokenizer()
      n = estimateChatPrompt(req)
      ctx.responseHeaders['x-mcp-token-count'] = 'estimated'
    }
    return { input_tokens: n }
  },
}

/** Paths under it are `GET /v1/models/{id}` (the id may hold slashes: `oa/gpt-4o`). */
export const MODEL_PREFIX = '/v1/models/'

/** `METHOD path` → spec; paths with a query string are matched without it. */
export const ROUTES: ReadonlyMap<string, RouteSpec> = new Map([
  ['POST /v1/chat/completions', chatCompletions],
  ['POST /v1/embeddings', embeddings],
  ['GET /v1/models', models],
  ['POST /v1/messages', messages],
  ['POST /v1/messages/count_tokens', countTokens],
])

