/**
 * Providers added through the API (provider_configs). The row's `config` holds the adapter settings without
 * secrets; `credentials` holds the secret fields sealed under the master key (admin/credentials.ts). At snapshot
 * time both are merged into one settings entry `providers.<name>` that the pipeline compiles like a file-configured
 * provider. The adapter validates the merged config when the API writes it (422 naming the field), so a stored
 * provider always compiles.
 *
 * Rules: names of file-configured providers and of aliases are refused (409); `custom` providers (which load code)
 * are configured in files only; secret-looking keys in `config` are refused (they belong in `credentials`).
 */
import { randomUUID } from 'node:crypto'
import { adapterFactory, adapterTypes } from '../../providers/registry.ts'
import { sqlState } from '../../store/types.ts'
import type { Queryable } from '../../store/types.ts'
import { GatewayError } from '../../gateway/errors.ts'
import { isHeaderValue } from '../../gateway/validate.ts'
import { audit } from '../audit.ts'
import { asStoredCredentials, credentialViews, sealCredential, type CredentialView, type StoredCredentials } from '../credentials.ts'
import type { Keyring } from '../crypto.ts'
import { bodyInvalid, canonicalJson, conflict, cursorParts, encodeCursor, notFound, unprocessable, type Page } from '../http.ts'
import type { ProviderCreate, ProviderUpdate } from '../schemas.ts'
import { deploymentsNamingProvider } from './deployments.ts'
import type { PageResult } from './prompts.ts'

export interface ProviderView {
  id: string; name: string; provider: string; config: Record<string, unknown>; credentials: Record<string, CredentialView>
  status: string; revision: number; created_at: Date; updated_at: Date
}

interface Row {
  id: string; name: string; provider: string; config: Record<string, unknown>; credentials: unknown; status: string
  revision: number; created_at: Date; updated_at: Date; cursor_at: string
}

const COLUMNS = 'id, name, provider, config, credentials, status, version AS revision, created_at, updated_at, created_at::text AS cursor_at'
const SECRET_KEY = /(key|secret|token|password|passphrase|credentials?|authorization|cookie)$/i

/** Provider types the API accepts: every registered adapter except `custom` (it loads code: files only). */
export function apiProviderTypes(): string[] {
  return adapterTypes().filter((t) => t !== 'custom')
}

function view(r: Row): ProviderView {
  return {
    id: r.id, name: r.name, provider: r.provider, config: r.config ?? {}, credentials: credentialViews(asStoredCredentials(r.credentials)),
    status: r.status, revision: r.revision, created_at: r.created_at, updated_at: r.updated_at,
  }
}

function findSecretKey(v: unknown, path: string): string | undefined {
  if (v === null || typeof v !== 'object') return undefined
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const p = Array.isArray(v) ? `${path}[${k}]` : `${path}.${k}`
    if (!Array.isArray(v) && SECRET_KEY.test(k)) return p
    const inner = findSecretKey(x, p)
    if (inner) return inner
  }
  return undefined
}

/**
 * Credentials are sent as HTTP header values (Authorization, x-api-key, OpenAI-Organization, ...): one holding CR, LF or
 * another character a header value cannot carry would make every call through the provider fail (502). A 400 naming
 * the field, never quoting the value.
 */
function checkCredentialValues(credentials: Readonly<Record<string, string | null>> | undefined): void {
  for (const [f, s] of Object.entries(credentials ?? {})) {
    if (typeof s === 'string' && !isHeaderValue(s)) {
      throw bodyInvalid([`credentials.${f}: must be usable as an HTTP header value (no CR, LF or other control characters, nothing beyond Latin-1)`])
    }
  }
}

