/**
 * POST /api/v1/mcp/execute as a data-plane route: the body names a deployment, the deployed version is picked by
 * the traffic weights, its template rendered with the caller's variables, and the result becomes a canonical chat
 * request that runs through the same pipeline as /v1/chat/completions (auth, limits, routing, fallbacks,
 * metering). Everything is read from the control plane's in-memory snapshot: the request never waits on the
 * database.
 *
 * Parameters, later wins: the version's `params` < the deployment's `config.parameters` < the call's `parameters`.
 * Variables: the deployment's `config.default_variables` < the call's `variables`.
 */
import { GatewayError } from '../gateway/errors.ts'
import type { RequestCtx } from '../gateway/context.ts'
import type { RouteSpec } from '../gateway/handler.ts'
import type { ChatRequest } from '../providers/types.ts'
import { scopeRefusal, type Principal } from '../plugins/auth/scopes.ts'
import { executeInbound } from './execute-inbound.ts'
import { validators, type ExecuteBody } from './schemas.ts'
import { pickVersion, promptEnvKey, type Snapshot, type SnapshotDeployment, type SnapshotVersion } from './snapshot.ts'
import { renderTemplate, TemplateTooLargeError, TemplateVariablesError } from './template.ts'
import { toolChoiceProblem } from './tool-choice.ts'

/**
 * Which deployment and version served a request; the execution log records it. Set as soon as the deployment is
 * identified, so a refused execute (409 paused, 422 variables, 400 tool_choice) is recorded with its deployment too;
 * the version is null until one is picked.
 */
export interface ExecutionSlot {
  /**
   * The id of this execution's row in the execution log (its `id` column: the request's generated UUIDv7, which the
   * execution-log plugin uses as the row id). Unique per call, whatever request id the client sent.
   */
  executionId: string
  deploymentId: string
  promptId: string
  promptVersionId: string | null
  version: number | null
  environment: string
  /** Traffic label of the chosen version ('canary', ...), when the deployment splits traffic. */
  label: string | null
  /** The deployment's team (its prompt's); the auth plugin keeps team-bound keys to their team's deployments. */
  team?: string | null
}

declare module '../gateway/context.ts' {
  interface CtxSlots {
    execution: ExecutionSlot
  }
}

export const EXECUTE_ROUTE_KEY = 'POST /api/v1/mcp/execute'

function bodyError(reasons: readonly string[]): GatewayError {
  const first = reasons[0] ?? '(root): invalid'
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: reasons.slice(0, 5).join('; ') }, { param: first.split(':', 1)[0]!, details: 'request.body_invalid' })
}

/**
 * Whether the caller may know of the deployment: a team-bound key (the auth plugin's principal) sees its own team's
 * only. Checked before anything else is read from the deployment (its status, its template's variables), so another
 * team's deployment answers exactly as a missing one; the auth plugin applies the same rule again after the body.
 */
function visibleTo(ctx: RequestCtx, d: SnapshotDeployment): boolean {
  const p = ctx.slots.principal
  return p === undefined || p.role === 'admin' || d.team === (p.team ?? null)
}

/**
 * A key scoped to other deployments or environments is refused (403, as the auth plugin refuses it after the body)
 * before anything is read from the deployment: its status and its template's variable names are not the key's to see.
 * The model scope is the auth plugin's, once the model is resolved.
 */
function checkScopes(ctx: RequestCtx, d: SnapshotDeployment): void {
  // The auth plugin's principal (plugins/auth Principal) when it is in the chain.
  const scopes = (ctx.slots.principal as Principal | undefined)?.scopes
  if (!scopes || (scopes.deployments === null && scopes.environments === null)) return
  const refusal = scopeRefusal(scopes, { model: '', isAlias: false, deploymentId: d.id, environment: d.environment })
  if (refusal) throw new GatewayError('MCP_ERR_AUTH_FORBIDDEN', { action: refusal.action }, { param: refusal.param, details: 'auth.out_of_scope' })
}

/**
 * Environments are the configured set, matched exactly as configured (as prompt names are: case-sensitive), so one
 * outside it is a 400 naming it and listing the set (with the configured spelling when only the case differs),
 * rather than a 404 that reads as if the prompt were not deployed.
 */
function checkEnvironment(env: string, environments: readonly string[]): void {
  if (environments.includes(env)) return
  const shown = JSON.stringify(env.slice(0, 50))
  const near = environments.find((e) => e.toLowerCase() === env.toLowerCase())
  const hint = near === undefined ? '' : `; names are case-sensitive: did you mean ${JSON.stringify(near)}?`
  throw bodyError([`environment: unknown environment ${shown} (environments: ${environments.join(', ')})${hint}`])
}

const UUID_REF = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function findDeployment(s: Snapshot, environments: readonly string[], body: ExecuteBody, ctx: RequestCtx): SnapshotDeployment {
  if (body.deployment_id !== undefined) {
    if (body.prompt !== undefined || body.environment !== undefined) throw bodyError(['deployment_id: give deployment_id, or prompt and environment, not both'])
    const found = s.deployments.get(body.deployment_id.toLowerCase())
    const d = found && visibleTo(ctx, found) ? found : undefined
    if (!d) throw new GatewayError('MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND', { ref: JSON.stringify(body.deployment_id.slice(0, 100)) }, { param: 'deployment_id', details: 'execute.deployment_not_found' })
    return d
  }
  if (body.prompt === undefined) throw bodyError(['deployment_id: is required (or prompt and environment)'])
  if (body.environment === undefined) throw bodyError(['environment: is required with prompt'])
  checkEnvironment(body.environment, environments)
  // A prompt id in upper case finds its prompt (ids are stored lower case); a name is matched exactly, as names are
  // stored, unique and listed: 'GREETING' is not 'Greeting' (and both may exist).
  const byRef = s.byPromptEnv.get(promptEnvKey(body.prompt, body.environment))
  const found = byRef ?? (UUID_REF.test(body.prompt) ? s.byPromptEnv.get(promptEnvKey(body.prompt.toLowerCase(), body.environment)) : undefined)
  const d = found && visibleTo(ctx, found) ? found : undefined
  if (!d) {
    throw new GatewayError('MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND', { ref: `of prompt ${JSON.stringify(body.prompt.slice(0, 100))} in ${JSON.stringify(body.environment.slice(0, 50))}` }, { param: 'prompt', details: 'execute.deployment_not_found' })
  }
  return d
}

