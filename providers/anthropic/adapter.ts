/**
 * The `anthropic` adapter: canonical ↔ Anthropic Messages API (`POST /v1/messages`). No OpenAI pass-through (the wire
 * formats differ); a `/v1/messages` request the canonical form cannot carry goes through as sent (nativeMessages).
 */
import type { AdapterDeps, AdapterFactory, ExecuteParams, NativeMessagesTarget, ProviderAdapter, ProviderConfig } from '../types.ts'
import { splitBaseUrl } from '../shared/base-url.ts'
import { HttpAdapter } from '../shared/http-adapter.ts'
import type { ChatTranslation } from '../shared/translation.ts'
import { anthropicConfigErrors, type AnthropicConfig } from './config.ts'
import { toAnthropicError } from './errors.ts'
import { anthropicModelsPath, fromAnthropicCountTokens, toAnthropicChat, toAnthropicCountTokens, type AnthropicRequestOptions } from './request.ts'
import { fromAnthropicMessage, fromAnthropicModels } from './response.ts'
import { createAnthropicStreamMapper } from './stream.ts'

export function anthropicHeaders(cfg: AnthropicConfig): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'application/json',
    'anthropic-version': cfg.anthropicVersion,
    ...(cfg.headers ?? {}),
  }
  if (cfg.apiKey) h['x-api-key'] = cfg.apiKey
  return h
}

export function anthropicTranslation(name: string, opts: AnthropicRequestOptions): ChatTranslation {
  return {
    streamFormat: 'sse',
    toUpstream: (req, model, stream) => toAnthropicChat(req, model, stream, opts),
    fromUpstream: (json) => fromAnthropicMessage(json, name),
    createStreamMapper: (model) => createAnthropicStreamMapper(name, model),
    toError: (status, body, headers) => toAnthropicError(name, status, body, headers),
  }
}

/**
 * The `anthropic-beta` header of one call: the config's betas (`headers['anthropic-beta']`, any case) and the client's,
 * each once, in that order, under the config's spelling of the header name; undefined when the client sent none (the
 * config's, if any, go as a fixed header) or the config does not forward them.
 */
export function betaHeaders(cfg: AnthropicConfig): (client: string | undefined) => Record<string, string> | undefined {
  if (!cfg.forwardClientBetas) return () => undefined
  const key = Object.keys(cfg.headers ?? {}).find((k) => k.toLowerCase() === 'anthropic-beta') ?? 'anthropic-beta'
  const betasOf = (list: string): string[] => list.split(',').map((b) => b.trim()).filter((b) => b !== '')
  const fixed = betasOf(cfg.headers?.[key] ?? '')
  return (client) => {
    if (client === undefined) return undefined
    const betas = [...new Set([...fixed, ...betasOf(client)])]
    return betas.length > 0 ? { [key]: betas.join(',') } : undefined
  }
}

/** Exact names, or prefixes ending in `*` (`*` alone: any). */
function patternsMatcher(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')))
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  return (name) => exact.has(name) || prefixes.some((p) => name.startsWith(p))
}

/** A validated copy with the schema defaults applied (the caller's object is left as it was). */
function withDefaults(config: ProviderConfig): AnthropicConfig {
  const copy = structuredClone(config) as unknown as AnthropicConfig
  anthropicConfigErrors(copy)
  return copy
}

export function createAnthropicAdapter(name: string, config: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  const cfg = withDefaults(config)
  const { origin, basePath } = splitBaseUrl(cfg.baseUrl)
  const betas = betaHeaders(cfg)
  const requestOptions: AnthropicRequestOptions = { provider: name, basePath, defaultMaxTokens: cfg.defaultMaxTokens, dropUnsupportedParams: cfg.dropUnsupportedParams }
  const dispatcher = deps.dispatcherFor(origin)
  const headers = anthropicHeaders(cfg)
  const nativeMessages: NativeMessagesTarget = {
    dispatcher,
    messagesPath: `${basePath}/v1/messages`,
    countTokensPath: `${basePath}/v1/messages/count_tokens`,
    timeouts: cfg.timeouts,
    headers,
    betaHeaders: betas,
    always: cfg.nativeMessages,
    serverToolAllowed: patternsMatcher(cfg.serverTools),
    toError: (status, body, h) => toAnthropicError(name, status, body, h),
  }
  return new HttpAdapter({
    name,
    type: 'anthropic',
    config,
    dispatcher,
    headers,
    nativeMessages,
    ...(cfg.forwardClientBetas ? { callHeaders: (params: ExecuteParams) => betas(params.anthropicBeta) } : {}),
    chat: anthropicTranslation(name, requestOptions),
    countTokens: { toUpstream: (req, model) => toAnthropicCountTokens(req, model, requestOptions), fromUpstream: fromAnthropicCountTokens },
    timeouts: cfg.timeouts,
    models: cfg.models ?? [],
    modelList: { path: (afterId) => anthropicModelsPath(basePath, afterId), fromUpstream: fromAnthropicModels },
    healthPath: `${basePath}/v1/models`,
    configErrors: anthropicConfigErrors,
  })
}

export const anthropicFactory: AdapterFactory = {
  type: 'anthropic',
  configErrors: anthropicConfigErrors,
  create: createAnthropicAdapter,
}
