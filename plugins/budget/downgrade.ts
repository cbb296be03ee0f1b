/**
 * Budget-aware downgrade: re-points a request from its alias to a cheaper alias or `<provider>/<model>`
 * before routing (the handler routes `ctx.alias` after the onRequestBody hooks). The client's
 * requested model is unchanged; the answer says `x-mcp-downgraded: <from>-><to>`.
 */
import type { Logger } from 'pino'
import type { RequestCtx } from '../../gateway/context.ts'

const warned = new Set<string>()

/** Applies the downgrade; false (and one warning per target) when `to` names nothing configured. */
export function applyDowngrade(ctx: RequestCtx, to: string, log: Logger): boolean {
  const from = ctx.alias?.name ?? ctx.requestedModel
  const p = ctx.pipeline
  const alias = p.aliases.get(to)
  if (alias) {
    const first = alias.targets[0]!
    ctx.alias = alias
    ctx.providerName = first.provider
    ctx.model = first.model
    ctx.adapter = first.adapter
  } else {
    const slash = to.indexOf('/')
    const adapter = slash > 0 ? p.providers.get(to.slice(0, slash)) : undefined
    if (!adapter) {
      if (!warned.has(to)) { warned.add(to); log.warn({ to }, `budget: downgrade target '${to}' is neither an alias nor <provider>/<model>; not downgrading`) }
      return false
    }
    ctx.alias = undefined
    ctx.providerName = to.slice(0, slash)
    ctx.model = to.slice(slash + 1)
    ctx.adapter = adapter
    if (ctx.chat) ctx.chat.model = ctx.model
    else if (ctx.embedding) ctx.embedding.model = ctx.model
  }
  ctx.responseHeaders['x-mcp-downgraded'] = `${from}->${to}`
  return true
}
