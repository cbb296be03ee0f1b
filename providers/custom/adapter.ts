/**
 * The `custom` adapter: a user module whose default export builds a ProviderAdapter.
 *
 *   export default (options, ctx: { name, dispatcherFor }) => adapter      // or { create(options, ctx) }
 *
 * Modules are imported asynchronously, so loading is a separate step from the (synchronous)
 * factory: the gateway awaits `preloadCustomModules(config.providers)` (or `loadCustomModule(path)`
 * per entry) before it compiles a config, and `customFactory.create` then reads the module cache.
 * A module is imported once per file version: a reload re-imports it only when its mtime changed.
 *
 * The returned object must have execute, stream, validateConfig, getMetrics and healthCheck;
 * name, type, configErrors and close are filled in; embed, countTokens and discoverModels pass through when present. `stream` may return a full ChatStream or any
 * async iterable of canonical chunks (an async generator): the wrapper pulls the first chunk
 * before resolving (so an error there is reported like an upstream error status) and aggregates
 * `final`; an iterable that ends before a chunk with a `finish_reason` is an interrupted stream
 * (MCP_ERR_UPSTREAM_STREAM_INTERRUPTED), as for every built-in adapter. Errors that are not GatewayErrors become MCP_ERR_UPSTREAM_ERROR (502).
 */
import { stat } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Dispatcher } from 'undici'
import { ERRORS, GatewayError, type ErrorCode } from '../../gateway/errors.ts'
import type {
  AdapterDeps, AdapterFactory, ChatChunk, ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse,
  ExecuteParams, HealthStatus, ProviderAdapter, ProviderConfig, ProviderMetrics,
} from '../types.ts'
import { ChunkAggregator } from '../shared/aggregate.ts'
import { toUpstreamError } from '../shared/http.ts'
import { customConfigErrors, type CustomConfig } from './config.ts'

/** What a custom adapter factory receives besides its options. */
export interface CustomAdapterContext {
  /** The provider's name in config (`providers.<name>`). */
  readonly name: string
  /** The gateway's shared undici pools, one per origin (optional to use). */
  dispatcherFor(origin: string): Dispatcher
}

/** What a custom module's factory returns. */
export interface CustomAdapter {
  execute(req: ChatRequest, params: ExecuteParams): Promise<ChatResponse>
  stream(req: ChatRequest, params: ExecuteParams): Promise<ChatStream | AsyncIterable<ChatChunk>> | AsyncIterable<ChatChunk>
  /** Receives the provider entry's `options`. */
  validateConfig(options: unknown): boolean
  getMetrics(): ProviderMetrics
  healthCheck(): Promise<HealthStatus>
  embed?(req: EmbeddingRequest, params: ExecuteParams): Promise<EmbeddingResponse>
  listModels?(): readonly string[]
  /**
   * The models the backend serves, asked by GET /v1/models when the entry declares none (ProviderAdapter.discoverModels).
   * Should stop when `signal` aborts; the wrapper rejects then in any case.
   */
  discoverModels?(signal: AbortSignal): Promise<readonly string[]>
  /** The prompt tokens of a request as the backend counts them (POST /v1/messages/count_tokens; ProviderAdapter.countTokens). */
  countTokens?(req: ChatRequest, params: ExecuteParams): Promise<number>
  /** Reasons `options` is invalid; defaults to one generic reason when validateConfig says no. */
  configErrors?(options: unknown): readonly string[]
  close?(): Promise<void> | void
}

export type CustomAdapterInit = (options: Readonly<Record<string, unknown>>, ctx: CustomAdapterContext) => CustomAdapter

const REQUIRED = ['execute', 'stream', 'validateConfig', 'getMetrics', 'healthCheck'] as const

interface Loaded { init: CustomAdapterInit; mtimeMs: number }

/** Absolute path → the loaded factory. Filled by loadCustomModule, read by create. */
const modules = new Map<string, Loaded>()

export function resolveModulePath(modulePath: string, cwd: string = process.cwd()): string {
  return resolvePath(cwd, modulePath)
}

function configError(reason: string, cause?: unknown): GatewayError {
  return new GatewayError('MCP_ERR_CONFIG_INVALID', { reason }, cause === undefined ? {} : { cause })
}

function initOf(mod: unknown, path: string): CustomAdapterInit {
  const d = (mod as { default?: unknown } | null)?.default
  if (typeof d === 'function') return d as CustomAdapterInit
  const create = (d as { create?: unknown } | null | undefined)?.create
  if (typeof create === 'function') return (create as CustomAdapterInit).bind(d)
  throw configError(`custom module ${path}: the default export must be a function (options, ctx) => adapter, or an object with create(options, ctx)`)
}

