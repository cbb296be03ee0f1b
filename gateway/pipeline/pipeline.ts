/**
 * One compiled, immutable generation of the gateway: settings, provider adapters, plugin
 * instances and per-route phase arrays. Requests capture the current generation once and keep it
 * to their last byte; a reload builds a new one and swaps it in (holder.ts).
 */
import type { ProviderAdapter } from '../../providers/types.ts'
import type { RequestCtx } from '../context.ts'
import type { Settings } from '../settings.ts'
import type { ChatChunk } from '../../providers/types.ts'
import type { HookResult, Outcome, PluginInstance, UpstreamOpen } from './types.ts'
import type { CompiledAlias } from '../routing/alias.ts'

export type RequestHook = (ctx: RequestCtx) => HookResult | Promise<HookResult>
export type ResponseHook = (ctx: RequestCtx) => void
export type ChunkHook = (ctx: RequestCtx, chunk: ChatChunk) => void
export type CompleteHook = (ctx: RequestCtx, outcome: Outcome) => void | Promise<void>
export type ModelFilter = (ctx: RequestCtx, name: string, isAlias: boolean) => boolean

export interface CompiledRoute {
  readonly name: string
  /** Plugin names in config order, for logs and GET /config. */
  readonly plugins: readonly string[]
  readonly onRequestHeaders: readonly RequestHook[]
  readonly onRequestBody: readonly RequestHook[]
  readonly onResponseHeaders: readonly ResponseHook[]
  readonly onResponseChunk: readonly ChunkHook[]
  /** Runs for every request that entered the route, local replies and failures included. */
  readonly onComplete: readonly CompleteHook[]
  readonly open: UpstreamOpen
  /** Plugins' allowsModel, config order: a model is listed when every one allows it. */
  readonly allowsModel: readonly ModelFilter[]
  /** Chunks may skip the canonical round trip (no onResponseChunk hooks on this route). */
  readonly passthrough: boolean
  /** A plugin on this route reads usage: streams ask the upstream for it. */
  readonly needsUsage: boolean
  /** The first plugin on this route that rewrites requests (PluginFactory.rewritesRequest): Messages requests go translated. */
  readonly rewritesRequest: string | undefined
}

export class Pipeline {
  readonly generation: number
  readonly hash: string
  readonly settings: Settings
  readonly routes: ReadonlyMap<string, CompiledRoute>
  readonly providers: ReadonlyMap<string, ProviderAdapter>
  /** Plugin instances by `name:configHash`, so the next generation can carry them over. */
  readonly instances: ReadonlyMap<string, PluginInstance>
  /** Provider adapters by `name:configHash`. */
  readonly adapterKeys: ReadonlyMap<string, string>
  /** Model aliases, compiled. */
  readonly aliases: ReadonlyMap<string, CompiledAlias>
  /** Bare model name → provider name, from each provider's `models` list (first listed wins). */
  readonly modelIndex: ReadonlyMap<string, string>
  #inflight = 0
  readonly #waiters = new Set<() => void>()

  constructor(init: {
    generation: number; hash: string; settings: Settings; routes: Map<string, CompiledRoute>
    providers: Map<string, ProviderAdapter>; instances: Map<string, PluginInstance>; adapterKeys: Map<string, string>
    aliases: Map<string, CompiledAlias>
  }) {
    this.aliases = init.aliases
    this.generation = init.generation
    this.hash = init.hash
    this.settings = init.settings
    this.routes = init.routes
    this.providers = init.providers
    this.instances = init.instances
    this.adapterKeys = init.adapterKeys
    const idx = new Map<string, string>()
    for (const [name, a] of init.providers) for (const m of a.listModels?.() ?? []) if (!idx.has(m)) idx.set(m, name)
    this.modelIndex = idx
  }

  get inflight(): number {
    return this.#inflight
  }

  acquire(): void {
    this.#inflight++
  }

  release(): void {
    this.#inflight--
    if (this.#inflight === 0 && this.#waiters.size > 0) {
      const ws = [...this.#waiters]
      this.#waiters.clear()
      for (const w of ws) w()
    }
  }

  /** Resolves true when every request of this generation finished, false on timeout. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.#inflight === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const w = (): void => { clearTimeout(t); resolve(true) }
      const t = setTimeout(() => { this.#waiters.delete(w); resolve(false) }, timeoutMs)
      t.unref()
      this.#waiters.add(w)
    })
  }
}
