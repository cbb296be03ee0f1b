import type { JSONSchema } from '../../gateway/validate.ts'

export type Capture = 'full' | 'metadata' | 'none'

export interface ExecutionLogConfig {
  /**
   * Required of io plugins. The hook never waits: it hands the row to the writer synchronously, and database writes
   * are bounded by the writer's own write timeout (MCP_EXECUTION_LOG_WRITE_TIMEOUT_MS). Kept for the contract.
   */
  timeoutMs: number
  /**
   * When the sink cannot take rows (its queue is full and the spool cannot absorb them):
   * 'open' keeps serving and counts the lost rows (mcp_execution_log_rows_total{outcome="dropped"});
   * 'closed' refuses new requests with 503 until it can. A database outage alone is not "unavailable": rows spool.
   */
  failMode: 'open' | 'closed'
  /** 'full': the canonical request body (redacted, capped); 'metadata': its parameters and counts, no content; 'none'. */
  storeRequest: Capture
  /**
   * 'full' and 'metadata' store status, finish reason, usage and error; the gateway does not keep answer bodies,
   * so 'full' adds nothing yet. 'none' leaves the column NULL.
   */
  storeResponse: Capture
  /**
   * A request body whose JSON text (UTF-8 bytes, as stored: escapes included) is larger than this is stored as
   * {truncated, bytes, sha256, head}.
   */
  maxRequestBytes: number
  maxResponseBytes: number
  /** JSON keys (exact names, at any depth) whose values are replaced by "[redacted]" in stored bodies. */
  redactFields: string[]
}

export const executionLogConfigSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    timeoutMs: { type: 'integer', minimum: 1, default: 1000 },
    failMode: { enum: ['open', 'closed'], default: 'open' },
    storeRequest: { enum: ['full', 'metadata', 'none'], default: 'full' },
    storeResponse: { enum: ['full', 'metadata', 'none'], default: 'metadata' },
    maxRequestBytes: { type: 'integer', minimum: 256, default: 65536 },
    maxResponseBytes: { type: 'integer', minimum: 256, default: 65536 },
    redactFields: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: ['api_key', 'apiKey', 'authorization', 'password', 'secret', 'access_token', 'refresh_token'],
    },
  },
}
