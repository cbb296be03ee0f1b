/**
 * Deployments: a prompt in an environment, serving one version or several with weights (deployment_traffic rows;
 * none means 100 % on `prompt_version_id`, the primary). Every change bumps `version` (the revision behind the
 * ETag) and appends a deployment_history row in the same transaction.
 */
import { sqlState } from '../../store/types.ts'
import type { Queryable } from '../../store/types.ts'
import { audit, auditContextOf } from '../audit.ts'
import { bodyInvalid, canonicalJson, conflict, cursorParts, encodeCursor, notFound, unprocessable, type Page } from '../http.ts'
import type { DeploymentConfig, DeploymentCreate, DeploymentUpdate, TrafficInput } from '../schemas.ts'
import type { PageResult } from './prompts.ts'
import { compileUserSchema } from '../../gateway/validate.ts'
import { toolChoiceProblem } from '../tool-choice.ts'

export interface TrafficView { prompt_version_id: string; version: number; weight: number; label: string | null }

export interface DeploymentView {
  id: string; prompt_id: string; prompt_name: string; environment: string; status: string; config: DeploymentConfig
  prompt_version_id: string; version: number; traffic: TrafficView[]; revision: number; created_at: Date; updated_at: Date
}

interface Row {
  id: string; prompt_id: string; prompt_name: string; environment: string; status: string; config: DeploymentConfig
  prompt_version_id: string; prompt_version: number; revision: number; created_at: Date; updated_at: Date; cursor_at: string
}

/** A live version as resolved from a request: id, number, its model and weight. */
interface Entry { id: string; version: number; model: string | null; weight: number; label: string | null }

const SELECT = `SELECT d.id, d.prompt_id, p.name AS prompt_name, d.environment, d.status, d.config, d.prompt_version_id,
  v.version AS prompt_version, d.version AS revision, d.created_at, d.updated_at, d.created_at::text AS cursor_at
  FROM deployments d JOIN prompts p ON p.id = d.prompt_id LEFT JOIN prompt_versions v ON v.id = d.prompt_version_id`

async function trafficOf(q: Queryable, ids: readonly string[]): Promise<Map<string, TrafficView[]>> {
  const out = new Map<string, TrafficView[]>()
  if (ids.length === 0) return out
  const { rows } = await q.query<TrafficView & { deployment_id: string }>(
    `SELECT t.deployment_id, t.prompt_version_id, v.version, t.weight, t.label
     FROM deployment_traffic t JOIN prompt_versions v ON v.id = t.prompt_version_id
     WHERE t.deployment_id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)
     ORDER BY t.weight DESC, v.version DESC`,
    [JSON.stringify(ids)],
  )
  for (const { deployment_id, ...t } of rows) {
    let list = out.get(deployment_id)
    if (!list) { list = []; out.set(deployment_id, list) }
    list.push(t)
  }
  return out
}

function view(r: Row, traffic: TrafficView[] | undefined): DeploymentView {
  return {
    id: r.id, prompt_id: r.prompt_id, prompt_name: r.prompt_name, environment: r.environment, status: r.status, config: r.config ?? {},
    prompt_version_id: r.prompt_version_id, version: r.prompt_version,
    traffic: traffic && traffic.length > 0 ? traffic : [{ prompt_version_id: r.prompt_version_id, version: r.prompt_version, weight: 100, label: null }],
    revision: r.revision, created_at: r.created_at, updated_at: r.updated_at,
  }
}

async function loadRow(q: Queryable, id: string, lock: boolean): Promise<Row> {
  const { rows } = await q.query<Row>(`${SELECT} WHERE d.id = $1${lock ? ' FOR UPDATE OF d' : ''}`, [id])
  if (!rows[0]) throw notFound('deployment', id)
  return rows[0]
}

export async function getDeployment(q: Queryable, id: string): Promise<DeploymentView> {
  const row = await loadRow(q, id, false)
  return view(row, (await trafficOf(q, [id])).get(id))
}

