/**
 * JSON Schemas of the management API: request bodies (validated with the gateway's one validator, errors naming
 * the field) and responses. The OpenAPI document (openapi.ts) is generated from these same objects, so what is
 * documented is what is enforced. Generation parameters reuse the data plane's chat request schema.
 */
import { chatRequestSchema } from '../gateway/http/schemas.ts'
import { compileSchema, type JSONSchema } from '../gateway/validate.ts'

/** Statuses of a deployment and of a provider added through the API (their schemas and the lists' `status` filter). */
export const DEPLOYMENT_STATUSES = ['active', 'paused'] as const
export const PROVIDER_STATUSES = ['active', 'disabled'] as const

const chat = (chatRequestSchema['properties'] ?? {}) as Record<string, JSONSchema>
const uuid: JSONSchema = { type: 'string', format: 'uuid' }
const timestamp: JSONSchema = { type: 'string', format: 'date-time' }
const handle = (max: number): JSONSchema => ({ type: 'string', minLength: 1, maxLength: max, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' })
const metadata: JSONSchema = { type: 'object', description: 'Free-form JSON object.' }

/** Generation parameters a version, a deployment's config or an execute call may set (later ones win). */
export const parametersSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(
    ['temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'n', 'stop', 'presence_penalty', 'frequency_penalty', 'seed',
      'user', 'metadata', 'tool_choice', 'parallel_tool_calls', 'logprobs', 'top_logprobs']
      .filter((k) => chat[k] !== undefined)
      .map((k) => [k, chat[k]!])
      .concat([['reasoning_effort', { enum: ['minimal', 'low', 'medium', 'high'] }]]),
  ),
}

const textPart: JSONSchema = {
  type: 'object', required: ['type'],
  properties: { type: { type: 'string' }, text: { type: 'string' } },
}

const templateMessage: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['role', 'content'],
  properties: {
    role: { enum: ['system', 'developer', 'user', 'assistant'] },
    content: { type: ['string', 'array'], if: { type: 'array' }, then: { minItems: 1, items: textPart } },
    name: { type: 'string', maxLength: 64 },
  },
}

export const templateSchema: JSONSchema = {
  description: 'A string (one user message) or chat messages; {{name}} and {{dotted.path}} are substituted at execution.',
  // if/then rather than anyOf, so an error names the field inside the branch that applies (template[1].content).
  type: ['string', 'array'],
  if: { type: 'string' },
  then: { minLength: 1 },
  else: { minItems: 1, maxItems: 200, items: templateMessage },
}

// ---------- request bodies ----------

export const promptCreateSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: handle(200),
    description: { type: 'string', maxLength: 4000 },
    team: { type: 'string', minLength: 1, maxLength: 100 },
    metadata,
  },
}

export const versionCreateSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['template'],
  properties: {
    template: templateSchema,
    model: { type: 'string', minLength: 1, maxLength: 200, description: '`<provider>/<model>`, a bare model or an alias.' },
    params: parametersSchema,
    tools: chat['tools'] ?? { type: 'array' },
    response_format: chat['response_format'] ?? { type: 'object' },
    variables: { type: 'object', description: 'JSON Schema the variables must satisfy (optional).' },
    metadata,
    message: { type: 'string', maxLength: 4000, description: 'What changed.' },
  },
}

export const deploymentConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'Per-environment settings applied on top of the prompt version.',
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 200, description: "Overrides the version's model." },
    parameters: parametersSchema,
    default_variables: { type: 'object', description: 'Variables used when the caller does not send them.' },
    description: { type: 'string', maxLength: 4000 },
    metadata,
  },
}

/** Version numbers are a 32-bit column: a larger one is a 400, not a database error. */
const versionNumber: JSONSchema = { type: 'integer', minimum: 1, maximum: 2_147_483_647 }

const trafficEntry: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['weight'],
  properties: {
    prompt_version_id: uuid,
    version: versionNumber,
    weight: { type: 'integer', minimum: 0, maximum: 10_000 },
    label: { type: 'string', minLength: 1, maxLength: 50 },
  },
}

