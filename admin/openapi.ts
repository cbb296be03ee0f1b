/**
 * The OpenAPI 3.1 document of the management API, generated from the JSON Schemas the API validates with
 * (admin/schemas.ts): one source, so the document cannot drift from what is enforced. Served at
 * GET /api/v1/mcp/openapi.json (behind the admin key, like the rest of the admin port).
 */
import type { JSONSchema } from '../gateway/validate.ts'
import * as s from './schemas.ts'
import { auditEntrySchema, keyCreateSchema, keyRotatedSchema, keyRotateSchema, keySchema, keyUpdateSchema } from './keys.ts'

export interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete'
  path: string
  summary: string
  tag: string
  body?: string
  bodyOptional?: boolean
  ok: { status: number; schema?: string; page?: boolean; etag?: boolean; also?: number }
  errors: number[]
  query?: { name: string; schema: JSONSchema; description: string }[]
  ifMatch?: 'required' | 'optional'
  stream?: boolean
}

export const COMPONENTS: Record<string, JSONSchema> = {
  Error: s.errorSchema,
  Parameters: s.parametersSchema,
  Prompt: s.promptSchema,
  PromptCreate: s.promptCreateSchema,
  PromptVersion: s.promptVersionSchema,
  PromptVersionCreate: s.versionCreateSchema,
  Deployment: s.deploymentSchema,
  DeploymentConfig: s.deploymentConfigSchema,
  DeploymentCreate: s.deploymentCreateSchema,
  DeploymentUpdate: s.deploymentUpdateSchema,
  Rollback: s.rollbackSchema,
  Promote: s.promoteSchema,
  HistoryEntry: s.historyEntrySchema,
  Health: s.healthSchema,
  Provider: s.providerSchema,
  ProviderCreate: s.providerCreateSchema,
  ProviderUpdate: s.providerUpdateSchema,
  Execute: s.executeSchema,
  ExecutionResult: s.executionResultSchema,
  Key: keySchema,
  KeyCreate: keyCreateSchema,
  KeyUpdate: keyUpdateSchema,
  KeyRotate: keyRotateSchema,
  KeyRotated: keyRotatedSchema,
  AuditEntry: auditEntrySchema,
  TargetBreaker: s.breakerSchema,
}

const page = [
  { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 }, description: 'Page size.' },
  { name: 'cursor', schema: { type: 'string' }, description: '`next_cursor` of the previous page.' },
]

const usageQuery = [
  { name: 'granularity', schema: { enum: ['hour', 'day'], default: 'hour' }, description: 'Bucket size.' },
  { name: 'from', schema: { type: 'string', format: 'date-time' }, description: 'Buckets starting at or after this instant.' },
  { name: 'to', schema: { type: 'string', format: 'date-time' }, description: 'Buckets starting before this instant.' },
  { name: 'group_by', schema: { type: 'string' }, description: 'Comma-separated: bucket, key, team, deployment, prompt_version, provider, model.' },
  ...['key_id', 'team', 'deployment_id', 'prompt_version_id', 'provider', 'model'].map((name) => ({ name, schema: { type: 'string' }, description: 'Exact match.' })),
  { name: 'format', schema: { enum: ['json', 'csv'] }, description: 'Answer format.' },
  { name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 100000, default: 10000 }, description: 'Rows at most.' },
]