export interface DeploymentFilter {
  promptId?: string | undefined
  promptName?: string | undefined
  environment?: string | undefined
  status?: string | undefined
  /** The prompt's team (team-bound readers). */
  team?: string | undefined
}

export async function listDeployments(q: Queryable, filter: DeploymentFilter, page: Page): Promise<PageResult<DeploymentView>> {
  const c = cursorParts(page.cursor, ['timestamp', 'uuid'])
  const { rows } = await q.query<Row>(
    `${SELECT}
     WHERE ($1::uuid IS NULL OR d.prompt_id = $1) AND ($2::text IS NULL OR p.name = $2)
       AND ($3::text IS NULL OR d.environment = $3) AND ($4::text IS NULL OR d.status = $4)
       AND ($5::timestamptz IS NULL OR (d.created_at, d.id) < ($5::timestamptz, $6::uuid))
       AND ($8::text IS NULL OR p.team = $8)
     ORDER BY d.created_at DESC, d.id DESC LIMIT $7`,
    [filter.promptId ?? null, filter.promptName ?? null, filter.environment ?? null, filter.status ?? null, c?.[0] ?? null, c?.[1] ?? null, page.limit + 1, filter.team ?? null],
  )
  const more = rows.length > page.limit
  const data = rows.slice(0, page.limit)
  const traffic = await trafficOf(q, data.map((r) => r.id))
  const last = data.at(-1)
  return { data: data.map((r) => view(r, traffic.get(r.id))), next_cursor: more && last ? encodeCursor([last.cursor_at, last.id]) : null }
}

// ---------- resolving versions ----------

interface VersionRow { id: string; prompt_id: string; version: number; model: string | null }

async function resolveVersion(q: Queryable, promptId: string, ref: { prompt_version_id?: string | undefined; version?: number | undefined }, field: string): Promise<VersionRow> {
  if (ref.prompt_version_id !== undefined && ref.version !== undefined) throw bodyInvalid([`${field}version: give prompt_version_id or version, not both`])
  if (ref.prompt_version_id !== undefined) {
    // A version of another prompt answers as a missing one: it may be another team's, whose ids must not be probed
    // (docs/rbac.md: another team's object answers exactly as a missing one).
    const { rows } = await q.query<VersionRow>('SELECT id, prompt_id, version, model FROM prompt_versions WHERE id = $1 AND prompt_id = $2', [ref.prompt_version_id, promptId])
    if (!rows[0]) throw unprocessable(`prompt version ${ref.prompt_version_id} is not a version of this prompt`, `${field}prompt_version_id`)
    return rows[0]
  }
  if (ref.version !== undefined) {
    const { rows } = await q.query<VersionRow>('SELECT id, prompt_id, version, model FROM prompt_versions WHERE prompt_id = $1 AND version = $2', [promptId, ref.version])
    if (!rows[0]) throw unprocessable(`the prompt has no version ${ref.version}`, `${field}version`)
    return rows[0]
  }
  const { rows } = await q.query<VersionRow>('SELECT id, prompt_id, version, model FROM prompt_versions WHERE prompt_id = $1 ORDER BY version DESC LIMIT 1', [promptId])
  if (!rows[0]) throw unprocessable('the prompt has no version yet: create one (POST /prompts/{id}/versions) first', `${field}version`)
  return rows[0]
}

