/**
 * Settings: read from node-config (config/*.yaml, NODE_CONFIG_DIR, NODE_CONFIG, and the MCP_*
 * environment variables of custom-environment-variables.yaml), validated once, deep-frozen.
 * Every reload reads the files afresh through node-config's Load, never the cached singleton.
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import { Load } from 'config/lib/util.js'
import { describeFault, fileFault, json5Fault, jsonFault, type SyntaxFault } from './config-syntax.ts'
import { GatewayError } from './errors.ts'
import { redactUrl } from './redact-url.ts'
import type { AliasSettings, RoutingSettings } from './routing/config.ts'
import { aliasSchema, routingSchema } from './routing/config.ts'
import { compileSchema, type JSONSchema } from './validate.ts'
import { DEFAULT_PGLITE_SHARED_BUFFERS, PGLITE_MEMORY_PATTERN } from '../store/types.ts'
import { tracingSchema, type TracingSettings } from './tracing.ts'
import { alertsConfigErrors, alertsConfigSchema, type AlertsConfig } from './alerts/config.ts'
import { usageSettingsErrors, usageSettingsSchema, type UsageSettings } from './cost/usage-settings.ts'
import { checkHardeningSettings, limitsSchema, securitySchema, sheddingSchema, tlsSchema, type LimitSettings, type SecuritySettings, type SheddingSettings, type TlsSettings } from './hardening/config.ts'

export type PluginRef = string | { name: string; config?: Record<string, unknown> }

export interface RouteSettings {
  chain?: string
  plugins?: PluginRef[]
}

export interface Settings {
  server: {
    host: string; port: number; bodyLimitBytes: number; maxHeaderSize: number; headersTimeoutMs: number
    requestTimeoutMs: number; keepAliveTimeoutMs: number; maxRequestsPerSocket: number; shutdownDeadlineMs: number
    requestDeadlineMs: number
    limits: LimitSettings; shedding: SheddingSettings; tls?: TlsSettings
  }
  admin: { host: string; port: number; key?: string; tls?: TlsSettings }
  log: { level: string }
  dataDir: string
  databaseUrl?: string
  /** The embedded store (PGlite, when no databaseUrl): its PostgreSQL shared_buffers, e.g. '16MB'. Read at start. */
  pglite: { sharedBuffers: string }
  redisUrl?: string
  upstream: { connections: number; keepAliveTimeoutMs: number; connectTimeoutMs: number; caFile?: string }
  security: SecuritySettings
  reload: { watch: boolean; debounceMs: number; drainTimeoutMs: number }
  plugins: Record<string, Record<string, unknown>>
  chains: Record<string, PluginRef[]>
  routes: Record<string, RouteSettings>
  providers: Record<string, Record<string, unknown> & { type: string }>
  /** Provider used when a request's model has no `<provider>/` prefix. */
  defaultProvider?: string
  /** Model aliases: targets, strategy, retries and fallbacks. */
  models: Record<string, AliasSettings>
  routing: RoutingSettings
  /** GET /v1/models for providers without `models`: how long their discovered list is cached, how long asking may take. */
  modelList: { cacheTtlMs: number; timeoutMs: number }
  telemetry: { tracing: TracingSettings }
  /** Alert rules and webhooks (budgets, error rate, provider down). */
  alerts: AlertsConfig
  /** Usage rollups and the billing export webhook. */
  usage: UsageSettings
  /** Execution logs: days kept (daily partitions are dropped past it). */
  executionLogs: { retentionDays: number }
}

const int = (min: number, def?: number): JSONSchema => (def === undefined ? { type: 'integer', minimum: min } : { type: 'integer', minimum: min, default: def })
const pluginRef: JSONSchema = {
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string' }, config: { type: 'object' } } },
  ],
}

export const ROUTE_NAMES = ['chat', 'embeddings', 'models', 'messages', 'count_tokens', 'execute'] as const

const settingsSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['server', 'admin', 'log', 'dataDir', 'upstream', 'reload', 'plugins', 'chains', 'routes', 'providers'],
  properties: {
    server: {
      type: 'object', additionalProperties: false,
      properties: {
        host: { type: 'string', default: '0.0.0.0' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        bodyLimitBytes: int(1, 10 * 1024 * 1024),
        maxHeaderSize: int(1024, 16384),
        headersTimeoutMs: int(1, 10_000),
        requestTimeoutMs: int(1, 300_000),
        keepAliveTimeoutMs: int(1, 65_000),
        maxRequestsPerSocket: int(0, 0),
        shutdownDeadlineMs: int(0, 30_000),
        requestDeadlineMs: int(1, 600_000),
        limits: limitsSchema,
        shedding: sheddingSchema,
        tls: tlsSchema,
      },
    },
    admin: {
      type: 'object', additionalProperties: false,
      properties: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8081 },
        key: { type: 'string' },
        tls: tlsSchema,
      },
    },
    log: { type: 'object', additionalProperties: false, properties: { level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info' } } },
    dataDir: { type: 'string', minLength: 1 },
    databaseUrl: { type: 'string' },
    pglite: {
      type: 'object', additionalProperties: false, default: {},
      properties: { sharedBuffers: { type: 'string', pattern: PGLITE_MEMORY_PATTERN, default: DEFAULT_PGLITE_SHARED_BUFFERS } },
    },
    redisUrl: { type: 'string' },
    upstream: {
      type: 'object', additionalProperties: false,
      properties: { connections: int(1, 256), keepAliveTimeoutMs: int(1, 30_000), connectTimeoutMs: int(1, 10_000), caFile: { type: 'string', minLength: 1 } },
    },
    reload: {
      type: 'object', additionalProperties: false,
      properties: { watch: { type: 'boolean', default: true }, debounceMs: int(0, 250), drainTimeoutMs: int(0, 600_000) },
    },
    plugins: { type: 'object', additionalProperties: { type: 'object' } },
    chains: { type: 'object', additionalProperties: { type: 'array', items: pluginRef } },
    routes: {
      type: 'object',
      propertyNames: { enum: [...ROUTE_NAMES] },
      additionalProperties: {
        type: 'object', additionalProperties: false,
        properties: { chain: { type: 'string' }, plugins: { type: 'array', items: pluginRef } },
      },
    },
    providers: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' },
      additionalProperties: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
    },
    defaultProvider: { type: 'string' },
    models: { type: 'object', default: {}, propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$' }, additionalProperties: aliasSchema },
    routing: routingSchema,
    modelList: {
      type: 'object', additionalProperties: false, default: {},
      properties: { cacheTtlMs: int(0, 600_000), timeoutMs: int(1, 3_000) },
    },
    telemetry: { type: 'object', additionalProperties: false, default: {}, properties: { tracing: tracingSchema } },
    alerts: alertsConfigSchema,
    usage: usageSettingsSchema,
    security: securitySchema,
    executionLogs: { type: 'object', additionalProperties: false, default: {}, properties: { retentionDays: { type: 'integer', minimum: 1, maximum: 36_500, default: 30 } } },
  },
}

const validateSettings = compileSchema<Settings>(settingsSchema)

/** `${NAME}` in a string value is replaced by the environment variable NAME (an unset one is an error). */
function substituteEnv(v: unknown, where: string, env: NodeJS.ProcessEnv, errors: string[]): unknown {
  if (typeof v === 'string') {
    return v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const val = env[name]
      if (val === undefined) { errors.push(`${where}: environment variable ${name} is not set`); return '' }
      return val
    })
  }
  if (Array.isArray(v)) return v.map((x, i) => substituteEnv(x, `${where}[${i}]`, env, errors))
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) out[k] = substituteEnv(x, `${where}.${k}`, env, errors)
    return out
  }
  return v
}

export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}

