/**
 * Settings → Pipeline. Every plugin config is validated here (unknown keys rejected, defaults
 * applied, frozen, hashed); per-route phase arrays, reversed encode arrays and the composed
 * upstream call are settled once. Instances and adapters whose config hash is unchanged are
 * carried over from the previous generation, so their state survives a reload.
 */
import type { Dispatcher } from 'undici'
import type { AdapterFactory, ProviderAdapter, ProviderConfig } from '../../providers/types.ts'
import { GatewayError } from '../errors.ts'
import type { Settings, PluginRef } from '../settings.ts'
import { deepFreeze, hashOf, ROUTE_NAMES } from '../settings.ts'
import { compileSchema, type Validator } from '../validate.ts'
import { compileAliases } from '../routing/alias.ts'
import { DEFAULT_PROVIDER_TYPE_MAP, Pricing } from '../cost/pricing.ts'
import type { TargetRegistry } from '../routing/target-state.ts'
import { Pipeline, type CompiledRoute } from './pipeline.ts'
import type { PluginDeps, PluginFactory, PluginInstance, UpstreamOpen } from './types.ts'

export interface CompileDeps {
  plugin(name: string): PluginFactory | undefined
  adapter(type: string): AdapterFactory | undefined
  dispatcherFor(origin: string): Dispatcher
  pluginDeps(name: string, settings: Settings): PluginDeps
  /** The terminal upstream call (adapter execute/stream/embed or pass-through). */
  terminal: UpstreamOpen
  /** Live target state (breakers, health), kept across generations. */
  targets: TargetRegistry
}

const validators = new WeakMap<PluginFactory, Validator<Record<string, unknown>>>()

function validatorFor(f: PluginFactory): Validator<Record<string, unknown>> {
  let v = validators.get(f)
  if (!v) { v = compileSchema<Record<string, unknown>>(f.configSchema); validators.set(f, v) }
  return v
}

function refName(ref: PluginRef): string {
  return typeof ref === 'string' ? ref : ref.name
}

/** Validates one plugin's config (global merged with a route override). Throws naming the field. */
export function validatePluginConfig(f: PluginFactory, cfg: unknown, where: string): Record<string, unknown> {
  const copy = structuredClone(cfg ?? {}) as Record<string, unknown>
  const v = validatorFor(f)
  if (!v(copy)) {
    throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: f.name, reason: v.errors(where).join('; ') }, { details: 'config.plugin_invalid' })
  }
  if (f.sideEffects === 'io' && (!('timeoutMs' in copy) || !('failMode' in copy))) {
    throw new GatewayError('MCP_ERR_PLUGIN_CONFIG_INVALID', { plugin: f.name, reason: 'plugins with I/O must declare timeoutMs and failMode' })
  }
  return deepFreeze(copy)
}

export async function compilePipeline(settings: Settings, deps: CompileDeps, prev: Pipeline | undefined, generation: number): Promise<Pipeline> {
  // Providers first: an invalid provider rejects the whole generation.
  const providers = new Map<string, ProviderAdapter>()
  const adapterKeys = new Map<string, string>()
  const errors: string[] = []
  for (const [name, raw] of Object.entries(settings.providers)) {
    const f = deps.adapter(raw.type)
    if (!f) { errors.push(`providers.${name}.type: unknown provider type '${raw.type}'`); continue }
    const cfg = structuredClone(raw) as ProviderConfig
    const errs = [...f.configErrors(cfg)]
    if (errs.length === 0 && f.prepare) errs.push(...(await f.prepare(cfg)))
    if (errs.length > 0) { errors.push(...errs.map((e) => `providers.${name}.${e}`)); continue }
    const key = `${name}:${hashOf(cfg)}`
    adapterKeys.set(name, key)
    const carried = prev && prev.adapterKeys.get(name) === key ? prev.providers.get(name) : undefined
    try {
      providers.set(name, carried ?? f.create(name, deepFreeze(cfg), { dispatcherFor: deps.dispatcherFor }))
    } catch (e) {
      errors.push(`providers.${name}: ${(e as Error).message}`)
    }
  }
  if (errors.length > 0) throw new GatewayError('MCP_ERR_CONFIG_INVALID', { reason: errors.join('; ') }, { details: 'config.provider_invalid' })
  const compiled = compileAliases(settings.models, providers, settings.routing, deps.targets, routingPrices(settings, deps))
  if (compiled.errors.length > 0) throw new GatewayError('MCP_ERR_CONFIG_INVALID', { reason: compiled.errors.join('; ') }, { details: 'config.alias_invalid' })

  // Every plugin config block must name a known plugin and be valid on its own, chained or not.
  for (const [name, block] of Object.entries(settings.plugins)) {
    const f = deps.plugin(name)
    if (!f) throw new GatewayError('MCP_ERR_PLUGIN_UNKNOWN', { plugin: name }, { details: 'config.plugin_unknown', message: `Unknown plugin '${name}' in plugins.${name}` })
    validatePluginConfig(f, block, `plugins.${name}`)
  }

  const instances = new Map<string, PluginInstance>()
  const created: PluginInstance[] = []
  const routes = new Map<string, CompiledRoute>()
  try {
    for (const routeName of ROUTE_NAMES) {
      const rs = settings.routes[routeName]
      const refs: readonly PluginRef[] = rs?.plugins ?? (rs?.chain !== undefined ? settings.chains[rs.chain] ?? [] : settings.chains['default'] ?? [])
      const list: RouteEntry[] = []
      for (const [i, ref] of refs.entries()) {
        const name = refName(ref)
        const f = deps.plugin(name)
        if (!f) throw new GatewayError('MCP_ERR_PLUGIN_UNKNOWN', { plugin: name }, { details: 'config.plugin_unknown', message: `Unknown plugin '${name}' in routes.${routeName} (position ${i})` })
        const override = typeof ref === 'string' ? undefined : ref.config
        const merged = { ...(settings.plugins[name] ?? {}), ...(override ?? {}) }
        const cfg = validatePluginConfig(f, merged, override ? `routes.${routeName}.plugins[${i}].config` : `plugins.${name}`)
        const key = `${name}:${hashOf(cfg)}`
        let inst = instances.get(key) ?? prev?.instances.get(key)
        if (!inst) { inst = await f.create(cfg, deps.pluginDeps(name, settings)); created.push(inst) }
        instances.set(key, inst)
        list.push({ name, inst, needsUsage: f.needsUsage === true, rewritesRequest: f.rewritesRequest === true })
      }
      routes.set(routeName, buildRoute(routeName, list, deps.terminal))
    }
  } catch (e) {
    // Close what this failed compile created; carried-over instances belong to the running generation.
    await Promise.allSettled(created.map(async (i) => i.close?.()))
    throw e
  }
  return new Pipeline({ generation, hash: hashOf(settings), settings, routes, providers, instances, adapterKeys, aliases: compiled.aliases })
}