async function resolveEntries(q: Queryable, promptId: string, body: { prompt_version_id?: string | undefined; version?: number | undefined; traffic?: TrafficInput[] | undefined }): Promise<Entry[]> {
  if (body.traffic === undefined) {
    const v = await resolveVersion(q, promptId, body, '')
    return [{ id: v.id, version: v.version, model: v.model, weight: 100, label: null }]
  }
  if (body.prompt_version_id !== undefined || body.version !== undefined) throw bodyInvalid(['traffic: give traffic or prompt_version_id/version, not both'])
  const entries: Entry[] = []
  for (const [i, t] of body.traffic.entries()) {
    if (t.prompt_version_id === undefined && t.version === undefined) throw bodyInvalid([`traffic[${i}].prompt_version_id: is required (or version)`])
    const v = await resolveVersion(q, promptId, t, `traffic[${i}].`)
    if (entries.some((e) => e.id === v.id)) throw unprocessable(`version ${v.version} is listed twice`, `traffic[${i}]`)
    entries.push({ id: v.id, version: v.version, model: v.model, weight: t.weight, label: t.label ?? null })
  }
  if (entries.every((e) => e.weight === 0)) throw unprocessable('the traffic weights sum to 0: at least one version must get traffic', 'traffic')
  return entries
}

function checkModels(entries: readonly Entry[], config: DeploymentConfig): void {
  if (config.model !== undefined) return
  const bare = entries.find((e) => e.model === null)
  if (bare) throw unprocessable(`version ${bare.version} has no model and config.model is not set`, 'config.model')
}

/**
 * What the deployment's config asks of every version it serves (weight > 0), checked against those versions:
 * - `config.default_variables` must satisfy the version's variables schema, requirements on the whole object aside
 *   (required, minProperties, dependencies: the caller completes them), or every execute that relies on them is
 *   refused, naming a variable the caller never sent. 422 naming the variable.
 * - `config.parameters.tool_choice` must be one the version's tools can honour (tools come from the version only),
 *   or every execute of that version fails at the provider. 422 naming `config.parameters.tool_choice`.
 */
async function checkServedVersions(q: Queryable, entries: readonly Entry[], config: DeploymentConfig): Promise<void> {
  const defaults = config.default_variables
  const choice = config.parameters?.tool_choice
  const served = entries.filter((e) => e.weight > 0)
  if ((defaults === undefined && choice === undefined) || served.length === 0) return
  const { rows } = await q.query<{ id: string; version: number; variables: Record<string, unknown> | null; tools: unknown[] | null }>(
    'SELECT id, version, variables, tools FROM prompt_versions WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid) ORDER BY version',
    [JSON.stringify(served.map((e) => e.id))],
  )
  for (const r of rows) {
    const problem = toolChoiceProblem(choice, r.tools)
    if (problem) throw unprocessable(`config.parameters.tool_choice: ${problem.replace('the version', `version ${r.version}`)}`, 'config.parameters.tool_choice')
    if (defaults === undefined || r.variables === null) continue
    const { required: _r, minProperties: _m, dependentRequired: _dr, dependencies: _d, ...relaxed } = r.variables
    let errors: string[]
    try {
      const v = compileUserSchema(relaxed)
      errors = v(structuredClone(defaults)) ? [] : v.errors('config.default_variables')
    } catch {
      continue // a schema that does not compile was refused when the version was created
    }
    if (errors.length > 0) {
      throw unprocessable(`${errors.slice(0, 5).join('; ')} (version ${r.version}'s variables schema)`, errors[0]!.split(':', 1)[0]!)
    }
  }
}

/**
 * Locks (FOR KEY SHARE) the API providers that the deployment's models name, until the write commits: a concurrent
 * provider delete (FOR UPDATE on its row, then its in-use check) waits for this write and then sees the deployment,
 * or has already deleted the provider (a deployment may name a provider that does not exist). Taken before any
 * write to deployments, so both lock the provider row before the control_plane_version row.
 */
async function lockNamedProviders(tx: Queryable, entries: readonly Entry[], config: DeploymentConfig): Promise<void> {
  const models = config.model !== undefined ? [config.model] : entries.map((e) => e.model)
  const names = [...new Set(models.filter((m): m is string => m !== null && m.includes('/')).map((m) => m.slice(0, m.indexOf('/'))))]
  if (names.length === 0) return
  await tx.query('SELECT 1 FROM provider_configs WHERE name IN (SELECT jsonb_array_elements_text($1::jsonb)) FOR KEY SHARE', [JSON.stringify(names)])
}

