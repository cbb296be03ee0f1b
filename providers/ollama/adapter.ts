/**
 * The `ollama` adapter: Ollama's native API (/api/chat with NDJSON streaming, /api/embed,
 * /api/tags for health). No pass-through: the wire format is not OpenAI's.
 */
import { randomUUID } from 'node:crypto'
import type { AdapterDeps, AdapterFactory, ProviderAdapter, ProviderConfig } from '../types.ts'
import { HttpAdapter } from '../shared/http-adapter.ts'
import type { ChatTranslation, EmbeddingTranslation } from '../shared/translation.ts'
import { embeddingInputCount } from '../shared/embeddings.ts'
import { splitBaseUrl } from '../openai/adapter.ts'
import { ollamaConfigErrors, type OllamaConfig } from './config.ts'
import { toOllamaError } from './errors.ts'
import { ollamaModelsPath, toOllamaChat, toOllamaEmbed, type OllamaRequestOptions } from './request.ts'
import { fromOllamaChat, fromOllamaEmbed, fromOllamaModels, type ResponseMeta } from './response.ts'
import { createOllamaStreamMapper } from './stream.ts'

export function ollamaHeaders(cfg: OllamaConfig): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', ...(cfg.headers ?? {}) }
  if (cfg.apiKey) h['authorization'] = `Bearer ${cfg.apiKey}`
  return h
}

function meta(provider: string): ResponseMeta {
  return { provider, id: `chatcmpl-${randomUUID()}`, now: Math.floor(Date.now() / 1000) }
}

export function ollamaTranslations(name: string, cfg: OllamaConfig, basePath: string): { chat: ChatTranslation; embeddings: EmbeddingTranslation } {
  const o: OllamaRequestOptions = { provider: name, basePath, dropUnsupported: cfg.dropUnsupportedParams, keepAlive: cfg.keepAlive }
  return {
    chat: {
      streamFormat: 'ndjson',
      toUpstream: (req, model, stream) => toOllamaChat(req, model, stream, o),
      fromUpstream: (json, model) => fromOllamaChat(json, model, meta(name)),
      createStreamMapper: (model) => createOllamaStreamMapper(model, meta(name)),
      toError: (status, body, headers) => toOllamaError(name, status, body, headers),
    },
    embeddings: {
      toUpstream: (req, model) => toOllamaEmbed(req, model, o),
      fromUpstream: (json, model, req) => fromOllamaEmbed(json, model, name, req.encoding_format, embeddingInputCount(req)),
    },
  }
}

export function createOllamaAdapter(name: string, cfg: OllamaConfig, deps: AdapterDeps): ProviderAdapter {
  const { origin, basePath } = splitBaseUrl(cfg.baseUrl)
  const dispatcher = deps.dispatcherFor(origin)
  const t = ollamaTranslations(name, cfg, basePath)
  return new HttpAdapter({
    name, type: 'ollama', config: cfg as unknown as ProviderConfig, dispatcher,
    headers: ollamaHeaders(cfg),
    chat: t.chat, embeddings: t.embeddings,
    timeouts: cfg.timeouts,
    models: cfg.models ?? [],
    modelList: { path: () => ollamaModelsPath(basePath), fromUpstream: fromOllamaModels },
    healthPath: `${basePath}/api/tags`,
    configErrors: ollamaConfigErrors,
  })
}

export const ollamaFactory: AdapterFactory = {
  type: 'ollama',
  configErrors: ollamaConfigErrors,
  create: (name, config, deps) => createOllamaAdapter(name, config as unknown as OllamaConfig, deps),
}
