/**
 * Canonical → Azure OpenAI: the body is OpenAI's; only the URL changes (deployment in the path
 * and `api-version` in the query, or the `/openai/v1` surface with the deployment as `model`).
 */
import type { ChatRequest, EmbeddingRequest } from '../types.ts'
import type { UpstreamBody } from '../shared/translation.ts'
import { toOpenAIChat, toOpenAIEmbeddings, useCompletionTokens, type OpenAIRequestOptions } from '../openai/request.ts'
import { DEFAULT_AZURE_API_VERSION, type AzureConfig } from './config.ts'
import { isReasoningModel } from '../shared/reasoning.ts'

export type AzureOp = 'chat' | 'embeddings'

const OP_PATH: Readonly<Record<AzureOp, string>> = { chat: '/chat/completions', embeddings: '/embeddings' }

/** Everything the URL depends on, computed once per config. */
export interface AzureRoute {
  readonly mode: 'deployments' | 'v1'
  /** Path prefix of the resource endpoint (usually ''), e.g. behind an API gateway. */
  readonly basePath: string
  readonly deployments: Readonly<Record<string, string>>
  /** `?api-version=...`, or '' (v1 without a configured version). */
  readonly query: string
}

export function azureRoute(cfg: AzureConfig, basePath: string): AzureRoute {
  const version = cfg.apiMode === 'v1' ? cfg.apiVersion : (cfg.apiVersion ?? DEFAULT_AZURE_API_VERSION)
  return {
    mode: cfg.apiMode,
    basePath,
    deployments: cfg.deployments,
    query: version === undefined ? '' : `?api-version=${encodeURIComponent(version)}`,
  }
}

export function deploymentFor(route: AzureRoute, model: string): string {
  // Own keys only: a client's model named `constructor` or `toString` must not find Object.prototype's member.
  return Object.hasOwn(route.deployments, model) ? route.deployments[model]! : model
}

export function azurePath(route: AzureRoute, op: AzureOp, model: string): string {
  if (route.mode === 'v1') return `${route.basePath}/openai/v1${OP_PATH[op]}${route.query}`
  return `${route.basePath}/openai/deployments/${encodeURIComponent(deploymentFor(route, model))}${OP_PATH[op]}${route.query}`
}

/** The model name the body carries: the deployment in v1 mode; in deployments mode the URL decides and the name stays. */
function bodyModel(route: AzureRoute, model: string): string {
  return route.mode === 'v1' ? deploymentFor(route, model) : model
}

export function toAzureChat(req: ChatRequest, model: string, stream: boolean, route: AzureRoute, o?: OpenAIRequestOptions): UpstreamBody {
  const up = toOpenAIChat(req, bodyModel(route, model), stream, '', o)
  // Reasoning models refuse `max_tokens` ("Use 'max_completion_tokens' instead"); told by the model or the deployment
  // name, since Azure's older API versions and some gpt-4o deployments refuse `max_completion_tokens` in turn
  // ("Unrecognized request argument"): every other model keeps `max_tokens`.
  if (isReasoningModel(model) || isReasoningModel(deploymentFor(route, model))) useCompletionTokens(up.body as ChatRequest)
  return { ...up, path: azurePath(route, 'chat', model) }
}

export function toAzureEmbeddings(req: EmbeddingRequest, model: string, route: AzureRoute): UpstreamBody {
  const up = toOpenAIEmbeddings(req, bodyModel(route, model), '')
  return { ...up, path: azurePath(route, 'embeddings', model) }
}

/** Health probe: the data-plane model list. */
export function azureModelsPath(route: AzureRoute): string {
  return route.mode === 'v1' ? `${route.basePath}/openai/v1/models${route.query}` : `${route.basePath}/openai/models${route.query}`
}