/** The primary version: the heaviest, the newest on a tie. */
function primaryOf(entries: readonly Entry[]): Entry {
  return [...entries].sort((a, b) => b.weight - a.weight || b.version - a.version)[0]!
}

async function entriesOf(q: Queryable, row: Row): Promise<Entry[]> {
  const traffic = (await trafficOf(q, [row.id])).get(row.id)
  if (!traffic || traffic.length === 0) return [{ id: row.prompt_version_id, version: row.prompt_version, model: null, weight: 100, label: null }]
  return traffic.map((t) => ({ id: t.prompt_version_id, version: t.version, model: null, weight: t.weight, label: t.label }))
}

async function writeTraffic(tx: Queryable, id: string, entries: readonly Entry[]): Promise<void> {
  await tx.query('DELETE FROM deployment_traffic WHERE deployment_id = $1', [id])
  if (entries.length < 2) return
  for (const e of entries) {
    await tx.query('INSERT INTO deployment_traffic (deployment_id, prompt_version_id, weight, label) VALUES ($1, $2, $3, $4)', [id, e.id, e.weight, e.label])
  }
}

function trafficJson(entries: readonly Entry[]): string {
  return JSON.stringify(entries.map((e) => ({ prompt_version_id: e.id, version: e.version, weight: e.weight, label: e.label })))
}