const versionRef = {
  prompt_version_id: { ...uuid, description: 'The version to serve (or `version`; default: the latest).' },
  version: { ...versionNumber, description: 'The version number to serve.' },
}

const trafficProp: JSONSchema = {
  type: 'array', minItems: 1, maxItems: 10, items: trafficEntry,
  description: 'Several live versions with weights (canary, blue-green); each entry names `prompt_version_id` or `version`.',
}

export const deploymentCreateSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['prompt_id', 'environment'],
  properties: {
    prompt_id: uuid,
    environment: { type: 'string', minLength: 1, maxLength: 50 },
    ...versionRef,
    traffic: trafficProp,
    config: deploymentConfigSchema,
    status: { enum: [...DEPLOYMENT_STATUSES] },
  },
}

export const deploymentUpdateSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'Fields absent keep their value; prompt and environment never change (promote instead).',
  properties: { ...versionRef, traffic: trafficProp, config: deploymentConfigSchema, status: { enum: [...DEPLOYMENT_STATUSES] } },
}

export const rollbackSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'Empty: back to the version served before the current one. Or name the version.',
  properties: versionRef,
}

export const promoteSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { to_environment: { type: 'string', minLength: 1, maxLength: 50, description: 'Default: the next environment.' } },
}

const credentialName = { pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$' }

export const providerCreateSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'provider'],
  properties: {
    name: { ...handle(100), description: 'Routes address it as `<name>/<model>`.' },
    provider: { type: 'string', minLength: 1, maxLength: 50, description: 'Adapter type: openai, anthropic, google, azure-openai, openai-compatible, ollama.' },
    config: { type: 'object', description: "The adapter's settings without secrets (baseUrl, models, timeouts, ...)." },
    credentials: {
      type: 'object', propertyNames: credentialName,
      additionalProperties: { type: 'string', minLength: 1, maxLength: 16_384 },
      description: 'Secret fields of the adapter config (apiKey, ...); encrypted at rest, never returned.',
    },
    status: { enum: [...PROVIDER_STATUSES] },
  },
}

export const providerUpdateSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  description: '`config` replaces the config; a credential field set to a string replaces it, null removes it, absent keeps it.',
  properties: {
    config: { type: 'object' },
    credentials: {
      type: 'object', propertyNames: credentialName,
      additionalProperties: { anyOf: [{ type: 'string', minLength: 1, maxLength: 16_384 }, { type: 'null' }] },
    },
    status: { enum: [...PROVIDER_STATUSES] },
  },
}

export const executeSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'Either `deployment_id`, or `prompt` (name or id) with `environment`.',
  properties: {
    deployment_id: { type: 'string', minLength: 1, maxLength: 100 },
    prompt: { type: 'string', minLength: 1, maxLength: 200 },
    environment: { type: 'string', minLength: 1, maxLength: 50 },
    variables: { type: 'object' },
    parameters: parametersSchema,
    stream: { type: 'boolean' },
  },
}

// ---------- responses ----------

const credentialView: JSONSchema = {
  type: 'object', required: ['fingerprint', 'last4'],
  properties: { fingerprint: { type: 'string', description: 'sha256 of the secret, first 12 hex digits.' }, last4: { type: ['string', 'null'] } },
}

export const promptSchema: JSONSchema = {
  type: 'object',
  required: ['id', 'name', 'latest_version', 'created_at', 'updated_at'],
  properties: {
    id: uuid, name: { type: 'string' }, description: { type: ['string', 'null'] }, team: { type: ['string', 'null'] },
    metadata, latest_version: { type: 'integer', minimum: 0 }, created_at: timestamp, updated_at: timestamp,
  },
}

