/** The data plane's route table: method + path → RouteSpec. */
import type { RequestCtx } from './context.ts'
import { GatewayError } from './errors.ts'
import { validateChatRequest, validateEmbeddingRequest } from './http/schemas.ts'
import { anthropicInbound, anthropicToCanonical } from './inbound/anthropic.ts'
import { openaiInbound } from './inbound/openai.ts'
import type { RouteSpec } from './handler.ts'
import { ModelCatalog } from './model-catalog.ts'
import { providerOfBareModel } from './routing/resolve.ts'
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

/**
 * What the caller can reach: each provider's declared models, or the ones it lists itself when none are declared
 * (model-catalog.ts), as `<provider>/<model>`, and every alias; only those the route's plugins allow (auth: the key's scopes).
 * A model the plugins refuse as `<provider>/<model>` but allow by its bare name, which routes to that provider, is
 * listed by the bare name: the listing shows exactly the names the key may call.
 */
export const models: RouteSpec = {
  route: 'models',
  inbound: openaiInbound,
  async local(ctx, metrics) {
    const p = ctx.pipeline
    const filters = ctx.route.allowsModel
    const allowed = (id: string, isAlias: boolean): boolean => filters.every((f) => f(ctx, id, isAlias))
    const data: ModelInfo[] = []
    const created = Math.floor(Date.now() / 1000)
    for (const [name, ids] of await catalog.list(p.providers, p.settings.modelList, ctx.log, metrics.modelDiscoveryFailures)) {
      for (const m of ids) {
        const id = `${name}/${m}`
        if (allowed(id, false)) data.push({ id, object: 'model', created, owned_by: name })
        // A key scoped to bare names (`gpt-4o`) may call `gpt-4o` but not `oa/gpt-4o`: list the name it may call,
        // when that name reaches this provider (not an alias, and routed here: resolve.ts).
        else if (!p.aliases.has(m) && providerOfBareModel(p, m) === name && allowed(m, false)) data.push({ id: m, object: 'model', created, owned_by: name })
      }
    }
    // Aliases are called by their own name (`smart`); the gateway routes them.
    for (const name of p.aliases.keys()) if (allowed(name, true)) data.push({ id: name, object: 'model', created, owned_by: 'mcp' })
    return { object: 'list', data }
  },
}

/** `METHOD path` → spec; paths with a query string are matched without it. */
export const ROUTES: ReadonlyMap<string, RouteSpec> = new Map([
  ['POST /v1/chat/completions', chatCompletions],
  ['POST /v1/embeddings', embeddings],
  ['GET /v1/models', models],
  ['POST /v1/messages', messages],
])

