/**
 * The control plane's in-memory snapshot: what the request path needs from the database, read in one consistent
 * transaction and never on the request path itself.
 *
 * - providers: active provider_configs with their credentials opened (in memory only), as settings entries that
 *   the gateway's `load` merges into the file configuration;
 * - deployments: environment, prompt, status, config and live versions with their weights, each version's
 *   template compiled once (versions are immutable, so compiled versions are cached by id across snapshots);
 * - keys: API keys that can authenticate (not revoked, not expired, not past a rotation overlap) by prefix, with
 *   their digest, role, team, scopes, limits and budgets: the data plane and the admin gate verify keys from here.
 *
 * A snapshot is immutable; refreshing builds a new one and swaps the reference.
 */
import type { Logger } from 'pino'
import { hashOf } from '../gateway/settings.ts'
import { adapterFactory } from '../providers/registry.ts'
import type { KeyRecord } from '../plugins/auth/api-key.ts'
import { isRole } from '../plugins/auth/roles.ts'
import { compileUserSchema, type Validator } from '../gateway/validate.ts'
import type { Store } from '../store/types.ts'
import { asStoredCredentials, openCredentials } from './credentials.ts'
import type { Keyring } from './crypto.ts'
import type { DeploymentConfig, Params } from './schemas.ts'
import { compileTemplate, type CompiledTemplate } from './template.ts'

export interface SnapshotVersion {
  readonly id: string
  readonly promptId: string
  readonly version: number
  readonly template: CompiledTemplate
  readonly model: string | null
  readonly params: Readonly<Params>
  readonly tools: readonly unknown[] | null
  readonly responseFormat: Readonly<Record<string, unknown>> | null
  /** The version's `variables` JSON Schema, compiled; undefined when it has none. */
  readonly variables: Validator<Record<string, unknown>> | undefined
  /** Names the schema declares (accepted even when the template does not use them). */
  readonly declared: ReadonlySet<string>
}

export interface TrafficSlice {
  readonly version: SnapshotVersion
  readonly weight: number
  readonly label: string | null
}

export interface SnapshotDeployment {
  readonly id: string
  readonly promptId: string
  readonly promptName: string
  /** The prompt's team (null: none); a team-bound key executes its team's deployments only. */
  readonly team: string | null
  readonly environment: string
  readonly status: string
  readonly config: Readonly<DeploymentConfig>
  readonly primaryVersionId: string
  /** Live versions; weights > 0 only. */
  readonly traffic: readonly TrafficSlice[]
  readonly totalWeight: number
  /**
   * Variable names some live version uses or declares: a name outside it is unknown to the deployment. (Judged per
   * deployment, not per picked version: during a canary that adds a variable, callers sending it are not refused by
   * the stable version.)
   */
  readonly variableNames: ReadonlySet<string>
}

export type ProviderSettings = Readonly<Record<string, unknown> & { type: string }>

export interface Snapshot {
  /** control_plane_version.version when it was read (-1: never loaded). */
  readonly controlVersion: number
  readonly loadedAt: Date
  /** Provider name → settings entry (credentials included). */
  readonly providers: ReadonlyMap<string, ProviderSettings>
  /** Provider name → the fields of its settings that came from its credentials (redacted wherever settings are shown). */
  readonly credentialFields: ReadonlyMap<string, readonly string[]>
  readonly providersHash: string
  /** Rows left out, with why (credentials that do not open, ...). */
  readonly issues: readonly { object: string; id: string; reason: string }[]
  readonly deployments: ReadonlyMap<string, SnapshotDeployment>
  /** `<prompt id or name>\n<environment>` → deployment. */
  readonly byPromptEnv: ReadonlyMap<string, SnapshotDeployment>
  /** API key prefix → key record (keys that can authenticate). */
  readonly keys: ReadonlyMap<string, KeyRecord>
}

export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  controlVersion: -1,
  loadedAt: new Date(0),
  providers: new Map(),
  credentialFields: new Map(),
  providersHash: hashOf({}),
  issues: [],
  deployments: new Map(),
  byPromptEnv: new Map(),
  keys: new Map(),
})

export function promptEnvKey(prompt: string, environment: string): string {
  return `${prompt}\n${environment}`
}

interface VersionRow {
  id: string; prompt_id: string; version: number; template: unknown; model: string | null; params: Params | null
  tools: unknown[] | null; response_format: Record<string, unknown> | null; variables: Record<string, unknown> | null
}