/**
 * Imports a custom adapter module (absolute path, or relative to `cwd`, default the process cwd)
 * and caches its factory. Imports again only when the file changed since the last load.
 * Throws MCP_ERR_CONFIG_INVALID when the file cannot be read or imported, or exports no factory.
 */
export async function loadCustomModule(modulePath: string, cwd?: string): Promise<CustomAdapterInit> {
  const path = resolveModulePath(modulePath, cwd)
  let mtimeMs: number
  try {
    mtimeMs = (await stat(path)).mtimeMs
  } catch (e) {
    throw configError(`custom module ${path}: ${(e as Error).message}`, e)
  }
  const cached = modules.get(path)
  if (cached && cached.mtimeMs === mtimeMs) return cached.init
  const url = pathToFileURL(path).href + (cached ? `?mtime=${mtimeMs}` : '')
  let mod: unknown
  try {
    mod = await import(url)
  } catch (e) {
    throw configError(`custom module ${path} failed to load: ${(e as Error).message}`, e)
  }
  const init = initOf(mod, path)
  modules.set(path, { init, mtimeMs })
  return init
}

/**
 * Loads the module of every `custom` entry of a providers map (config order). Resolves with the
 * errors as `providers.<name>.module: ...` strings (empty when all loaded).
 */
export async function preloadCustomModules(providers: Readonly<Record<string, unknown>>, cwd?: string): Promise<string[]> {
  const errors: string[] = []
  for (const [name, entry] of Object.entries(providers)) {
    const e = entry as { type?: unknown; module?: unknown } | null
    if (e?.type !== 'custom' || typeof e.module !== 'string' || e.module === '') continue
    try {
      await loadCustomModule(e.module, cwd)
    } catch (err) {
      errors.push(`providers.${name}.module: ${(err as Error).message}`)
    }
  }
  return errors
}

/** Whether `create` can build an adapter from this module path now. */
export function isCustomModuleLoaded(modulePath: string, cwd?: string): boolean {
  return modules.has(resolveModulePath(modulePath, cwd))
}

function asGatewayError(e: unknown, provider: string): GatewayError {
  if (e instanceof GatewayError) return e
  const x = e as { code?: unknown; message?: unknown; status?: unknown; param?: unknown } | null
  // A GatewayError from another copy of gateway/errors.ts (a module outside this tree): keep it.
  if (x !== null && typeof x === 'object' && typeof x.code === 'string' && x.code in ERRORS) {
    return new GatewayError(x.code as ErrorCode, {}, {
      ...(typeof x.message === 'string' ? { message: x.message } : {}),
      ...(typeof x.status === 'number' ? { status: x.status } : {}),
      ...(typeof x.param === 'string' ? { param: x.param } : {}),
      cause: e,
    })
  }
  const reason = e instanceof Error ? e.message : String(e)
  return new GatewayError('MCP_ERR_UPSTREAM_ERROR', { provider, status: 502, reason }, { details: 'custom.adapter_error', cause: e })
}

function isChatStream(v: unknown): v is ChatStream {
  const s = v as Partial<ChatStream> | null
  return s !== null && typeof s === 'object' && typeof s.status === 'number' && s.final instanceof Promise && typeof s[Symbol.asyncIterator] === 'function'
}

function isAsyncIterable(v: unknown): v is AsyncIterable<ChatChunk> {
  return v !== null && typeof v === 'object' && typeof (v as AsyncIterable<ChatChunk>)[Symbol.asyncIterator] === 'function'
}