/** Validates type, config and credential field names with the adapter; throws 422 naming `config.x` / `credentials.x`. */
function validate(type: string, config: Record<string, unknown>, credentialFields: readonly string[]): void {
  if (!apiProviderTypes().includes(type)) {
    const why = type === 'custom' ? "'custom' providers load code and are configured in files only" : `unknown provider type '${type}'`
    throw unprocessable(`${why} (the API accepts: ${apiProviderTypes().join(', ')})`, 'provider')
  }
  if ('type' in config) throw unprocessable('config.type: the type is the `provider` field', 'config.type')
  const secret = findSecretKey(config, 'config')
  if (secret) throw unprocessable(`${secret}: secrets go in credentials (encrypted at rest), not in config`, secret)
  for (const f of credentialFields) if (f in config) throw unprocessable(`credentials.${f}: also set in config`, `credentials.${f}`)
  const merged: Record<string, unknown> = { ...structuredClone(config), type }
  for (const f of credentialFields) merged[f] = 'placeholder-credential'
  const errors = adapterFactory(type)!.configErrors(merged)
  if (errors.length > 0) {
    const named = errors.map((e) => {
      const field = e.split(/[.:[]/, 1)[0]!.trim()
      return `${field !== '(root)' && (credentialFields.includes(field) || SECRET_KEY.test(field)) ? 'credentials' : 'config'}.${e}`
    })
    throw unprocessable(`provider config rejected by the ${type} adapter: ${named.slice(0, 5).join('; ')}`, named[0]!.split(':', 1)[0]!)
  }
}

export interface ProviderWriteContext {
  keyring: Keyring
  fileProviderNames: ReadonlySet<string>
  aliasNames: ReadonlySet<string>
  requestId?: string | undefined
}

function seal(w: ProviderWriteContext, id: string, field: string, secret: string): StoredCredentials[string] {
  if (!w.keyring.current) throw new GatewayError('MCP_ERR_ADMIN_MASTER_KEY_MISSING', {}, { details: 'admin.master_key_missing', param: `credentials.${field}` })
  return sealCredential(w.keyring, id, field, secret)
}

export async function createProvider(tx: Queryable, body: ProviderCreate, w: ProviderWriteContext): Promise<ProviderView> {
  checkCredentialValues(body.credentials)
  if (w.fileProviderNames.has(body.name)) throw conflict(`a provider named '${body.name}' is defined in the configuration files`, 'name')
  if (w.aliasNames.has(body.name)) throw conflict(`'${body.name}' is the name of a model alias`, 'name')
  const config = body.config ?? {}
  const plain = body.credentials ?? {}
  validate(body.provider, config, Object.keys(plain))
  const id = randomUUID()
  const stored: StoredCredentials = {}
  for (const [f, s] of Object.entries(plain)) stored[f] = seal(w, id, f, s)
  try {
    const { rows } = await tx.query<Row>(
      `INSERT INTO provider_configs (id, name, provider, config, credentials, status) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
      [id, body.name, body.provider, JSON.stringify(config), JSON.stringify(stored), body.status ?? 'active'],
    )
    const v = view(rows[0]!)
    await audit(tx, { action: 'provider.create', objectType: 'provider', objectId: id, after: v, requestId: w.requestId })
    return v
  } catch (e) {
    if (sqlState(e) === '23505') throw conflict(`a provider named '${body.name}' already exists`, 'name')
    throw e
  }
}

export async function getProvider(q: Queryable, id: string): Promise<ProviderView> {
  const { rows } = await q.query<Row>(`SELECT ${COLUMNS} FROM provider_configs WHERE id = $1`, [id])
  if (!rows[0]) throw notFound('provider', id)
  return view(rows[0])
}

export async function listProviders(q: Queryable, filter: { provider?: string | undefined; status?: string | undefined }, page: Page): Promise<PageResult<ProviderView>> {
  const c = cursorParts(page.cursor, ['timestamp', 'uuid'])
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM provider_configs
     WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR status = $2)
       AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
     ORDER BY created_at DESC, id DESC LIMIT $5`,
    [filter.provider ?? null, filter.status ?? null, c?.[0] ?? null, c?.[1] ?? null, page.limit + 1],
  )
  const more = rows.length > page.limit
  const data = rows.slice(0, page.limit)
  const last = data.at(-1)
  return { data: data.map(view), next_cursor: more && last ? encodeCursor([last.cursor_at, last.id]) : null }
}

async function lockRow(tx: Queryable, id: string): Promise<Row> {
  const { rows } = await tx.query<Row>(`SELECT ${COLUMNS} FROM provider_configs WHERE id = $1 FOR UPDATE`, [id])
  if (!rows[0]) throw notFound('provider', id)
  return rows[0]
}

export async function updateProvider(tx: Queryable, id: string, body: ProviderUpdate, precondition: (revision: number) => void, w: ProviderWriteContext): Promise<ProviderView> {
  checkCredentialValues(body.credentials)
  const row = await lockRow(tx, id)
  precondition(row.revision)
  // A PUT that changes nothing ({}, or the current config and status again, no credential) answers the provider as
  // it is: no new revision, no audit entry, no reload of every instance. A credential sent is always a change (a
  // rotation: the stored ones are sealed and not compared); removing one that is not stored (`null`) changes nothing.
  const current = asStoredCredentials(row.credentials)
  const changes = Object.entries(body.credentials ?? {}).filter(([f, s]) => s !== null || Object.hasOwn(current, f))
  if (changes.length === 0 && (body.status === undefined || body.status === row.status)
    && (body.config === undefined || canonicalJson(body.config) === canonicalJson(row.config ?? {}))) return view(row)
  const config = body.config ?? row.config ?? {}
  const stored = { ...current }
  for (const [f, s] of changes) {
    if (s === null) delete stored[f]
    else stored[f] = seal(w, id, f, s)
  }
  validate(row.provider, config, Object.keys(stored))
  const { rows } = await tx.query<Row>(
    `UPDATE provider_configs SET config = $2, credentials = $3, status = $4, version = version + 1, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, JSON.stringify(config), JSON.stringify(stored), body.status ?? row.status],
  )
  const v = view(rows[0]!)
  await audit(tx, { action: 'provider.update', objectType: 'provider', objectId: id, before: view(row), after: v, requestId: w.requestId })
  return v
}

/**
 * Deleting a provider that a deployment's model names is a 409. Checked in the delete's transaction against the
 * database, after locking the row: deployment writes lock the provider rows they name (FOR KEY SHARE) before writing,
 * so one that committed first is seen here, and one still running waits until this delete is done.
 */
export async function deleteProvider(tx: Queryable, id: string, precondition: (revision: number) => void, w: ProviderWriteContext): Promise<void> {
  const row = await lockRow(tx, id)
  precondition(row.revision)
  const users = await deploymentsNamingProvider(tx, row.name)
  if (users.length > 0) throw conflict(`provider '${row.name}' serves deployment(s) ${users.slice(0, 5).join(', ')}: change their model first`)
  await tx.query('DELETE FROM provider_configs WHERE id = $1', [id])
  await audit(tx, { action: 'provider.delete', objectType: 'provider', objectId: id, before: view(row), requestId: w.requestId })
}
