/** The `openai` adapter (also the base of `openai-compatible`): OpenAI's wire format is canonical, so it offers pass-through. */
import type { AdapterDeps, AdapterFactory, PassthroughTarget, ProviderAdapter, ProviderConfig } from '../types.ts'
import { splitBaseUrl } from '../shared/base-url.ts'
import { HttpAdapter } from '../shared/http-adapter.ts'
import { OPENAI_TOOL_NAMES } from '../shared/tool-names.ts'
import type { ChatTranslation, EmbeddingTranslation } from '../shared/translation.ts'
import { openaiConfigErrors, type OpenAIConfig } from './config.ts'
import { toOpenAIError } from './errors.ts'
import { OPENAI_MAX_STOP, openaiModelsPath, toOpenAIChat, toOpenAIEmbeddings, type OpenAIRequestOptions } from './request.ts'
import { fromOpenAIChat, fromOpenAIEmbeddings, fromOpenAIModels } from './response.ts'
import { createOpenAIStreamMapper } from './stream.ts'

export interface OpenAIShape {
  origin: string
  basePath: string
  headers: Record<string, string>
}

export { splitBaseUrl }

export function openaiHeaders(cfg: OpenAIConfig): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', ...(cfg.headers ?? {}) }
  if (cfg.apiKey) h['authorization'] = `Bearer ${cfg.apiKey}`
  if (cfg.organization) h['openai-organization'] = cfg.organization
  if (cfg.project) h['openai-project'] = cfg.project
  return h
}

export function openaiTranslations(name: string, basePath: string, opts?: OpenAIRequestOptions): { chat: ChatTranslation; embeddings: EmbeddingTranslation } {
  const o: OpenAIRequestOptions = opts ?? { provider: name, dropUnsupportedParams: false, forwardTopK: false }
  return {
    chat: {
      streamFormat: 'sse',
      toUpstream: (req, model, stream) => toOpenAIChat(req, model, stream, basePath, o),
      fromUpstream: (json) => fromOpenAIChat(json, name),
      createStreamMapper: (_model, requestId, usageAsked) => createOpenAIStreamMapper(name, requestId, usageAsked),
      toError: (status, body, headers) => toOpenAIError(name, status, body, headers),
    },
    embeddings: {
      toUpstream: (req, model) => toOpenAIEmbeddings(req, model, basePath),
      fromUpstream: (json) => fromOpenAIEmbeddings(json, name),
    },
  }
}

export function createOpenAIAdapter(type: string, name: string, cfg: OpenAIConfig, deps: AdapterDeps, configErrors: (c: unknown) => readonly string[]): ProviderAdapter {
  const { origin, basePath } = splitBaseUrl(cfg.baseUrl)
  const dispatcher = deps.dispatcherFor(origin)
  const headers = openaiHeaders(cfg)
  // openai-compatible servers (vLLM, llama.cpp, LM Studio) take top_k; OpenAI's API does not, and wants
  // max_completion_tokens (request.ts); OpenAI's limits are OpenAI's only.
  const official = type === 'openai'
  const t = openaiTranslations(name, basePath, {
    provider: name, dropUnsupportedParams: cfg.dropUnsupportedParams, forwardTopK: type === 'openai-compatible', completionTokens: official,
    ...(official ? { maxStopSequences: OPENAI_MAX_STOP, toolNames: OPENAI_TOOL_NAMES } : {}),
  })
  const passthrough: PassthroughTarget = {
    dispatcher,
    origin,
    headers,
    timeouts: cfg.timeouts,
    path: (op) => (op === 'chat' ? `${basePath}/chat/completions` : `${basePath}/embeddings`),
    toError: (status, body, h) => toOpenAIError(name, status, body, h),
  }
  return new HttpAdapter({
    name, type, config: cfg as unknown as ProviderConfig, dispatcher, headers,
    chat: t.chat, embeddings: t.embeddings,
    timeouts: cfg.timeouts,
    models: cfg.models ?? [],
    modelList: { path: () => openaiModelsPath(basePath), fromUpstream: fromOpenAIModels },
    healthPath: `${basePath}/models`,
    passthrough,
    configErrors,
  })
}

export const openaiFactory: AdapterFactory = {
  type: 'openai',
  configErrors: openaiConfigErrors,
  create: (name, config, deps) => createOpenAIAdapter('openai', name, config as unknown as OpenAIConfig, deps, openaiConfigErrors),
}
