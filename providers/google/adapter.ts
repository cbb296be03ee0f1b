/**
 * The `google` adapter (Gemini API): chat via `models/{model}:generateContent` and
 * `:streamGenerateContent?alt=sse`, embeddings via `:embedContent` / `:batchEmbedContents`,
 * health via `GET /{apiVersion}/models`. The API key travels in `x-goog-api-key`, never in the URL.
 */
import type { AdapterDeps, AdapterFactory, EmbeddingRequest, EmbeddingResponse, ExecuteParams, ProviderAdapter, ProviderConfig } from '../types.ts'
import { HttpAdapter, type HttpAdapterOptions } from '../shared/http-adapter.ts'
import type { ChatTranslation, EmbeddingTranslation } from '../shared/translation.ts'
import { embeddingInputCount } from '../shared/embeddings.ts'
import { googleConfigErrors, type GoogleConfig } from './config.ts'
import { toGoogleError } from './errors.ts'
import { embeddingTexts, googleModelsPath, toGoogleChat, toGoogleEmbeddings, type GoogleRequestOptions } from './request.ts'
import { finishEmbeddings, fromGoogleChat, fromGoogleEmbeddings, fromGoogleModels } from './response.ts'
import { createGoogleStreamMapper } from './stream.ts'

export function googleHeaders(cfg: GoogleConfig): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', ...(cfg.headers ?? {}) }
  if (cfg.apiKey) h['x-goog-api-key'] = cfg.apiKey
  return h
}

export function googleTranslations(name: string, o: GoogleRequestOptions): { chat: ChatTranslation; embeddings: EmbeddingTranslation } {
  return {
    chat: {
      streamFormat: 'sse',
      toUpstream: (req, model, stream) => toGoogleChat(req, model, stream, o),
      fromUpstream: (json, model) => fromGoogleChat(json, model, name),
      createStreamMapper: (model, requestId) => createGoogleStreamMapper(name, model, requestId),
      toError: (status, body, headers) => toGoogleError(name, status, body, headers),
    },
    embeddings: {
      toUpstream: (req, model) => toGoogleEmbeddings(req, model, o),
      fromUpstream: (json, model, req) => fromGoogleEmbeddings(json, model, name, embeddingInputCount(req)),
    },
  }
}

/** The most requests Gemini takes in one batchEmbedContents call. */
const MAX_BATCH = 100

/**
 * EmbeddingTranslation.fromUpstream sees only the upstream JSON, but base64 encoding and the token
 * estimate need the request: done here, after the shared shell, with pure helpers from response.ts. So is splitting
 * more than 100 inputs (batchEmbedContents' limit) into several calls.
 */
class GoogleAdapter extends HttpAdapter {
  readonly #provider: string

  constructor(o: HttpAdapterOptions) {
    super(o)
    this.#provider = o.name
  }

  override async embed(req: EmbeddingRequest, params: ExecuteParams): Promise<EmbeddingResponse> {
    const texts = embeddingTexts(req, this.#provider)
    if (texts.length <= MAX_BATCH) return finishEmbeddings(await super.embed(req, params), req, texts)
    // batchEmbedContents takes at most 100 requests (more is a 400): one call per 100 inputs, in order, one answer.
    let res: EmbeddingResponse | undefined
    for (let from = 0; from < texts.length; from += MAX_BATCH) {
      const part = await super.embed({ ...req, input: texts.slice(from, from + MAX_BATCH) }, params)
      if (!res) { res = { ...part, data: [...part.data], usage: { ...part.usage } }; continue }
      for (const d of part.data) res.data.push({ ...d, index: d.index + from })
      res.usage.prompt_tokens += part.usage.prompt_tokens
      res.usage.total_tokens += part.usage.total_tokens
    }
    return finishEmbeddings(res!, req, texts)
  }
}

export function createGoogleAdapter(name: string, cfg: GoogleConfig, deps: AdapterDeps): ProviderAdapter {
  const u = new URL(cfg.baseUrl)
  const origin = u.origin
  const basePath = u.pathname.replace(/\/+$/, '')
  const dispatcher = deps.dispatcherFor(origin)
  const o: GoogleRequestOptions = {
    provider: name,
    basePath,
    apiVersion: cfg.apiVersion,
    dropUnsupportedParams: cfg.dropUnsupportedParams,
    safetySettings: cfg.safetySettings,
  }
  const t = googleTranslations(name, o)
  return new GoogleAdapter({
    name, type: 'google', config: cfg as unknown as ProviderConfig, dispatcher,
    headers: googleHeaders(cfg),
    chat: t.chat, embeddings: t.embeddings,
    timeouts: cfg.timeouts,
    models: cfg.models ?? [],
    modelList: { path: (pageToken) => googleModelsPath(o, pageToken), fromUpstream: fromGoogleModels },
    healthPath: `${basePath}/${cfg.apiVersion}/models`,
    configErrors: googleConfigErrors,
  })
}

export const googleFactory: AdapterFactory = {
  type: 'google',
  configErrors: googleConfigErrors,
  create: (name, config, deps) => createGoogleAdapter(name, config as unknown as GoogleConfig, deps),
}