/** Stable JSON (sorted keys), for hashing configs. */
export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableStringify((v as Record<string, unknown>)[k])}`).join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

export function hashOf(v: unknown): string {
  return createHash('sha256').update(stableStringify(v)).digest('hex').slice(0, 16)
}

interface ConfigParser {
  parse(file: string, content: string): unknown
  getParser(format: string): ((file: string | null, content: string) => unknown) | undefined
}

/**
 * Reads the raw (unvalidated) configuration the way node-config would, afresh. A file or NODE_CONFIG that does not
 * parse is MCP_ERR_CONFIG_INVALID naming the source, line, column and the parser's reason, never quoting the text
 * (config-syntax.ts): node-config's own message carries the parser's snippet of the file, secrets included.
 */
export function readRawConfig(): Record<string, unknown> {
  const load = Load.fromEnvironment(undefined as unknown as string) as unknown as { parser: ConfigParser; scan(extra: unknown[]): unknown }
  const base = load.parser
  let fault: string | undefined
  load.parser = Object.assign(Object.create(base) as ConfigParser, {
    parse(file: string, content: string): unknown {
      try {
        return base.parse(file, content)
      } catch (e) {
        fault = describeFault(file, fileFault(file, e))
        throw e
      }
    },
  })
  const extra: { name: string; config: unknown }[] = []
  const nodeConfig = process.env['NODE_CONFIG']
  if (nodeConfig) {
    try {
      extra.push({ name: '$NODE_CONFIG', config: JSON.parse(nodeConfig) })
    } catch (e) {
      const json5 = base.getParser('json')
      const locate = (): SyntaxFault | undefined => { try { json5?.(null, nodeConfig) } catch (j) { return json5Fault(j) } return undefined }
      throw new GatewayError('MCP_ERR_CONFIG_INVALID', { reason: describeFault('NODE_CONFIG is not valid JSON', jsonFault(e, locate)) }, { details: 'config.syntax' })
    }
  }
  try {
    return structuredClone(load.scan(extra)) as Record<string, unknown>
  } catch (e) {
    if (fault !== undefined) throw new GatewayError('MCP_ERR_CONFIG_INVALID', { reason: fault }, { details: 'config.syntax' })
    throw e
  }
}

/**
 * The configuration directories being used (for the file watcher): NODE_CONFIG_DIR may list several, separated by
 * path.delimiter (node-config reads them in order, later ones overriding earlier ones).
 */
export function configDirs(): string[] {
  const dirs = (process.env['NODE_CONFIG_DIR'] ?? path.join(process.cwd(), 'config')).split(path.delimiter).filter((d) => d !== '')
  return [...new Set(dirs.map((d) => path.resolve(d)))]
}

/** Top-level blocks whose strings may reference the environment as `${NAME}`. */
const ENV_BLOCKS = ['providers', 'alerts', 'usage', 'telemetry'] as const

/** Validates a raw configuration object into frozen Settings; throws MCP_ERR_CONFIG_INVALID naming every bad field. */
export function parseSettings(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Settings {
  const errors: string[] = []
  const copy = structuredClone(raw)
  // Secrets live in these blocks (provider credentials, webhook signing secrets, OTLP exporter headers): `${NAME}` reads
  // the environment.
  for (const block of ENV_BLOCKS) if (copy[block] !== undefined) copy[block] = substituteEnv(copy[block], block, env, errors)
  if (!validateSettings(copy)) errors.push(...validateSettings.errors())
  const s = copy as unknown as Settings
  if (errors.length === 0) {
    for (const [name, route] of Object.entries(s.routes)) {
      if (route.chain !== undefined && !(route.chain in s.chains)) errors.push(`routes.${name}.chain: no chain named '${route.chain}'`)
    }
    errors.push(...alertsConfigErrors(s.alerts))
    errors.push(...usageSettingsErrors(s.usage))
    for (const name of Object.keys(s.models)) {
      if (name in s.providers) errors.push(`models.${name}: an alias cannot have the name of a provider`)
    }
    if (s.defaultProvider !== undefined && !(s.defaultProvider in s.providers)) errors.push(`defaultProvider: no provider named '${s.defaultProvider}'`)
    errors.push(...checkHardeningSettings(s))
    // Node's http.createServer throws a RangeError for a header timeout longer than the request's: the listener would
    // never start.
    if (s.server.headersTimeoutMs > s.server.requestTimeoutMs) {
      errors.push(`server.headersTimeoutMs: must be <= server.requestTimeoutMs (${s.server.requestTimeoutMs})`)
    }
    if (env['NODE_ENV'] === 'production' && (s.admin.key === undefined || s.admin.key.length < 32)) {
      errors.push('admin.key: MCP_ADMIN_KEY of at least 32 characters is required when NODE_ENV=production')
    }
  }
  if (errors.length > 0) throw new GatewayError('MCP_ERR_CONFIG_INVALID', { reason: errors.join('; ') }, { details: 'config.invalid' })
  return deepFreeze(s)
}

export function loadSettings(): Settings {
  return parseSettings(readRawConfig())
}

const SECRET_KEY = /(key|secret|token|password|passphrase|credentials?|authorization|cookie)$/i

/** A copy with every secret-looking field replaced, and webhook URLs cut to scheme and host, for GET /api/v1/mcp/config and logs. */
export function redactSettings(v: unknown, keyName = ''): unknown {
  if (SECRET_KEY.test(keyName) && typeof v === 'string') return '[redacted]'
  // Webhook URLs (alerts.webhooks.<name>.url, usage.webhook.url): a Slack-style one is authorised by its path alone.
  if (keyName === 'url' && typeof v === 'string') return redactUrl(v)
  // Header maps (providers', exporters', webhooks'): any header may carry a credential, whatever its name.
  if (keyName === 'headers' && v !== null && typeof v === 'object' && !Array.isArray(v)) {
    return Object.fromEntries(Object.keys(v).map((k) => [k, '[redacted]']))
  }
  if (Array.isArray(v)) return v.map((x) => redactSettings(x))
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) out[k] = redactSettings(x, k)
    return out
  }
  if (keyName === 'databaseUrl' || keyName === 'redisUrl') return typeof v === 'string' ? v.replace(/\/\/[^@/]*@/, '//[redacted]@') : v
  return v
}
