/**
 * Model → target. An alias (`models.<alias>`) goes to the router; `<provider>/<model>` goes to that
 * provider with that model; a bare model goes to the provider that lists it in `models`, else to
 * `defaultProvider`.
 */
import type { RequestCtx } from '../context.ts'
import { GatewayError } from '../errors.ts'
import type { Pipeline } from '../pipeline/pipeline.ts'

/** The provider a bare model name (no alias, no `<provider>/`) goes to: the one listing it, else `defaultProvider`. */
export function providerOfBareModel(p: Pick<Pipeline, 'modelIndex' | 'settings'>, model: string): string | undefined {
  return p.modelIndex.get(model) ?? p.settings.defaultProvider
}

export function resolveTarget(ctx: RequestCtx): void {
  const requested = ctx.requestedModel
  if (requested === '') throw new GatewayError('MCP_ERR_ROUTE_MODEL_MISSING', {}, { param: 'model', details: 'route.model_missing' })
  const p = ctx.pipeline
  const alias = p.aliases.get(requested)
  if (alias) {
    ctx.alias = alias
    const first = alias.targets[0]!
    ctx.providerName = first.provider
    ctx.model = first.model
    ctx.adapter = first.adapter
    return
  }
  const slash = requested.indexOf('/')
  if (slash > 0) {
    const name = requested.slice(0, slash)
    const adapter = p.providers.get(name)
    if (adapter) {
      ctx.providerName = name
      ctx.model = requested.slice(slash + 1)
      ctx.adapter = adapter
      setModel(ctx)
      return
    }
  }
  const byModel = providerOfBareModel(p, requested)
  const adapter = byModel !== undefined ? p.providers.get(byModel) : undefined
  if (!adapter || byModel === undefined) {
    throw new GatewayError('MCP_ERR_ROUTE_MODEL_NOT_FOUND', { model: requested.slice(0, 256) }, { param: 'model', details: 'route.model_not_found' })
  }
  ctx.providerName = byModel
  ctx.model = requested
  ctx.adapter = adapter
  setModel(ctx)
}

function setModel(ctx: RequestCtx): void {
  if (ctx.chat) ctx.chat.model = ctx.model
  else if (ctx.embedding) ctx.embedding.model = ctx.model
}