/** Compiles a version for the request path; throws on a template or variables schema that does not compile. */
export function compileVersion(row: VersionRow): SnapshotVersion {
  const schema = row.variables
  const props = schema && typeof schema['properties'] === 'object' && schema['properties'] !== null ? Object.keys(schema['properties']) : []
  return Object.freeze({
    id: row.id,
    promptId: row.prompt_id,
    version: row.version,
    template: compileTemplate(row.template),
    model: row.model,
    params: row.params ?? {},
    tools: row.tools,
    responseFormat: row.response_format,
    variables: schema ? compileUserSchema<Record<string, unknown>>(schema) : undefined,
    declared: new Set(props),
  })
}

export async function readControlVersion(store: Pick<Store, 'query'>): Promise<number> {
  const { rows } = await store.query<{ version: number | bigint }>('SELECT version FROM control_plane_version')
  return Number(rows[0]?.version ?? 0)
}

/**
 * Reads a fresh snapshot. `cache` keeps compiled versions between snapshots (pass the same map every time).
 * Throws when the database cannot be read; rows that cannot be used are left out and listed in `issues`.
 */
export async function loadSnapshot(store: Store, keyring: Keyring, cache: Map<string, SnapshotVersion>, log?: Logger): Promise<Snapshot> {
  const data = await store.transaction(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
    const version = await readControlVersion(tx)
    const providers = await tx.query<{ id: string; name: string; provider: string; config: Record<string, unknown>; credentials: unknown }>(
      "SELECT id, name, provider, config, credentials FROM provider_configs WHERE status = 'active' ORDER BY name",
    )
    const deployments = await tx.query<{ id: string; prompt_id: string; prompt_name: string; team: string | null; environment: string; status: string; config: DeploymentConfig; prompt_version_id: string }>(
      `SELECT d.id, d.prompt_id, p.name AS prompt_name, p.team, d.environment, d.status, d.config, d.prompt_version_id
       FROM deployments d JOIN prompts p ON p.id = d.prompt_id WHERE d.prompt_version_id IS NOT NULL`,
    )
    const traffic = await tx.query<{ deployment_id: string; prompt_version_id: string; weight: number; label: string | null }>(
      'SELECT deployment_id, prompt_version_id, weight, label FROM deployment_traffic ORDER BY deployment_id, weight DESC, prompt_version_id',
    )
    const wanted = new Set([...deployments.rows.map((d) => d.prompt_version_id), ...traffic.rows.map((t) => t.prompt_version_id)])
    const missing = [...wanted].filter((id) => !cache.has(id))
    const versions = missing.length === 0 ? { rows: [] as VersionRow[] } : await tx.query<VersionRow>(
      `SELECT id, prompt_id, version, template, model, params, tools, response_format, variables
       FROM prompt_versions WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)`,
      [JSON.stringify(missing)],
    )
    const keys = await tx.query<KeyRow>(
      `SELECT id, prefix, key_hash, role, team, environments::text[] AS environments, allowed_models::text[] AS allowed_models,
              allowed_aliases::text[] AS allowed_aliases, allowed_deployments::text[] AS allowed_deployments, limits, budgets,
              expires_at, rotation_overlap_until
       FROM api_keys
       WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
         AND (rotation_overlap_until IS NULL OR rotation_overlap_until > now())`,
    )
    return { version, providers: providers.rows, deployments: deployments.rows, traffic: traffic.rows, versions: versions.rows, wanted, keys: keys.rows }
  })

  const issues: { object: string; id: string; reason: string }[] = []
  for (const row of data.versions) {
    try {
      cache.set(row.id, compileVersion(row))
    } catch (e) {
      issues.push({ object: 'prompt_version', id: row.id, reason: (e as Error).message })
    }
  }
  for (const id of cache.keys()) if (!data.wanted.has(id)) cache.delete(id)

  const providers = new Map<string, ProviderSettings>()
  const credentialFields = new Map<string, readonly string[]>()
  for (const p of data.providers) {
    try {
      const secrets = openCredentials(keyring, p.id, asStoredCredentials(p.credentials))
      const settings = { ...p.config, ...secrets, type: p.provider }
      // The API validates a provider when it writes it, but a row written before a rule existed (a baseUrl with a
      // query) would fail the whole pipeline generation: it is left out instead, like one whose credentials do not open.
      const f = adapterFactory(p.provider)
      const errors = f ? f.configErrors(structuredClone(settings)) : [`unknown provider type '${p.provider}'`]
      if (errors.length > 0) throw new Error(`its config is refused: ${errors.slice(0, 5).join('; ')}`)
      providers.set(p.name, Object.freeze(settings))
      credentialFields.set(p.name, Object.freeze(Object.keys(secrets)))
    } catch (e) {
      issues.push({ object: 'provider', id: p.id, reason: `provider '${p.name}' left out: ${(e as Error).message}` })
    }
  }

  const trafficBy = new Map<string, typeof data.traffic>()
  for (const t of data.traffic) {
    let list = trafficBy.get(t.deployment_id)
    if (!list) { list = []; trafficBy.set(t.deployment_id, list) }
    list.push(t)
  }

  const deployments = new Map<string, SnapshotDeployment>()
  const byPromptEnv = new Map<string, SnapshotDeployment>()
  for (const d of data.deployments) {
    const rows = trafficBy.get(d.id) ?? [{ deployment_id: d.id, prompt_version_id: d.prompt_version_id, weight: 100, label: null }]
    const slices: TrafficSlice[] = []
    let usable = true
    for (const t of rows) {
      const v = cache.get(t.prompt_version_id)
      if (!v) { usable = false; break }
      if (t.weight > 0) slices.push({ version: v, weight: t.weight, label: t.label })
    }
    if (!usable || slices.length === 0) {
      issues.push({ object: 'deployment', id: d.id, reason: 'a live version could not be compiled or has no weight' })
      continue
    }
    const dep: SnapshotDeployment = Object.freeze({
      id: d.id,
      promptId: d.prompt_id,
      promptName: d.prompt_name,
      team: d.team,
      environment: d.environment,
      status: d.status,
      config: d.config ?? {},
      primaryVersionId: d.prompt_version_id,
      traffic: slices,
      totalWeight: slices.reduce((s, x) => s + x.weight, 0),
      variableNames: new Set(slices.flatMap((x) => [...x.version.template.roots, ...x.version.declared])),
    })
    deployments.set(d.id, dep)
    byPromptEnv.set(promptEnvKey(d.prompt_id, d.environment), dep)
    byPromptEnv.set(promptEnvKey(d.prompt_name, d.environment), dep)
  }

  const keys = new Map<string, KeyRecord>()
  for (const k of data.keys) {
    const record = keyRecord(k)
    if (record) keys.set(record.prefix, record)
    else issues.push({ object: 'api_key', id: k.id, reason: `key ${k.prefix} left out: unknown role '${k.role}' or malformed digest` })
  }

  for (const i of issues) log?.error(i, 'control plane: left out of the snapshot')
  return Object.freeze({
    controlVersion: data.version,
    loadedAt: new Date(),
    providers,
    credentialFields,
    providersHash: hashOf(Object.fromEntries(providers)),
    issues,
    deployments,
    byPromptEnv,
    keys,
  })
}

