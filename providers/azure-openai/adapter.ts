/**
 * The `azure-openai` adapter: OpenAI's translation with Azure's URL (deployment + api-version, or
 * the v1 surface), the `api-key` header and Azure's content-filter errors. It offers pass-through.
 */
import type { AdapterDeps, AdapterFactory, PassthroughTarget, ProviderAdapter, ProviderConfig } from '../types.ts'
import { HttpAdapter } from '../shared/http-adapter.ts'
import type { ChatTranslation, EmbeddingTranslation, StreamMapper } from '../shared/translation.ts'
import type { ChatChunk } from '../types.ts'
import { openaiTranslations, splitBaseUrl } from '../openai/adapter.ts'
import { OPENAI_MAX_STOP } from '../openai/request.ts'
import { OPENAI_TOOL_NAMES } from '../shared/tool-names.ts'
import { azureConfigErrors, type AzureConfig } from './config.ts'
import { toAzureError } from './errors.ts'
import { azureModelsPath, azurePath, azureRoute, toAzureChat, toAzureEmbeddings, type AzureRoute } from './request.ts'

export function azureHeaders(cfg: AzureConfig): Record<string, string> {
  return { 'content-type': 'application/json', ...(cfg.headers ?? {}), 'api-key': cfg.apiKey }
}

/**
 * An Asynchronous Filter annotation: a choice with `content_filter_offsets` and nothing else to say (its delta was
 * missing, the mapper made it empty; no finish). A choice that finishes (`content_filter`) is kept.
 */
function isAnnotationChoice(c: ChatChunk['choices'][number]): boolean {
  return (c as { content_filter_offsets?: unknown }).content_filter_offsets !== undefined && !c.finish_reason &&
    Object.keys(c.delta).length === 0
}

/**
 * Azure's annotation-only events are not canonical chunks: `choices: []` without usage (`prompt_filter_results`),
 * and the Asynchronous Filter's messages whose every choice is an annotation.
 */
function isAnnotationOnly(c: ChatChunk): boolean {
  if (c.choices.length === 0) return c.usage === undefined || c.usage === null
  return c.choices.every(isAnnotationChoice)
}

function withoutAnnotations(m: StreamMapper): StreamMapper {
  return {
    push: (ev) => {
      const out = m.push(ev)
      return out && out.some(isAnnotationOnly) ? out.filter((c) => !isAnnotationOnly(c)) : out
    },
    end: () => m.end(),
    ...(m.ended ? { ended: m.ended } : {}),
  }
}

export function azureTranslations(name: string, route: AzureRoute, dropUnsupportedParams = false): { chat: ChatTranslation; embeddings: EmbeddingTranslation } {
  const o = { provider: name, dropUnsupportedParams, forwardTopK: false, maxStopSequences: OPENAI_MAX_STOP, toolNames: OPENAI_TOOL_NAMES }
  const openai = openaiTranslations(name, route.basePath, o)
  return {
    chat: {
      ...openai.chat,
      toUpstream: (req, model, stream) => toAzureChat(req, model, stream, route, o),
      createStreamMapper: (model, requestId, usageAsked) => withoutAnnotations(openai.chat.createStreamMapper(model, requestId, usageAsked)),
      toError: (status, body, headers) => toAzureError(name, status, body, headers),
    },
    embeddings: {
      ...openai.embeddings,
      toUpstream: (req, model) => toAzureEmbeddings(req, model, route),
    },
  }
}

/**
 * Pass-through forwards the canonical body as is. In v1 mode the body's `model` must be the
 * deployment, so pass-through is offered there only when no model is renamed.
 */
function passthroughFor(name: string, route: AzureRoute, base: Omit<PassthroughTarget, 'path' | 'toError'>): PassthroughTarget | undefined {
  const renames = Object.entries(route.deployments).some(([model, dep]) => model !== dep)
  if (route.mode === 'v1' && renames) return undefined
  return {
    ...base,
    path: (op, model) => azurePath(route, op, model),
    toError: (status, body, h) => toAzureError(name, status, body, h),
  }
}

export function createAzureAdapter(name: string, cfg: AzureConfig, deps: AdapterDeps): ProviderAdapter {
  const { origin, basePath } = splitBaseUrl(cfg.baseUrl)
  const dispatcher = deps.dispatcherFor(origin)
  const headers = azureHeaders(cfg)
  const route = azureRoute(cfg, basePath)
  const t = azureTranslations(name, route, cfg.dropUnsupportedParams)
  const passthrough = passthroughFor(name, route, { dispatcher, origin, headers, timeouts: cfg.timeouts })
  return new HttpAdapter({
    name, type: 'azure-openai', config: cfg as unknown as ProviderConfig, dispatcher, headers,
    chat: t.chat, embeddings: t.embeddings,
    timeouts: cfg.timeouts,
    models: cfg.models ?? Object.keys(cfg.deployments),
    healthPath: azureModelsPath(route),
    ...(passthrough ? { passthrough } : {}),
    configErrors: azureConfigErrors,
  })
}

export const azureOpenAIFactory: AdapterFactory = {
  type: 'azure-openai',
  configErrors: azureConfigErrors,
  create: (name, config, deps) => createAzureAdapter(name, config as unknown as AzureConfig, deps),
}