export const OPERATIONS: Operation[] = [
  { method: 'post', path: '/prompts', summary: 'Create a prompt', tag: 'prompts', body: 'PromptCreate', ok: { status: 201, schema: 'Prompt', etag: true }, errors: [400, 409] },
  { method: 'get', path: '/prompts', summary: 'List prompts (newest first)', tag: 'prompts', ok: { status: 200, schema: 'Prompt', page: true }, errors: [400],
    query: [{ name: 'team', schema: { type: 'string' }, description: 'Only this team.' }, { name: 'name', schema: { type: 'string' }, description: 'Exact name.' }, ...page] },
  { method: 'get', path: '/prompts/{id}', summary: 'Get a prompt (ETag: its latest version number)', tag: 'prompts', ok: { status: 200, schema: 'Prompt', etag: true }, errors: [404] },
  { method: 'post', path: '/prompts/{id}/versions', summary: 'Create the next immutable version (identical content: the latest, 200)', tag: 'prompts', body: 'PromptVersionCreate', ok: { status: 201, schema: 'PromptVersion', etag: true, also: 200 }, errors: [400, 404, 412, 422], ifMatch: 'optional' },
  { method: 'get', path: '/prompts/{id}/versions', summary: 'List versions (newest first)', tag: 'prompts', ok: { status: 200, schema: 'PromptVersion', page: true }, errors: [400, 404], query: page },
  { method: 'get', path: '/prompts/{id}/versions/{version}', summary: 'Get a version by number or id', tag: 'prompts', ok: { status: 200, schema: 'PromptVersion' }, errors: [404] },
  { method: 'get', path: '/environments', summary: 'Environments in promotion order', tag: 'deployments', ok: { status: 200 }, errors: [] },
  { method: 'post', path: '/deployments', summary: 'Create deployment', tag: 'deployments', body: 'DeploymentCreate', ok: { status: 201, schema: 'Deployment', etag: true }, errors: [400, 409, 422] },
  { method: 'get', path: '/deployments', summary: 'List deployments (newest first)', tag: 'deployments', ok: { status: 200, schema: 'Deployment', page: true }, errors: [400],
    query: [{ name: 'prompt_id', schema: { type: 'string', format: 'uuid' }, description: 'Only this prompt.' }, { name: 'prompt', schema: { type: 'string' }, description: 'Only the prompt with this name.' }, { name: 'environment', schema: { type: 'string' }, description: 'Only this environment.' },
      { name: 'status', schema: { enum: [...s.DEPLOYMENT_STATUSES] }, description: 'Only this status.' }, ...page] },
  { method: 'get', path: '/deployments/{id}', summary: 'Get deployment', tag: 'deployments', ok: { status: 200, schema: 'Deployment', etag: true }, errors: [404] },
  { method: 'put', path: '/deployments/{id}', summary: 'Update deployment (absent fields keep their value)', tag: 'deployments', body: 'DeploymentUpdate', ok: { status: 200, schema: 'Deployment', etag: true }, errors: [400, 404, 412, 422, 428], ifMatch: 'required' },
  { method: 'delete', path: '/deployments/{id}', summary: 'Delete deployment', tag: 'deployments', ok: { status: 204 }, errors: [404, 412, 428], ifMatch: 'required' },
  { method: 'post', path: '/deployments/{id}/rollback', summary: 'Roll back to a named version, or to the previous one (then If-Match is required)', tag: 'deployments', body: 'Rollback', bodyOptional: true, ok: { status: 200, schema: 'Deployment', etag: true }, errors: [400, 404, 412, 422, 428], ifMatch: 'optional' },
  { method: 'post', path: '/deployments/{id}/promote', summary: 'Promote to the next (or a named) environment', tag: 'deployments', body: 'Promote', bodyOptional: true, ok: { status: 201, schema: 'Deployment', etag: true, also: 200 }, errors: [400, 404, 422] },
  { method: 'get', path: '/deployments/{id}/history', summary: 'Version history (newest first)', tag: 'deployments', ok: { status: 200, schema: 'HistoryEntry', page: true }, errors: [400, 404], query: page },
  { method: 'get', path: '/deployments/{id}/health', summary: 'Error rate, latency percentiles and cost per call from the execution logs', tag: 'deployments', ok: { status: 200, schema: 'Health' }, errors: [400, 404],
    query: [{ name: 'window', schema: { type: 'string', pattern: '^[1-9][0-9]*[smhd]$', default: '1h' }, description: 'How far back, up to 30d.' }] },
  { method: 'post', path: '/execute', summary: 'Execute a deployed prompt (also on the data plane port); SSE when stream is true', tag: 'execute', body: 'Execute', ok: { status: 200, schema: 'ExecutionResult' }, errors: [400, 401, 402, 404, 409, 422, 429, 502, 503, 504], stream: true },
  { method: 'get', path: '/providers', summary: 'List providers added through the API', tag: 'providers', ok: { status: 200, schema: 'Provider', page: true }, errors: [400],
    query: [{ name: 'provider', schema: { type: 'string' }, description: 'Only this adapter type.' }, { name: 'status', schema: { enum: [...s.PROVIDER_STATUSES] }, description: 'Only this status.' }, ...page] },
  { method: 'post', path: '/providers', summary: 'Add provider (credentials encrypted at rest; live without restart)', tag: 'providers', body: 'ProviderCreate', ok: { status: 201, schema: 'Provider', etag: true }, errors: [400, 409, 422, 503] },
  { method: 'get', path: '/providers/{id}', summary: 'Get provider (credentials as fingerprints)', tag: 'providers', ok: { status: 200, schema: 'Provider', etag: true }, errors: [404] },
  { method: 'put', path: '/providers/{id}', summary: 'Update provider', tag: 'providers', body: 'ProviderUpdate', ok: { status: 200, schema: 'Provider', etag: true }, errors: [400, 404, 412, 422, 428, 503], ifMatch: 'required' },
  { method: 'delete', path: '/providers/{id}', summary: 'Remove provider', tag: 'providers', ok: { status: 204 }, errors: [404, 409, 412, 428], ifMatch: 'required' },
  { method: 'post', path: '/keys', summary: 'Create an API key (the whole key is in this answer only; never broader than the caller)', tag: 'keys', body: 'KeyCreate', ok: { status: 201, schema: 'Key' }, errors: [400, 403, 422] },
  { method: 'get', path: '/keys', summary: 'List API keys of the caller\'s team (newest first; never secrets)', tag: 'keys', ok: { status: 200, schema: 'Key', page: true }, errors: [400],
    query: [{ name: 'team', schema: { type: 'string' }, description: 'Only this team (admin).' }, { name: 'owner', schema: { type: 'string' }, description: 'Only this owner.' },
      { name: 'role', schema: { type: 'string' }, description: 'Only this role.' }, { name: 'status', schema: { enum: ['active', 'rotating', 'expired', 'revoked'] }, description: 'Only this status.' }, ...page] },
  { method: 'get', path: '/keys/{id}', summary: 'Get an API key', tag: 'keys', ok: { status: 200, schema: 'Key' }, errors: [404] },
  { method: 'patch', path: '/keys/{id}', summary: 'Change an API key (role, team, scopes, limits, budgets: admin only)', tag: 'keys', body: 'KeyUpdate', ok: { status: 200, schema: 'Key' }, errors: [400, 403, 404, 422] },
  { method: 'delete', path: '/keys/{id}', summary: 'Revoke an API key (every instance within a second)', tag: 'keys', ok: { status: 204 }, errors: [403, 404] },
  { method: 'post', path: '/keys/{id}/rotate', summary: 'Rotate: a new key with the same powers; the old one works until the overlap ends', tag: 'keys', body: 'KeyRotate', bodyOptional: true, ok: { status: 201, schema: 'KeyRotated' }, errors: [400, 403, 404, 409, 422] },
  { method: 'get', path: '/audit', summary: 'The audit log (newest first): changes, refused requests, reloads', tag: 'audit', ok: { status: 200, schema: 'AuditEntry', page: true }, errors: [400],
    query: [{ name: 'actor', schema: { type: 'string' }, description: 'Key id, `bootstrap`, `system` or `key:<prefix>`.' }, { name: 'action', schema: { type: 'string' }, description: 'Exact, or a prefix ending in `*`.' },
      { name: 'object_type', schema: { type: 'string' }, description: 'Only this object type.' }, { name: 'object_id', schema: { type: 'string' }, description: 'Only this object.' },
      { name: 'team', schema: { type: 'string' }, description: 'Only this team (admin).' }, { name: 'from', schema: { type: 'string', format: 'date-time' }, description: 'From this instant (inclusive).' },
      { name: 'to', schema: { type: 'string', format: 'date-time' }, description: 'Before this instant.' }, ...page] },
  { method: 'get', path: '/openapi.json', summary: 'This document', tag: 'meta', ok: { status: 200 }, errors: [] },
  { method: 'get', path: '/config', summary: 'The running configuration (secrets redacted), generation and last reload', tag: 'config', ok: { status: 200 }, errors: [] },
  { method: 'post', path: '/config/reload', summary: 'Reload the configuration (a rejected one keeps the running one)', tag: 'config', ok: { status: 200 }, errors: [400] },
  { method: 'get', path: '/targets', summary: 'Routing targets: breaker state, health, in-flight, latency, error rate (docs/routing.md)', tag: 'targets', ok: { status: 200 }, errors: [] },
  { method: 'get', path: '/targets/{provider}/{model}', summary: 'One routing target', tag: 'targets', ok: { status: 200 }, errors: [404] },
  { method: 'post', path: '/targets/{provider}/{model}/breaker', summary: 'Force a target\'s breaker open or closed, back to automatic, or reset it (audited)', tag: 'targets', body: 'TargetBreaker', ok: { status: 200 }, errors: [400, 404] },
  { method: 'get', path: '/executions', summary: 'Execution logs (newest first; without bodies; docs/execution-logs.md)', tag: 'executions', ok: { status: 200 }, errors: [400, 503],
    query: [...['deployment_id', 'key_id', 'prompt_version_id', 'provider', 'model', 'status', 'request_id', 'upstream_request_id'].map((name) => ({ name, schema: { type: 'string' }, description: 'Exact match.' })),
      { name: 'from', schema: { type: 'string', format: 'date-time' }, description: 'From this instant (inclusive).' }, { name: 'to', schema: { type: 'string', format: 'date-time' }, description: 'Before this instant.' }, ...page] },
  { method: 'get', path: '/executions/{id}', summary: 'One execution with its bodies, by row id (the execution_id execute answers) or request id', tag: 'executions', ok: { status: 200 }, errors: [404, 503] },
  { method: 'get', path: '/usage', summary: 'Usage totals per bucket and dimension, JSON or CSV (docs/cost.md)', tag: 'usage', ok: { status: 200 }, errors: [400, 503], query: usageQuery },
  { method: 'get', path: '/usage/export', summary: 'Usage for billing, as a download (CSV by default, or JSON; docs/cost.md)', tag: 'usage', ok: { status: 200 }, errors: [400, 503], query: usageQuery },
  { method: 'get', path: '/budgets', summary: 'Budgets, configured and each API key\'s own, with spend, reservations and what remains (docs/budgets.md)', tag: 'budgets', ok: { status: 200 }, errors: [],
    query: [{ name: 'budget', schema: { type: 'string' }, description: 'Only this budget.' }] },
  { method: 'get', path: '/instances', summary: 'The gateway instances sharing this database (heartbeats): configuration hash, Redis, limits kept per instance', tag: 'instances', ok: { status: 200 }, errors: [] },
  { method: 'get', path: '/alerts', summary: 'Fired alerts (newest first)', tag: 'alerts', ok: { status: 200 }, errors: [400],
    query: [{ name: 'limit', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, description: 'How many.' }] },
]