/** Wraps an async iterable of chunks as a ChatStream; the first chunk is pulled before resolving. */
async function toChatStream(source: AsyncIterable<ChatChunk>, provider: string, signal: AbortSignal): Promise<ChatStream> {
  const it = source[Symbol.asyncIterator]()
  // Each read ends when the request does (its deadline, the client gone), whether or not the module heeds the signal:
  // a module whose iterable stalls or never ends held the client's stream open past the request deadline.
  const aborted = (): GatewayError => (signal.reason instanceof GatewayError ? signal.reason : new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' }))
  const next = (): Promise<IteratorResult<ChatChunk>> => {
    if (signal.aborted) return Promise.reject(aborted())
    return new Promise((resolve, reject) => {
      const stop = (): void => reject(aborted())
      signal.addEventListener('abort', stop, { once: true })
      it.next().then(
        (r) => { signal.removeEventListener('abort', stop); resolve(r) },
        (e: unknown) => { signal.removeEventListener('abort', stop); reject(e) },
      )
    })
  }
  let first: IteratorResult<ChatChunk>
  try {
    first = await next()
  } catch (e) {
    throw asGatewayError(e, provider)
  }
  const agg = new ChunkAggregator()
  let settle!: { resolve: (r: ChatResponse) => void; reject: (e: GatewayError) => void }
  const final = new Promise<ChatResponse>((resolve, reject) => { settle = { resolve, reject } })
  final.catch(() => {})
  let started = false
  return {
    status: 200,
    final,
    async *[Symbol.asyncIterator](): AsyncGenerator<ChatChunk> {
      if (started) throw new Error('a ChatStream can be iterated once')
      started = true
      let finished = false
      /** A chunk with a finish reason came: without one, the end of the iterable is a cut stream (as for every adapter). */
      let completed = false
      try {
        for (let r = first; !r.done; r = await next()) {
          agg.add(r.value)
          if (!completed && r.value.choices?.some((c) => c.finish_reason)) completed = true
          yield r.value
        }
        if (!completed) {
          throw new GatewayError('MCP_ERR_UPSTREAM_STREAM_INTERRUPTED', { provider, reason: 'the stream ended before a chunk with a finish_reason' }, { details: 'upstream.stream_cut' })
        }
        finished = true
        settle.resolve(agg.toResponse())
      } catch (e) {
        finished = true
        const g = asGatewayError(e, provider)
        settle.reject(g)
        // Ended by the request (the read was abandoned, maybe still pending): the module's iterable is told to finish.
        if (signal.aborted) void Promise.resolve(it.return?.()).catch(() => {})
        throw g
      } finally {
        if (!finished) {
          settle.reject(new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort' }))
          await it.return?.()
        }
      }
    },
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * What makes a custom execute()'s answer not a `chat.completion` the gateway can deliver (undefined: none): without
 * this check an answer with no choices went to an OpenAI client as it was, and to an Anthropic client as the raw
 * object, or as an empty message that looked complete.
 */
function chatResponseProblem(r: unknown): string | undefined {
  if (!isObject(r)) return r === null ? 'null' : `a ${Array.isArray(r) ? 'list' : typeof r}, not a chat.completion object`
  const choices = r['choices']
  if (!Array.isArray(choices) || choices.length === 0) return 'no choices (a non-empty list is required)'
  for (const [i, c] of choices.entries()) {
    if (!isObject(c)) return `choices[${i}] that is not an object`
    const m = c['message']
    if (!isObject(m)) return `choices[${i}].message that is not an object`
    if (m['content'] !== undefined && m['content'] !== null && typeof m['content'] !== 'string') return `choices[${i}].message.content that is neither a string nor null`
    if (m['tool_calls'] !== undefined && m['tool_calls'] !== null && !Array.isArray(m['tool_calls'])) return `choices[${i}].message.tool_calls that is not a list`
    const f = c['finish_reason']
    if (f !== undefined && f !== null && typeof f !== 'string') return `choices[${i}].finish_reason that is neither a string nor null`
  }
  const u = r['usage']
  if (u !== undefined && u !== null) {
    if (!isObject(u)) return 'a usage that is not an object'
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
      const v = u[k]
      if (v !== undefined && v !== null && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) return `usage.${k} that is not a count`
    }
  }
  return undefined
}

/** Checks the object a custom factory returned and completes it into a ProviderAdapter. */
export function wrapCustomAdapter(name: string, raw: unknown, modulePath: string, models: readonly string[] = []): ProviderAdapter {
  if (raw !== null && typeof raw === 'object' && typeof (raw as { then?: unknown }).then === 'function') {
    throw configError(`providers.${name}: the factory of ${modulePath} returned a Promise; return the adapter itself and do async setup lazily`)
  }
  if (raw === null || typeof raw !== 'object') {
    throw configError(`providers.${name}: the factory of ${modulePath} returned ${raw === null ? 'null' : typeof raw}, not an adapter object`)
  }
  const a = raw as Partial<CustomAdapter> & Record<string, unknown>
  const missing = REQUIRED.filter((k) => typeof a[k] !== 'function')
  if (missing.length > 0) {
    throw configError(`providers.${name}: the adapter from ${modulePath} has no ${missing.join(', ')} function${missing.length > 1 ? 's' : ''} (required: ${REQUIRED.join(', ')})`)
  }
  const c = a as CustomAdapter
  const optionErrors = (options: unknown): readonly string[] => {
    if (typeof c.configErrors === 'function') return c.configErrors(options)
    return c.validateConfig(options) ? [] : [`options: rejected by the custom adapter's validateConfig`]
  }
  const adapter: ProviderAdapter = {
    name,
    type: 'custom',
    async execute(req, params) {
      let out: unknown
      try { out = await c.execute(req, params) } catch (e) { throw asGatewayError(e, name) }
      const problem = chatResponseProblem(out)
      if (problem !== undefined) throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: name, reason: `execute() resolved with ${problem}` })
      return out as ChatResponse
    },
    async stream(req, params) {
      let out: unknown
      try { out = await c.stream(req, params) } catch (e) { throw asGatewayError(e, name) }
      if (isChatStream(out)) return out
      if (isAsyncIterable(out)) return toChatStream(out, name, params.signal)
      throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: name, reason: 'stream() returned neither a ChatStream nor an async iterable of chunks' })
    },
    validateConfig(config: unknown): config is ProviderConfig {
      return adapter.configErrors(config).length === 0
    },
    configErrors(config: unknown): readonly string[] {
      const errs = customConfigErrors(config)
      if (errs.length > 0) return errs
      return optionErrors((config as CustomConfig).options).map((e) => (e.startsWith('options') ? e : `options: ${e}`))
    },
    getMetrics: () => c.getMetrics(),
    async healthCheck() {
      try { return await c.healthCheck() } catch (e) {
        return { ok: false, checkedAt: Date.now(), detail: e instanceof Error ? e.message : String(e) }
      }
    },
    listModels: () => (typeof c.listModels === 'function' ? c.listModels() : models),
    async close() { await c.close?.() },
  }
  if (typeof c.embed === 'function') {
    const embed = c.embed.bind(c)
    adapter.embed = async (req, params) => {
      try { return await embed(req, params) } catch (e) { throw asGatewayError(e, name) }
    }
  }
  if (typeof c.countTokens === 'function') {
    const count = c.countTokens.bind(c)
    adapter.countTokens = async (req, params) => {
      let n: number
      try { n = await count(req, params) } catch (e) { throw asGatewayError(e, name) }
      if (!Number.isInteger(n) || n < 0) throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider: name, reason: 'countTokens resolved with something other than a whole number of tokens' })
      return n
    }
  }
  if (typeof c.discoverModels === 'function') {
    const discover = c.discoverModels.bind(c)
    adapter.discoverModels = (signal) => discoverWithin(discover, signal, name)
  }
  return adapter
}