function variablesError(reason: string, param: string): GatewayError {
  return new GatewayError('MCP_ERR_EXEC_VARIABLES_INVALID', { reason }, { param, details: 'execute.variables_invalid' })
}

/**
 * Renders the version's messages; 422 naming every missing, unknown or schema-rejected variable. `known`: the names
 * the deployment accepts (its live versions' together, so that a canary's new variable is not unknown to the stable
 * version); by default the version's own.
 */
export function renderVersion(v: SnapshotVersion, vars: Record<string, unknown>, supplied: ReadonlySet<string>, known?: ReadonlySet<string>): ChatRequest['messages'] {
  const unknown = [...supplied].filter((k) => (known ? !known.has(k) : !v.template.roots.has(k) && !v.declared.has(k)))
  if (v.variables) {
    const copy = structuredClone(vars)
    if (!v.variables(copy)) {
      const errs = v.variables.errors('variables')
      throw variablesError(errs.slice(0, 5).join('; '), errs[0]?.split(':', 1)[0] ?? 'variables')
    }
    vars = copy
  }
  let missing: readonly string[] = []
  let messages: ChatRequest['messages'] = []
  try {
    messages = renderTemplate(v.template, vars)
  } catch (e) {
    if (e instanceof TemplateTooLargeError) throw variablesError(`${e.message}: the variables repeat in the template more than a prompt can hold`, 'variables')
    if (!(e instanceof TemplateVariablesError)) throw e
    missing = e.missing
  }
  if (missing.length > 0 || unknown.length > 0) {
    const parts: string[] = []
    if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`)
    if (unknown.length > 0) parts.push(`unknown ${unknown.join(', ')} (the template uses: ${[...v.template.roots].join(', ') || 'none'})`)
    throw variablesError(parts.join('; '), `variables.${missing[0] ?? unknown[0]}`)
  }
  return messages
}

/** `environments`: the control plane's, in promotion order. */
export function executeRouteSpec(snapshot: () => Snapshot, environments: readonly string[]): RouteSpec {
  return {
    route: 'execute',
    inbound: executeInbound,
    parse(json, ctx) {
      if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bodyError(['(root): must be a JSON object'])
      if (!validators.execute(json)) throw bodyError(validators.execute.errors())
      const body = json
      const d = findDeployment(snapshot(), environments, body, ctx)
      // From here a refusal is this deployment's: its row records the deployment (and the version once picked).
      const execution: ExecutionSlot = {
        executionId: ctx.generatedId,
        deploymentId: d.id,
        promptId: d.promptId,
        promptVersionId: null,
        version: null,
        environment: d.environment,
        label: null,
        team: d.team,
      }
      ctx.slots.execution = execution
      checkScopes(ctx, d)
      ctx.responseHeaders['x-mcp-execution-id'] = execution.executionId
      ctx.responseHeaders['x-mcp-deployment-id'] = d.id
      if (d.status !== 'active') throw new GatewayError('MCP_ERR_EXEC_DEPLOYMENT_INACTIVE', { id: d.id, status: d.status }, { details: 'execute.deployment_inactive' })
      const slice = pickVersion(d)
      const v = slice.version
      execution.promptVersionId = v.id
      execution.version = v.version
      execution.label = d.traffic.length > 1 ? slice.label : null
      const supplied = new Set(Object.keys(body.variables ?? {}))
      const vars = { ...(d.config.default_variables ?? {}), ...(body.variables ?? {}) }
      const messages = renderVersion(v, vars, supplied, d.variableNames)
      const stream = body.stream === true
      const model = d.config.model ?? v.model ?? ''
      const choiceProblem = body.parameters?.tool_choice !== undefined ? toolChoiceProblem(body.parameters.tool_choice, v.tools) : undefined
      if (choiceProblem) throw bodyError([`parameters.tool_choice: ${choiceProblem} (version ${v.version})`])
      const chat: ChatRequest = { ...v.params, ...(d.config.parameters ?? {}), ...(body.parameters ?? {}), model, messages }
      if (v.tools) chat.tools = structuredClone(v.tools) as ChatRequest['tools'] & object
      if (v.responseFormat) chat.response_format = structuredClone(v.responseFormat) as ChatRequest['response_format'] & object
      if (stream) {
        chat.stream = true
        // Usage is reported in the final execution event, so it is always asked for upstream.
        chat.stream_options = { include_usage: true }
      }
      ctx.chat = chat
      ctx.requestedModel = model
      ctx.stream = stream
      ctx.includeUsage = false
      ctx.responseHeaders['x-mcp-prompt-version-id'] = v.id
      ctx.responseHeaders['x-mcp-prompt-version'] = String(v.version)
    },
  }
}
