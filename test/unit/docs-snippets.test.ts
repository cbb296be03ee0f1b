/**
 * Every ```yaml / ```json block of README.md and docs/*.md is configuration a user will copy: each one is merged
 * on top of config/default.yaml (the way node-config merges a local.yaml) and must pass the gateway's own
 * settings parser and pipeline compile, providers, aliases and every plugin's configSchema included.
 *
 * A block that is not a whole configuration says so in an HTML comment on the line before its fence:
 *   <!-- docs-snippet: skip <reason> -->          not configuration (a request or response body, a webhook payload)
 *   <!-- docs-snippet: under <dotted.path> -->    a fragment of the configuration at that path (plugins.budget)
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { load as parseYaml } from 'js-yaml'
import { describe, expect, it } from 'vitest'
import { parseSettings } from '../../gateway/settings.ts'
import { compilePipeline, type CompileDeps } from '../../gateway/pipeline/compile.ts'
import { TargetRegistry } from '../../gateway/routing/target-state.ts'
import { pluginFactory } from '../../plugins/index.ts'
import { adapterFactory } from '../../providers/registry.ts'
import type { PluginFactory } from '../../gateway/pipeline/types.ts'

const root = path.resolve(import.meta.dirname, '../..')
const files = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

interface Snippet { where: string; lang: string; text: string; marker: string | undefined }

function snippets(file: string): Snippet[] {
  const lines = readFileSync(path.join(root, file), 'utf8').split('\n')
  const out: Snippet[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^\s*```(\w*)\s*$/.exec(lines[i]!)
    if (!open) continue
    let j = i + 1
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j]!)) j++
    const lang = open[1]!
    if (lang === 'yaml' || lang === 'json') {
      const marker = /<!--\s*docs-snippet:\s*(.*?)\s*-->/.exec(lines[i - 1] ?? '')?.[1]
      out.push({ where: `${file}:${i + 1}`, lang, text: lines.slice(i + 1, j).join('\n'), marker })
    }
    i = j
  }
  return out
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)

/** node-config's merge: objects deep, everything else (arrays included) replaced. */
function merge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base }
  for (const [k, v] of Object.entries(over)) out[k] = isObj(v) && isObj(out[k]) ? merge(out[k] as Obj, v) : v
  return out
}

/** The real plugin factories (configSchema, pricing, sideEffects); create is stubbed: no store, no Redis needed. */
const plugin = (name: string): PluginFactory | undefined => {
  const f = pluginFactory(name)
  return f && { ...f, create: () => ({}) }
}

const deps = (): CompileDeps => ({
  plugin,
  adapter: adapterFactory,
  dispatcherFor: () => ({}) as never,
  pluginDeps: () => ({}) as never,
  terminal: (() => { throw new Error('not called') }) as never,
  targets: new TargetRegistry(),
})

/** `${NAME}` placeholders in snippets resolve to a plausible secret. */
const env = new Proxy({} as NodeJS.ProcessEnv, { get: (_t, k) => (typeof k === 'string' ? `${k.toLowerCase()}-0123456789abcdef` : undefined) })

const defaults = parseYaml(readFileSync(path.join(root, 'config/default.yaml'), 'utf8')) as Obj

/** Providers a snippet refers to without declaring them (routing and pricing examples name openai, anthropic...). */
const stubProviders: Obj = {
  openai: { type: 'openai', apiKey: 'sk-docs-0123456789' },
  anthropic: { type: 'anthropic', apiKey: 'sk-ant-docs-0123456789' },
  ollama: { type: 'ollama' },
  'my-vllm': { type: 'openai-compatible', baseUrl: 'http://127.0.0.1:8000/v1' },
}

function parseBlock(s: Snippet): Obj {
  if (s.lang === 'json') return JSON.parse(s.text) as Obj
  return parseYaml(s.text) as Obj
}

function wrap(under: string, v: Obj): Obj {
  return under.split('.').reverse().reduce<Obj>((acc, k) => ({ [k]: acc }), v)
}

/** Aliases a snippet refers to (fallbacks, rule targets, downgrades) but does not define. */
function stubAliases(cfg: Obj): Obj {
  const models = (cfg['models'] ?? {}) as Obj
  const named = new Set<string>()
  for (const a of Object.values(models) as Obj[]) {
    for (const f of (a['fallbacks'] ?? []) as string[]) named.add(f)
    for (const r of (a['rules'] ?? []) as Obj[]) if (typeof r['alias'] === 'string') named.add(r['alias'])
  }
  const budget = ((cfg['plugins'] as Obj | undefined)?.['budget'] ?? {}) as Obj
  for (const d of (budget['downgrade'] ?? []) as Obj[]) { named.add(String(d['alias'])); named.add(String(d['to'])) }
  const out: Obj = {}
  for (const n of named) if (!(n in models) && !n.includes('/')) out[n] = { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] }
  return out
}

const all = files.flatMap(snippets)

describe('configuration snippets in README.md and docs/*.md', () => {
  it('finds the snippets', () => {
    expect(all.length).toBeGreaterThan(10)
  })

  it('the check refuses what the gateway refuses: an unknown key in a plugin, a provider or settings', async () => {
    const check = async (yaml: string) => {
      const cfg = merge(merge(defaults, parseYaml(yaml) as Obj), { providers: stubProviders })
      await compilePipeline(parseSettings(cfg, env), deps(), undefined, 1)
    }
    await expect(check('plugins: { rate-limit: { limit: [] } }')).rejects.toThrow(/limit/)
    await expect(check('providers: { x: { type: openai, apiKey: k, region: eu } }')).rejects.toThrow(/region: unknown key/)
    await expect(check('server: { tls: { cert: a } }')).rejects.toThrow(/server.tls/)
    await check('plugins: { rate-limit: { limits: [] } }')
  })

  it('every block marked not-configuration says why', () => {
    for (const s of all.filter((x) => x.marker?.startsWith('skip'))) expect(s.marker!.replace(/^skip\s*/, ''), s.where).not.toBe('')
  })

  // Blocks marked `skip` are not configuration (bodies, payloads): they get no test of their own.
  for (const s of all.filter((x) => !x.marker?.startsWith('skip'))) {
    it(`${s.where} (${s.lang}) ${s.marker ?? ''}`.trim(), async () => {
      let block: Obj
      try {
        block = parseBlock(s)
      } catch (e) {
        throw new Error(`${s.where}: does not parse as ${s.lang}: ${(e as Error).message}`)
      }
      const under = /^under\s+(\S+)/.exec(s.marker ?? '')?.[1]
      if (under) block = wrap(under, block)
      let cfg = merge(defaults, block)
      cfg = merge(cfg, { providers: { ...stubProviders, ...((block['providers'] as Obj | undefined) ?? {}) } })
      cfg = merge(cfg, { models: { ...stubAliases(cfg), ...((cfg['models'] as Obj | undefined) ?? {}) } })
      const settings = parseSettings(cfg, env)
      // A `${NAME}` the parser does not substitute would be used as it is (a webhook signed with the literal text).
      expect(JSON.stringify(settings), 'a ${NAME} reference left unsubstituted').not.toMatch(/\$\{[A-Za-z_]/)
      await compilePipeline(settings, deps(), undefined, 1)
    })
  }
})