/**
 * The built-in adapters' contract for discoverModels: a GatewayError on failure, and a settled promise once `signal`
 * aborts (the abort reason mapped as theirs is), even from a module that ignores the signal.
 */
async function discoverWithin(discover: (signal: AbortSignal) => Promise<readonly string[]>, signal: AbortSignal, provider: string): Promise<readonly string[]> {
  if (signal.aborted) throw toUpstreamError(signal.reason, provider, false)
  let onAbort!: () => void
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(toUpstreamError(signal.reason, provider, false))
    signal.addEventListener('abort', onAbort, { once: true })
  })
  let ids: unknown
  try {
    ids = await Promise.race([Promise.resolve().then(() => discover(signal)).catch((e: unknown) => { throw asGatewayError(e, provider) }), aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) {
    throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason: 'discoverModels() did not resolve to an array of strings' })
  }
  return ids as string[]
}

export function createCustomAdapter(name: string, cfg: CustomConfig, deps: AdapterDeps): ProviderAdapter {
  const path = resolveModulePath(cfg.module)
  const loaded = modules.get(path)
  if (!loaded) {
    throw configError(`providers.${name}.module: ${path} is not loaded; the gateway awaits preloadCustomModules() or loadCustomModule() before compiling the config`)
  }
  let raw: unknown
  try {
    raw = loaded.init(cfg.options, { name, dispatcherFor: (origin) => deps.dispatcherFor(origin) })
  } catch (e) {
    throw configError(`providers.${name}: the factory of ${path} threw: ${(e as Error).message}`, e)
  }
  const adapter = wrapCustomAdapter(name, raw, path, cfg.models ?? [])
  const errs = adapter.configErrors(cfg)
  if (errs.length > 0) throw configError(`providers.${name}.${errs.join(`; providers.${name}.`)}`)
  return adapter
}

export const customFactory: AdapterFactory = {
  type: 'custom',
  configErrors: customConfigErrors,
  async prepare(config) {
    try {
      await loadCustomModule((config as unknown as CustomConfig).module)
      return []
    } catch (e) {
      return [`module: ${(e as Error).message}`]
    }
  },
  create: (name, config, deps) => createCustomAdapter(name, config as unknown as CustomConfig, deps),
}