interface RouteEntry { name: string; inst: PluginInstance; needsUsage: boolean; rewritesRequest: boolean }

function buildRoute(name: string, list: readonly RouteEntry[], terminal: UpstreamOpen): CompiledRoute {
  const bind = <K extends keyof PluginInstance>(k: K) =>
    list.filter((p) => typeof p.inst[k] === 'function').map((p) => (p.inst[k] as (...a: unknown[]) => unknown).bind(p.inst))
  let open = terminal
  // Last listed runs first: wrap in config order so the first plugin is the outermost.
  for (const p of [...list].reverse()) if (p.inst.interceptUpstream) open = p.inst.interceptUpstream(open)
  const chunkHooks = bind('onResponseChunk').reverse()
  return Object.freeze({
    name,
    plugins: list.map((p) => p.name),
    onRequestHeaders: bind('onRequestHeaders') as CompiledRoute['onRequestHeaders'],
    onRequestBody: bind('onRequestBody') as CompiledRoute['onRequestBody'],
    onResponseHeaders: bind('onResponseHeaders').reverse() as CompiledRoute['onResponseHeaders'],
    onResponseChunk: chunkHooks as CompiledRoute['onResponseChunk'],
    onComplete: bind('onComplete').reverse() as CompiledRoute['onComplete'],
    open,
    allowsModel: bind('allowsModel') as CompiledRoute['allowsModel'],
    passthrough: chunkHooks.length === 0,
    needsUsage: list.some((p) => p.needsUsage),
    rewritesRequest: list.find((p) => p.rewritesRequest)?.name,
  })
}

/**
 * Prices in USD per million tokens (input, output) for the lowest-cost strategy, in effect now: those of the first
 * plugin that prices requests (cost-meter) in a route's chain, with that route's config, so the router ranks targets
 * by what the gateway will bill; else the shipped catalogue (`azure-openai` priced as `openai`). Either way by
 * provider name and type, dated snapshots and Gemini `models/` names included (gateway/cost/pricing.ts).
 */
function routingPrices(settings: Settings, deps: CompileDeps): (provider: string, providerType: string, model: string) => { input: number; output: number } | undefined {
  let pricing: ReturnType<NonNullable<PluginFactory['pricing']>> | undefined
  for (const routeName of ROUTE_NAMES) {
    const rs = settings.routes[routeName]
    const refs: readonly PluginRef[] = rs?.plugins ?? (rs?.chain !== undefined ? settings.chains[rs.chain] ?? [] : settings.chains['default'] ?? [])
    for (const [i, ref] of refs.entries()) {
      const name = refName(ref)
      const f = deps.plugin(name)
      if (!f?.pricing) continue
      const override = typeof ref === 'string' ? undefined : ref.config
      const cfg = validatePluginConfig(f, { ...(settings.plugins[name] ?? {}), ...(override ?? {}) }, override ? `routes.${routeName}.plugins[${i}].config` : `plugins.${name}`)
      pricing = f.pricing(cfg)
      break
    }
    if (pricing) break
  }
  pricing ??= new Pricing({ providerTypeMap: DEFAULT_PROVIDER_TYPE_MAP })
  const p = pricing
  const at = Date.now()
  return (provider, type, model) => {
    const x = p.pricesFor(provider, type, model, at)
    return x ? { input: x.input / 1e6, output: x.output / 1e6 } : undefined
  }
}