export const promptVersionSchema: JSONSchema = {
  type: 'object',
  required: ['id', 'prompt_id', 'version', 'template', 'created_at'],
  properties: {
    id: uuid, prompt_id: uuid, version: { type: 'integer', minimum: 1 }, template: templateSchema,
    template_variables: { type: 'array', items: { type: 'string' }, description: 'Variable paths the template uses.' },
    model: { type: ['string', 'null'] }, params: parametersSchema, tools: { type: ['array', 'null'] },
    response_format: { type: ['object', 'null'] }, variables: { type: ['object', 'null'] }, metadata,
    message: { type: ['string', 'null'] }, content_hash: { type: 'string' }, created_at: timestamp,
  },
}

const trafficView: JSONSchema = {
  type: 'object', required: ['prompt_version_id', 'version', 'weight'],
  properties: { prompt_version_id: uuid, version: { type: 'integer' }, weight: { type: 'integer' }, label: { type: ['string', 'null'] } },
}

export const deploymentSchema: JSONSchema = {
  type: 'object',
  required: ['id', 'prompt_id', 'environment', 'status', 'config', 'prompt_version_id', 'version', 'traffic', 'revision'],
  properties: {
    id: uuid, prompt_id: uuid, prompt_name: { type: 'string' }, environment: { type: 'string' },
    status: { enum: [...DEPLOYMENT_STATUSES] }, config: deploymentConfigSchema,
    prompt_version_id: { ...uuid, description: 'The primary (stable) version.' },
    version: { type: 'integer', description: 'Version number of the primary version.' },
    traffic: { type: 'array', items: trafficView, description: 'Live versions and their weights (one entry at 100 when not split).' },
    revision: { type: 'integer', description: 'Row version; the ETag is its quoted value.' },
    created_at: timestamp, updated_at: timestamp,
  },
}

export const historyEntrySchema: JSONSchema = {
  type: 'object',
  required: ['id', 'action', 'revision', 'at'],
  properties: {
    id: { type: 'integer' }, action: { enum: ['create', 'update', 'promote', 'rollback', 'pause', 'resume', 'delete'] },
    revision: { type: 'integer' },
    from_prompt_version_id: { type: ['string', 'null'] }, from_version: { type: ['integer', 'null'] },
    to_prompt_version_id: { type: ['string', 'null'] }, to_version: { type: ['integer', 'null'] },
    traffic: { type: ['array', 'null'], items: trafficView }, request_id: { type: ['string', 'null'] }, at: timestamp,
  },
}

const healthStats: JSONSchema = {
  type: 'object',
  properties: {
    calls: { type: 'integer' }, errors: { type: 'integer' }, error_rate: { type: ['number', 'null'] },
    latency_ms: { type: 'object', properties: { p50: { type: ['number', 'null'] }, p95: { type: ['number', 'null'] }, p99: { type: ['number', 'null'] } } },
    cost_per_call_usd: { type: ['number', 'null'] }, cost_total_usd: { type: ['number', 'null'] },
  },
}

export const healthSchema: JSONSchema = {
  type: 'object',
  required: ['deployment_id', 'window', 'from', 'to'],
  properties: {
    deployment_id: uuid, window: { type: 'string' }, from: timestamp, to: timestamp,
    ...(healthStats['properties'] as Record<string, JSONSchema>),
    by_version: { type: 'array', items: { ...healthStats, properties: { prompt_version_id: { type: ['string', 'null'] }, ...(healthStats['properties'] as Record<string, JSONSchema>) } } },
  },
}

export const providerSchema: JSONSchema = {
  type: 'object',
  required: ['id', 'name', 'provider', 'config', 'credentials', 'status', 'revision'],
  properties: {
    id: uuid, name: { type: 'string' }, provider: { type: 'string' }, config: { type: 'object' },
    credentials: { type: 'object', additionalProperties: credentialView, description: 'Never the values: a fingerprint and the last four characters.' },
    status: { enum: [...PROVIDER_STATUSES] }, revision: { type: 'integer' }, created_at: timestamp, updated_at: timestamp,
  },
}