/** The operations among `ops` that a server with these routes (`METHOD /api/v1/mcp/...`, AdminServer.routes()) serves. */
export function servedOperations(routes: readonly string[], ops: readonly Operation[] = OPERATIONS): Operation[] {
  const served = new Set(routes)
  return ops.filter((op) => served.has(`${op.method.toUpperCase()} /api/v1/mcp${op.path}`))
}

const ref = (name: string): JSONSchema => ({ $ref: `#/components/schemas/${name}` })

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid body or query; `error.param` names the field', 401: 'Missing or invalid key', 403: 'The key\'s role or scopes do not allow it (docs/rbac.md)', 404: 'Unknown id (or another team\'s)',
  409: 'Conflict with existing state', 412: 'If-Match does not match the current ETag', 422: 'Semantically invalid (the message names the field)',
  413: 'Body larger than the limit', 415: 'Content-Type is not application/json', 428: 'If-Match required', 502: 'Provider error', 503: 'Database (or master key) unavailable',
  402: 'A budget is exhausted (`budget_exceeded`, docs/budgets.md)', 429: 'Rate limited (the key\'s, team\'s or route\'s limits, docs/rate-limit.md): `Retry-After` says when to retry',
  504: 'The provider did not answer in time',
}

/** Path templates with `{id}` stay as they are (OpenAPI's own syntax). */
export function buildOpenApi(ops: readonly Operation[] = OPERATIONS): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const op of ops) {
    const params: unknown[] = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }))
    for (const q of op.query ?? []) params.push({ name: q.name, in: 'query', required: false, schema: q.schema, description: q.description })
    if (op.ifMatch) params.push({ name: 'If-Match', in: 'header', required: op.ifMatch === 'required', schema: { type: 'string' }, description: 'The ETag from the last read (`*`: unconditional).' })
    const okSchema = op.ok.schema === undefined ? undefined : op.ok.page ? s.pageOf(ref(op.ok.schema)) : ref(op.ok.schema)
    const okContent: Record<string, unknown> = {}
    if (okSchema) okContent['application/json'] = { schema: okSchema }
    if (op.stream) okContent['text/event-stream'] = { schema: { type: 'string', description: 'chat.completion.chunk events, a final chunk with `execution`, then [DONE].' } }
    const ok: Record<string, unknown> = { description: op.summary }
    if (Object.keys(okContent).length > 0) ok['content'] = okContent
    if (op.ok.etag) ok['headers'] = { ETag: { schema: { type: 'string' }, description: 'Quoted revision.' } }
    const responses: Record<string, unknown> = { [String(op.ok.status)]: ok }
    if (op.ok.also !== undefined) responses[String(op.ok.also)] = ok
    if (op.method === 'get' && op.ok.etag) {
      params.push({ name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' }, description: 'An ETag from an earlier read: 304 while it is current.' })
      responses['304'] = { description: 'Not modified: If-None-Match holds the current ETag', headers: { ETag: { schema: { type: 'string' }, description: 'Quoted revision.' } } }
    }
    // Every operation with a body reads it as the others do: over the limit 413, another media type 415.
    for (const e of [401, 403, ...op.errors, ...(op.body ? [413, 415] : [])]) responses[String(e)] = { description: STATUS_TEXT[e] ?? 'Error', content: { 'application/json': { schema: ref('Error') } } }
    const operation: Record<string, unknown> = { summary: op.summary, tags: [op.tag], operationId: `${op.method}${op.path.replace(/[{}]/g, '').split('/').map((x) => x.charAt(0).toUpperCase() + x.slice(1)).join('')}`, responses }
    if (params.length > 0) operation['parameters'] = params
    if (op.body) operation['requestBody'] = { required: !op.bodyOptional, content: { 'application/json': { schema: ref(op.body) } } }
    ;(paths[op.path] ??= {})[op.method] = operation
  }
  return {
    openapi: '3.1.0',
    info: { title: 'MCP management API', version: '1', description: 'Prompts, deployments, providers and execution on the admin port. Errors: docs/errors.md.' },
    servers: [{ url: '/api/v1/mcp' }],
    security: [{ bearer: [] }],
    paths,
    components: { schemas: COMPONENTS, securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'The admin key (MCP_ADMIN_KEY) or an API key whose role allows the operation (docs/rbac.md).' } } },
  }
}