async function history(tx: Queryable, h: { id: string; action: string; revision: number; from: string | null; to: string | null; entries: readonly Entry[] | null; requestId?: string | undefined }): Promise<void> {
  await tx.query(
    `INSERT INTO deployment_history (deployment_id, action, deployment_version, from_prompt_version_id, to_prompt_version_id, traffic, request_id, actor_key_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [h.id, h.action, h.revision, h.from, h.to, h.entries ? trafficJson(h.entries) : null, h.requestId ?? null, auditContextOf(tx)?.actor.keyId ?? null],
  )
}

// ---------- writes ----------

export interface WriteContext {
  environments: readonly string[]
  requestId?: string | undefined
}

function checkEnvironment(env: string, environments: readonly string[], param: string): void {
  if (!environments.includes(env)) throw unprocessable(`unknown environment '${env}' (known: ${environments.join(', ')})`, param)
}

async function insertDeployment(tx: Queryable, promptId: string, environment: string, config: DeploymentConfig, status: string, entries: readonly Entry[]): Promise<string> {
  const { rows: existing } = await tx.query<{ id: string }>('SELECT id FROM deployments WHERE prompt_id = $1 AND environment = $2', [promptId, environment])
  if (existing[0]) throw conflict(`the prompt already has deployment ${existing[0].id} in ${environment}: update it (PUT) instead`, 'environment')
  try {
    const { rows } = await tx.query<{ id: string }>(
      'INSERT INTO deployments (prompt_id, environment, config, status, prompt_version_id) VALUES ($1, $2, $3, $4, $5) RETURNING id',
      [promptId, environment, JSON.stringify(config), status, primaryOf(entries).id],
    )
    return rows[0]!.id
  } catch (e) {
    if (sqlState(e) === '23505') throw conflict(`the prompt already has a deployment in ${environment}`, 'environment')
    throw e
  }
}

export async function createDeployment(tx: Queryable, body: DeploymentCreate, w: WriteContext): Promise<DeploymentView> {
  checkEnvironment(body.environment, w.environments, 'environment')
  // Serialized with promotes of the prompt on its row (promoteDeployment takes the same lock): without it, a promote
  // that found no target while this insert was in flight inserted one too and answered a 409.
  const { rows: prompt } = await tx.query('SELECT id FROM prompts WHERE id = $1 FOR NO KEY UPDATE', [body.prompt_id])
  if (!prompt[0]) throw unprocessable(`prompt ${body.prompt_id} does not exist`, 'prompt_id')
  const entries = await resolveEntries(tx, body.prompt_id, body)
  const config = body.config ?? {}
  checkModels(entries, config)
  await checkServedVersions(tx, entries, config)
  await lockNamedProviders(tx, entries, config)
  const id = await insertDeployment(tx, body.prompt_id, body.environment, config, body.status ?? 'active', entries)
  await writeTraffic(tx, id, entries)
  await history(tx, { id, action: 'create', revision: 1, from: null, to: primaryOf(entries).id, entries, requestId: w.requestId })
  const v = await getDeployment(tx, id)
  await audit(tx, { action: 'deployment.create', objectType: 'deployment', objectId: id, after: v, requestId: w.requestId })
  return v
}

async function applyChange(tx: Queryable, row: Row, change: { entries?: Entry[] | undefined; config?: DeploymentConfig | undefined; status?: string | undefined; action: string }, w: WriteContext): Promise<DeploymentView> {
  const before = view(row, (await trafficOf(tx, [row.id])).get(row.id))
  const entries = change.entries
  await lockNamedProviders(tx, entries ?? await entriesWithModels(tx, row), change.config ?? row.config ?? {})
  const primary = entries ? primaryOf(entries).id : row.prompt_version_id
  await tx.query(
    'UPDATE deployments SET config = $2, status = $3, prompt_version_id = $4, version = version + 1, updated_at = now() WHERE id = $1',
    [row.id, JSON.stringify(change.config ?? row.config ?? {}), change.status ?? row.status, primary],
  )
  if (entries) await writeTraffic(tx, row.id, entries)
  await history(tx, { id: row.id, action: change.action, revision: row.revision + 1, from: row.prompt_version_id, to: primary, entries: entries ?? null, requestId: w.requestId })
  const after = await getDeployment(tx, row.id)
  await audit(tx, { action: `deployment.${change.action}`, objectType: 'deployment', objectId: row.id, before, after, requestId: w.requestId })
  return after
}

export async function updateDeployment(tx: Queryable, id: string, body: DeploymentUpdate, precondition: (revision: number) => void, w: WriteContext): Promise<DeploymentView> {
  const row = await loadRow(tx, id, true)
  precondition(row.revision)
  const versionsChange = body.traffic !== undefined || body.prompt_version_id !== undefined || body.version !== undefined
  const entries = versionsChange ? await resolveEntries(tx, row.prompt_id, body) : undefined
  const config = body.config ?? row.config ?? {}
  if (entries || body.config) {
    const check = entries ?? await entriesWithModels(tx, row)
    checkModels(check, config)
    await checkServedVersions(tx, check, config)
  }
  // A PUT that changes nothing ({}, or the current values again) answers the deployment as it is: no new revision,
  // no history row, no audit entry (so a client re-applying its desired state does not invalidate others' ETags).
  if (await changesNothing(tx, row, entries, body)) return getDeployment(tx, id)
  const statusOnly = !versionsChange && body.config === undefined && body.status !== undefined && body.status !== row.status
  const action = statusOnly ? (body.status === 'paused' ? 'pause' : 'resume') : 'update'
  return applyChange(tx, row, { entries, config, status: body.status, action }, w)
}

/** The served versions as stored: one version has no traffic rows (weight and label are not kept), several do. */
function servedKey(entries: readonly Entry[]): string {
  if (entries.length === 1) return entries[0]!.id
  return JSON.stringify(entries.map((e) => [e.id, e.weight, e.label]).sort(([a], [b]) => (String(a) < String(b) ? -1 : 1)))
}

async function changesNothing(tx: Queryable, row: Row, entries: readonly Entry[] | undefined, body: DeploymentUpdate): Promise<boolean> {
  if (body.status !== undefined && body.status !== row.status) return false
  if (body.config !== undefined && canonicalJson(body.config) !== canonicalJson(row.config ?? {})) return false
  return entries === undefined || servedKey(entries) === servedKey(await entriesOf(tx, row))
}

async function entriesWithModels(q: Queryable, row: Row): Promise<Entry[]> {
  const entries = await entriesOf(q, row)
  const { rows } = await q.query<{ id: string; model: string | null }>(
    'SELECT id, model FROM prompt_versions WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)',
    [JSON.stringify(entries.map((e) => e.id))],
  )
  const models = new Map(rows.map((r) => [r.id, r.model]))
  return entries.map((e) => ({ ...e, model: models.get(e.id) ?? null }))
}

export async function deleteDeployment(tx: Queryable, id: string, precondition: (revision: number) => void, w: WriteContext): Promise<void> {
  const row = await loadRow(tx, id, true)
  precondition(row.revision)
  const before = view(row, (await trafficOf(tx, [id])).get(id))
  await tx.query('DELETE FROM deployments WHERE id = $1', [id])
  await history(tx, { id, action: 'delete', revision: row.revision + 1, from: row.prompt_version_id, to: null, entries: null, requestId: w.requestId })
  await audit(tx, { action: 'deployment.delete', objectType: 'deployment', objectId: id, before, requestId: w.requestId })
}

/**
 * Rollback to a named version, or (no version named) to the previous one: when traffic is split, back to 100 % on
 * the primary (the canary is withdrawn); otherwise to the most recent version in the history that differs from the
 * one serving now (a second rollback undoes the first).
 */
export async function rollbackDeployment(tx: Queryable, id: string, body: { prompt_version_id?: string | undefined; version?: number | undefined }, precondition: (revision: number) => void, w: WriteContext): Promise<DeploymentView> {
  const row = await loadRow(tx, id, true)
  precondition(row.revision)
  let target: VersionRow
  if (body.prompt_version_id !== undefined || body.version !== undefined) {
    target = await resolveVersion(tx, row.prompt_id, body, '')
  } else {
    const current = await entriesOf(tx, row)
    let targetId: string | undefined
    if (current.length > 1) {
      targetId = row.prompt_version_id
    } else {
      const { rows } = await tx.query<{ to_prompt_version_id: string }>(
        'SELECT to_prompt_version_id FROM deployment_history WHERE deployment_id = $1 AND to_prompt_version_id IS NOT NULL ORDER BY id DESC',
        [id],
      )
      targetId = rows.find((r) => r.to_prompt_version_id !== row.prompt_version_id)?.to_prompt_version_id
    }
    if (targetId === undefined) throw unprocessable('there is no previous version to roll back to')
    target = await resolveVersion(tx, row.prompt_id, { prompt_version_id: targetId }, '')
  }
  const entries: Entry[] = [{ id: target.id, version: target.version, model: target.model, weight: 100, label: null }]
  checkModels(entries, row.config ?? {})
  await checkServedVersions(tx, entries, row.config ?? {})
  // To what it already serves alone (a retried rollback): nothing changes, no revision, history row or audit entry.
  if (await changesNothing(tx, row, entries, {})) return getDeployment(tx, id)
  return applyChange(tx, row, { entries, action: 'rollback' }, w)
}

/**
 * Promotion: the source's live versions, weights and config, into the next environment (or the one named),
 * creating the deployment there or updating it (its status is kept).
 */
export async function promoteDeployment(tx: Queryable, id: string, toEnvironment: string | undefined, w: WriteContext): Promise<{ view: DeploymentView; created: boolean }> {
  const source = await loadRow(tx, id, false)
  let target = toEnvironment
  if (target === undefined) {
    const i = w.environments.indexOf(source.environment)
    target = i === -1 ? undefined : w.environments[i + 1]
    if (target === undefined) throw unprocessable(`${source.environment} is the last environment: name to_environment`, 'to_environment')
  }
  checkEnvironment(target, w.environments, 'to_environment')
  if (target === source.environment) throw unprocessable('to_environment is the deployment\'s own environment', 'to_environment')
  // Promotes of one prompt are serialized on its row: without it, two concurrent promotes both found no target and
  // the second insert failed with a 409 instead of updating the deployment the first one created.
  await tx.query('SELECT id FROM prompts WHERE id = $1 FOR NO KEY UPDATE', [source.prompt_id])
  const entries = await entriesWithModels(tx, source)
  const config = source.config ?? {}
  await checkServedVersions(tx, entries, config)
  const { rows } = await tx.query<{ id: string }>('SELECT id FROM deployments WHERE prompt_id = $1 AND environment = $2', [source.prompt_id, target])
  if (rows[0]) {
    const existing = await loadRow(tx, rows[0].id, true)
    // The target serves these versions with this config already: nothing changes (no revision to invalidate ETags).
    if (await changesNothing(tx, existing, entries, { config })) return { view: await getDeployment(tx, existing.id), created: false }
    return { view: await applyChange(tx, existing, { entries, config, action: 'promote' }, w), created: false }
  }
  await lockNamedProviders(tx, entries, config)
  const newId = await insertDeployment(tx, source.prompt_id, target, config, 'active', entries)
  await writeTraffic(tx, newId, entries)
  await history(tx, { id: newId, action: 'promote', revision: 1, from: null, to: primaryOf(entries).id, entries, requestId: w.requestId })
  const v = await getDeployment(tx, newId)
  await audit(tx, { action: 'deployment.promote', objectType: 'deployment', objectId: newId, after: v, requestId: w.requestId })
  return { view: v, created: true }
}

/**
 * Deployments (ids, oldest first, at most `limit`) whose model names the provider `name` (`<name>/...`): the
 * deployment's `config.model`, else a version it serves (weight > 0). Read from the database, in the caller's
 * transaction (see lockNamedProviders).
 */
export async function deploymentsNamingProvider(q: Queryable, name: string, limit = 5): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(
    `SELECT d.id FROM deployments d
     WHERE CASE WHEN d.config->>'model' IS NOT NULL THEN left(d.config->>'model', length($1)) = $1
       ELSE EXISTS (
         SELECT 1 FROM prompt_versions v
         WHERE left(v.model, length($1)) = $1
           AND (v.id = d.prompt_version_id
             OR v.id IN (SELECT t.prompt_version_id FROM deployment_traffic t WHERE t.deployment_id = d.id AND t.weight > 0)))
     END
     ORDER BY d.created_at, d.id LIMIT $2`,
    [`${name}/`, limit],
  )
  return rows.map((r) => r.id)
}

export interface HistoryView {
  id: number; action: string; revision: number; from_prompt_version_id: string | null; from_version: number | null
  to_prompt_version_id: string | null; to_version: number | null; traffic: TrafficView[] | null; request_id: string | null; at: Date
}

export async function deploymentHistory(q: Queryable, id: string, page: Page): Promise<PageResult<HistoryView>> {
  const c = cursorParts(page.cursor, ['integer'])
  const { rows } = await q.query<HistoryView>(
    `SELECT h.id, h.action, h.deployment_version AS revision, h.from_prompt_version_id, fv.version AS from_version,
            h.to_prompt_version_id, tv.version AS to_version, h.traffic, h.request_id, h.at
     FROM deployment_history h
     LEFT JOIN prompt_versions fv ON fv.id = h.from_prompt_version_id
     LEFT JOIN prompt_versions tv ON tv.id = h.to_prompt_version_id
     WHERE h.deployment_id = $1 AND ($2::bigint IS NULL OR h.id < $2) ORDER BY h.id DESC LIMIT $3`,
    [id, c?.[0] ?? null, page.limit + 1],
  )
  if (rows.length === 0 && c === undefined) {
    // No history at all: a deployment that never existed (history outlives deleted ones).
    throw notFound('deployment', id)
  }
  const more = rows.length > page.limit
  const data = rows.slice(0, page.limit).map((r) => ({ ...r, id: Number(r.id) }))
  const last = data.at(-1)
  return { data, next_cursor: more && last ? encodeCursor([last.id]) : null }
}