interface KeyRow {
  id: string; prefix: string; key_hash: string; role: string; team: string | null
  environments: string[] | null; allowed_models: string[] | null; allowed_aliases: string[] | null; allowed_deployments: string[] | null
  limits: Record<string, number> | null; budgets: Record<string, number> | null; expires_at: Date | null; rotation_overlap_until: Date | null
}

function numbers(v: Record<string, unknown> | null): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, x] of Object.entries(v ?? {})) if (typeof x === 'number' && Number.isFinite(x)) out[k] = x
  return Object.freeze(out)
}

const frozen = (a: string[] | null): readonly string[] | null => (a === null ? null : Object.freeze([...a]))

/** A key row as the data plane sees it; undefined when it cannot be used (unknown role, malformed digest). */
export function keyRecord(k: KeyRow): KeyRecord | undefined {
  const hex = String(k.key_hash).trim()
  if (!isRole(k.role) || !/^[0-9a-f]{64}$/.test(hex)) return undefined
  const ends = [k.expires_at, k.rotation_overlap_until].filter((d): d is Date => d !== null).map((d) => d.getTime())
  return Object.freeze({
    id: k.id,
    prefix: k.prefix,
    hash: Buffer.from(hex, 'hex'),
    role: k.role,
    team: k.team,
    scopes: Object.freeze({
      environments: frozen(k.environments), models: frozen(k.allowed_models), aliases: frozen(k.allowed_aliases),
      deployments: frozen(k.allowed_deployments === null ? null : k.allowed_deployments.map((d) => d.toLowerCase())),
    }),
    limits: numbers(k.limits),
    budgets: numbers(k.budgets),
    expiresAt: ends.length > 0 ? Math.min(...ends) : null,
  })
}

/** Weighted random choice among a deployment's live versions (`rnd` in [0, 1)). */
export function pickVersion(d: SnapshotDeployment, rnd: number = Math.random()): TrafficSlice {
  let x = rnd * d.totalWeight
  for (const s of d.traffic) {
    if (x < s.weight) return s
    x -= s.weight
  }
  return d.traffic[d.traffic.length - 1]!
}