export const executionResultSchema: JSONSchema = {
  type: 'object',
  required: ['execution_id', 'deployment_id', 'prompt_version_id', 'version', 'output', 'latency_ms'],
  properties: {
    execution_id: { type: 'string', description: "The id of this call's execution log row (GET /executions/{id}); the request id when the gateway generated it. Unique per call, also when the caller reuses an x-request-id." },
    deployment_id: uuid, prompt_id: uuid, prompt_version_id: uuid, version: { type: 'integer' }, environment: { type: 'string' },
    model: { type: 'string' },
    upstream_request_id: { type: ['string', 'null'], description: "The provider's own id of the request (its request-id, x-request-id or apim-request-id header), what its support asks for; null when it sent none." },
    output: { type: 'object', description: 'The chat completion (OpenAI shape).' },
    usage: { type: ['object', 'null'] }, latency_ms: { type: 'number' }, cost: { type: ['number', 'null'], description: 'USD; null until pricing is configured.' },
  },
}

/** POST /targets/{provider}/{model}/breaker: force the breaker open or closed, back to automatic, or reset it. */
export const breakerSchema: JSONSchema = {
  type: 'object', additionalProperties: false, required: ['state'],
  properties: { state: { enum: ['open', 'closed', 'auto', 'reset'] } },
}

export const errorSchema: JSONSchema = {
  type: 'object', required: ['error'],
  properties: {
    error: {
      type: 'object', required: ['message', 'type', 'code'],
      properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: 'string' }, param: { type: ['string', 'null'] }, request_id: { type: 'string' } },
    },
  },
}

export function pageOf(item: JSONSchema): JSONSchema {
  return { type: 'object', required: ['data', 'next_cursor'], properties: { data: { type: 'array', items: item }, next_cursor: { type: ['string', 'null'] } } }
}

// ---------- validators (compiled once, at import) ----------

export const validators = {
  promptCreate: compileSchema<PromptCreate>(promptCreateSchema),
  versionCreate: compileSchema<VersionCreate>(versionCreateSchema),
  deploymentCreate: compileSchema<DeploymentCreate>(deploymentCreateSchema),
  deploymentUpdate: compileSchema<DeploymentUpdate>(deploymentUpdateSchema),
  rollback: compileSchema<Rollback>(rollbackSchema),
  promote: compileSchema<Promote>(promoteSchema),
  providerCreate: compileSchema<ProviderCreate>(providerCreateSchema),
  providerUpdate: compileSchema<ProviderUpdate>(providerUpdateSchema),
  execute: compileSchema<ExecuteBody>(executeSchema),
}

export type Params = Record<string, unknown>

export interface PromptCreate { name: string; description?: string; team?: string; metadata?: Record<string, unknown> }
export interface VersionCreate {
  template: unknown; model?: string; params?: Params; tools?: unknown[]; response_format?: Record<string, unknown>
  variables?: Record<string, unknown>; metadata?: Record<string, unknown>; message?: string
}
export interface DeploymentConfig { model?: string; parameters?: Params; default_variables?: Record<string, unknown>; description?: string; metadata?: Record<string, unknown> }
export interface TrafficInput { prompt_version_id?: string; version?: number; weight: number; label?: string }
export interface DeploymentCreate {
  prompt_id: string; environment: string; prompt_version_id?: string; version?: number; traffic?: TrafficInput[]
  config?: DeploymentConfig; status?: 'active' | 'paused'
}
export type DeploymentUpdate = Partial<Omit<DeploymentCreate, 'prompt_id' | 'environment'>>
export interface Rollback { prompt_version_id?: string; version?: number }
export interface Promote { to_environment?: string }
export interface ProviderCreate { name: string; provider: string; config?: Record<string, unknown>; credentials?: Record<string, string>; status?: 'active' | 'disabled' }
export interface ProviderUpdate { config?: Record<string, unknown>; credentials?: Record<string, string | null>; status?: 'active' | 'disabled' }
export interface ExecuteBody {
  deployment_id?: string; prompt?: string; environment?: string; variables?: Record<string, unknown>; parameters?: Params; stream?: boolean
}
