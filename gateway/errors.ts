/**
 * The one table of gateway error codes. Every error the gateway answers with is a code from here:
 * its HTTP status, its OpenAI-style `type`, and a message template with `{name}` placeholders.
 * `docs/errors.md` lists exactly these codes (checked by test/integration/errors-doc.test.ts).
 */

export interface ErrorSpec {
  readonly status: number
  readonly type: string
  readonly message: string
}

function spec(status: number, type: string, message: string): ErrorSpec {
  return { status, type, message }
}

export const ERRORS = {
  // REQ: the client's request is wrong
  MCP_ERR_REQ_NOT_FOUND: spec(404, 'invalid_request_error', 'No route for {method} {path}'),
  MCP_ERR_REQ_METHOD_NOT_ALLOWED: spec(405, 'invalid_request_error', 'Method {method} is not allowed on {path}'),
  MCP_ERR_REQ_BODY_TOO_LARGE: spec(413, 'invalid_request_error', 'Request body exceeds the limit of {limit} bytes'),
  MCP_ERR_REQ_HEADERS_TOO_LARGE: spec(431, 'invalid_request_error', 'Request headers are too large'),
  MCP_ERR_REQ_CONTENT_TYPE: spec(415, 'invalid_request_error', 'Content-Type must be application/json, got {contentType}'),
  MCP_ERR_REQ_CONTENT_ENCODING: spec(415, 'invalid_request_error', 'Content-Encoding {encoding} is not supported (supported: {supported})'),
  MCP_ERR_REQ_BODY_ENCODING: spec(400, 'invalid_request_error', 'Request body could not be decoded as {encoding}: {reason}'),
  MCP_ERR_REQ_JSON_INVALID: spec(400, 'invalid_request_error', 'Request body is not valid JSON: {reason}'),
  MCP_ERR_REQ_BODY_INVALID: spec(400, 'invalid_request_error', 'Invalid request body: {reason}'),
  MCP_ERR_REQ_QUERY_INVALID: spec(400, 'invalid_request_error', 'Invalid query parameter: {reason}'),
  MCP_ERR_REQ_PARAM_UNSUPPORTED: spec(400, 'invalid_request_error', "Parameter '{param}' is not supported by provider {provider}"),
  MCP_ERR_REQ_TIMEOUT: spec(408, 'invalid_request_error', 'The request was not received in time'),
  MCP_ERR_REQ_ABORTED: spec(499, 'invalid_request_error', 'The client closed the request'),
  MCP_ERR_REQ_EXPECTATION_FAILED: spec(417, 'invalid_request_error', 'Expect: {expect} is not supported (only 100-continue)'),
  // CLIENT: limits per client address, enforced by the listener before the pipeline
  MCP_ERR_CLIENT_TOO_MANY_CONNECTIONS: spec(429, 'rate_limit_error', 'Too many open connections from this address (limit {limit})'),
  MCP_ERR_CLIENT_RATE_LIMITED: spec(429, 'rate_limit_error', 'Too many requests from this address; retry in {retryAfter} s'),
  MCP_ERR_CLIENT_AUTH_BLOCKED: spec(429, 'rate_limit_error', 'Too many failed authentications from this address; retry in {retryAfter} s'),
  // AUTH
  MCP_ERR_AUTH_MISSING: spec(401, 'authentication_error', 'Missing API key: send Authorization: Bearer <key>, x-api-key or api-key'),
  MCP_ERR_AUTH_INVALID: spec(401, 'authentication_error', 'Invalid API key'),
  MCP_ERR_AUTH_FORBIDDEN: spec(403, 'permission_error', 'This key may not {action}'),
  // ROUTE
  MCP_ERR_ROUTE_MODEL_MISSING: spec(400, 'invalid_request_error', "Request has no 'model'"),
  MCP_ERR_ROUTE_MODEL_NOT_FOUND: spec(404, 'invalid_request_error', "The model '{model}' does not exist or is not configured"),
  MCP_ERR_ROUTE_PROVIDER_NOT_FOUND: spec(404, 'invalid_request_error', "No provider named '{provider}' is configured"),
  MCP_ERR_ROUTE_OPERATION_UNSUPPORTED: spec(400, 'invalid_request_error', 'Provider {provider} does not support {operation}'),
  // LIMIT: rate limits (plugins/rate-limit)
  MCP_ERR_LIMIT_RATE: spec(429, 'rate_limit_error', 'Rate limit exceeded: {limit} allows {count} {unit}; retry after {retryAfter} s'),
  MCP_ERR_LIMIT_CONCURRENCY: spec(429, 'rate_limit_error', 'Too many concurrent requests: {limit} allows {count} at once'),
  MCP_ERR_LIMIT_BACKEND_UNAVAILABLE: spec(503, 'api_error', 'Rate limits cannot be checked right now (their backend is unavailable) and this gateway refuses requests until they can'),
  // BUDGET: budgets and quotas (plugins/budget, docs/budgets.md)
  MCP_ERR_BUDGET_EXCEEDED: spec(402, 'insufficient_quota', "Budget '{budget}'{who} is exhausted ({unit}) for this {period}; it resets at {reset}"),
  MCP_ERR_BUDGET_UNAVAILABLE: spec(503, 'api_error', 'Budgets cannot be checked right now (their backend is unavailable) and this gateway refuses requests until they can'),
  // UPSTREAM
  MCP_ERR_UPSTREAM_CONNECT: spec(502, 'api_error', 'Could not connect to provider {provider}: {reason}'),
  MCP_ERR_UPSTREAM_TIMEOUT: spec(504, 'api_error', 'Provider {provider} did not answer in time ({phase})'),
  MCP_ERR_UPSTREAM_RESET: spec(502, 'api_error', 'Provider {provider} closed the connection: {reason}'),
  MCP_ERR_UPSTREAM_BAD_RESPONSE: spec(502, 'api_error', 'Provider {provider} sent a response the gateway cannot read: {reason}'),
  MCP_ERR_UPSTREAM_ERROR: spec(502, 'api_error', 'Provider {provider} answered {status}: {reason}'),
  MCP_ERR_UPSTREAM_STREAM_INTERRUPTED: spec(502, 'api_error', 'The stream from provider {provider} was interrupted: {reason}'),
  MCP_ERR_UPSTREAM_UNAVAILABLE: spec(503, 'api_error', 'No provider is available for {model}'),
  MCP_ERR_UPSTREAM_ADDRESS_BLOCKED: spec(502, 'api_error', 'The egress policy refused the connection to {host}: {reason}'),
  // CONFIG / PLUGIN
  MCP_ERR_CONFIG_INVALID: spec(400, 'invalid_request_error', 'Configuration rejected: {reason}'),
  MCP_ERR_PLUGIN_UNKNOWN: spec(400, 'invalid_request_error', "Unknown plugin '{plugin}'"),
  MCP_ERR_PLUGIN_CONFIG_INVALID: spec(400, 'invalid_request_error', "Invalid config for plugin '{plugin}': {reason}"),
  // ADMIN: the management API (admin port, /api/v1/mcp/*)
  MCP_ERR_ADMIN_NOT_FOUND: spec(404, 'invalid_request_error', '{object} {id} does not exist'),
  MCP_ERR_ADMIN_QUERY_INVALID: spec(400, 'invalid_request_error', 'Invalid query parameter: {reason}'),
  MCP_ERR_ADMIN_CONFLICT: spec(409, 'invalid_request_error', '{reason}'),
  MCP_ERR_ADMIN_PRECONDITION_FAILED: spec(412, 'invalid_request_error', 'If-Match {given} does not match the current ETag {current} of {object}'),
  MCP_ERR_ADMIN_UNPROCESSABLE: spec(422, 'invalid_request_error', '{reason}'),
  MCP_ERR_ADMIN_PRECONDITION_REQUIRED: spec(428, 'invalid_request_error', '{method} of {object} needs an If-Match header with its ETag (GET it first)'),
  MCP_ERR_ADMIN_FIELD_FORBIDDEN: spec(403, 'permission_error', 'This key may not set {field}: {reason}'),
  MCP_ERR_ADMIN_FIELD_READ_ONLY: spec(422, 'invalid_request_error', '{field} is read-only: {reason}'),
  MCP_ERR_ADMIN_MASTER_KEY_MISSING: spec(503, 'api_error', 'Provider credentials cannot be stored: no master key is configured (MCP_MASTER_KEY)'),
  // STORE
  MCP_ERR_STORE_UNAVAILABLE: spec(503, 'api_error', 'The database is unavailable: management requests are refused until it is back; the data plane keeps serving'),
  // EXEC: POST /api/v1/mcp/execute
  MCP_ERR_EXEC_DEPLOYMENT_NOT_FOUND: spec(404, 'invalid_request_error', 'No deployment {ref}'),
  MCP_ERR_EXEC_DEPLOYMENT_INACTIVE: spec(409, 'invalid_request_error', 'Deployment {id} is {status}'),
  MCP_ERR_EXEC_VARIABLES_INVALID: spec(422, 'invalid_request_error', 'Template variables rejected: {reason}'),
  // SERVER
  MCP_ERR_SERVER_DRAINING: spec(503, 'api_error', 'The gateway is shutting down'),
  MCP_ERR_SERVER_OVERLOADED: spec(503, 'api_error', 'The gateway is overloaded; retry later'),
  MCP_ERR_INTERNAL: spec(500, 'api_error', 'Internal gateway error (request {requestId})'),
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERRORS

export type ErrorParams = Readonly<Record<string, string | number>>

export function formatMessage(code: ErrorCode, params: ErrorParams = {}): string {
  return ERRORS[code].message.replace(/\{(\w+)\}/g, (_m, k: string) => (k in params ? String(params[k]) : `{${k}}`))
}

/** An error the gateway raises on purpose. Expected outcomes travel as LocalReply instead. */
export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly type: string
  /** Machine-readable reason for logs and metrics, e.g. 'auth.invalid_key'. */
  readonly details: string
  /** OpenAI-style `param`, when one parameter is at fault. */
  readonly param: string | null
  /** A provider's own error code, kept when translating upstream errors. */
  readonly providerCode: string | null
  readonly headers: Readonly<Record<string, string>> | undefined

  constructor(
    code: ErrorCode,
    params: ErrorParams = {},
    opts: {
      details?: string
      param?: string | null
      providerCode?: string | null
      status?: number
      message?: string
      type?: string
      headers?: Record<string, string>
      cause?: unknown
    } = {},
  ) {
    super(opts.message ?? formatMessage(code, params), opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'GatewayError'
    this.code = code
    this.status = opts.status ?? ERRORS[code].status
    this.type = opts.type ?? ERRORS[code].type
    this.details = opts.details ?? code.slice('MCP_ERR_'.length).toLowerCase()
    this.param = opts.param ?? null
    this.providerCode = opts.providerCode ?? null
    this.headers = opts.headers
  }
}

/** The same error with other details or headers (everything else kept: code, status, type, message, param, provider code). */
export function changedError(g: GatewayError, change: { details?: string; headers?: Record<string, string> }): GatewayError {
  const headers = change.headers ?? g.headers
  return new GatewayError(g.code, {}, {
    message: g.message, status: g.status, type: g.type, details: change.details ?? g.details, param: g.param, providerCode: g.providerCode,
    ...(headers !== undefined ? { headers: { ...headers } } : {}), cause: g.cause,
  })
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError
}
