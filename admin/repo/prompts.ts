/**
 * Prompts and their immutable versions. A version number comes from the prompt's `latest_version` counter under
 * the prompt's row lock, so concurrent creations get consecutive numbers. Sending exactly the content of the
 * latest version again (same content hash) creates nothing and answers that version: retries are idempotent.
 */
import { createHash } from 'node:crypto'
import { stableStringify } from '../../gateway/settings.ts'
import { sqlState } from '../../store/types.ts'
import type { Queryable } from '../../store/types.ts'
import { audit } from '../audit.ts'
import { conflict, cursorParts, encodeCursor, notFound, type Page } from '../http.ts'
import type { PromptCreate, VersionCreate } from '../schemas.ts'
import { compileTemplate } from '../template.ts'

export interface PromptView {
  id: string; name: string; description: string | null; team: string | null; metadata: Record<string, unknown>
  latest_version: number; created_at: Date; updated_at: Date
}

interface PromptRow extends PromptView { cursor_at: string }

export interface VersionView {
  id: string; prompt_id: string; version: number; template: unknown; template_variables: string[]; model: string | null
  params: Record<string, unknown>; tools: unknown[] | null; response_format: Record<string, unknown> | null
  variables: Record<string, unknown> | null; metadata: Record<string, unknown>; message: string | null; content_hash: string; created_at: Date
}

export interface PageResult<T> { data: T[]; next_cursor: string | null }

const PROMPT_COLUMNS = 'id, name, description, team, metadata, latest_version, created_at, updated_at, created_at::text AS cursor_at'
const VERSION_COLUMNS = 'id, prompt_id, version, template, model, params, tools, response_format, variables, metadata, message, content_hash, created_at'

function promptView(r: PromptRow): PromptView {
  const { cursor_at: _c, ...v } = r
  return v
}

function versionView(r: Omit<VersionView, 'template_variables'>): VersionView {
  let vars: string[] = []
  try { vars = [...compileTemplate(r.template).variables] } catch { /* stored before validation existed: none */ }
  return { ...r, content_hash: String(r.content_hash ?? '').trim(), template_variables: vars }
}

export async function createPrompt(tx: Queryable, body: PromptCreate): Promise<PromptView> {
  try {
    const { rows } = await tx.query<PromptRow>(
      `INSERT INTO prompts (name, description, team, metadata) VALUES ($1, $2, $3, $4) RETURNING ${PROMPT_COLUMNS}`,
      [body.name, body.description ?? null, body.team ?? null, JSON.stringify(body.metadata ?? {})],
    )
    const view = promptView(rows[0]!)
    await audit(tx, { action: 'prompt.create', objectType: 'prompt', objectId: view.id, after: view })
    return view
  } catch (e) {
    if (sqlState(e) === '23505') throw conflict(`A prompt named '${body.name}' already exists`, 'name')
    throw e
  }
}

export async function getPrompt(q: Queryable, id: string): Promise<PromptView> {
  const { rows } = await q.query<PromptRow>(`SELECT ${PROMPT_COLUMNS} FROM prompts WHERE id = $1`, [id])
  if (!rows[0]) throw notFound('prompt', id)
  return promptView(rows[0])
}

export async function listPrompts(q: Queryable, filter: { team?: string | undefined; name?: string | undefined }, page: Page): Promise<PageResult<PromptView>> {
  const c = cursorParts(page.cursor, ['timestamp', 'uuid'])
  const { rows } = await q.query<PromptRow>(
    `SELECT ${PROMPT_COLUMNS} FROM prompts
     WHERE ($1::text IS NULL OR team = $1) AND ($2::text IS NULL OR name = $2)
       AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
     ORDER BY created_at DESC, id DESC LIMIT $5`,
    [filter.team ?? null, filter.name ?? null, c?.[0] ?? null, c?.[1] ?? null, page.limit + 1],
  )
  const more = rows.length > page.limit
  const data = rows.slice(0, page.limit)
  const last = data.at(-1)
  return { data: data.map(promptView), next_cursor: more && last ? encodeCursor([last.cursor_at, last.id]) : null }
}

export function contentHash(body: VersionCreate): string {
  const content = { template: body.template, model: body.model ?? null, params: body.params ?? {}, tools: body.tools ?? null, response_format: body.response_format ?? null, variables: body.variables ?? null, metadata: body.metadata ?? {} }
  return createHash('sha256').update(stableStringify(content)).digest('hex')
}

/**
 * Creates the next version (or returns the latest when its content is identical: `created` false).
 * `precondition` receives the prompt's current latest version number (its ETag) before anything is written.
 */
export async function createVersion(tx: Queryable, promptId: string, body: VersionCreate, precondition: (latest: number) => void): Promise<{ view: VersionView; created: boolean; latest: number }> {
  const { rows: locked } = await tx.query<{ latest_version: number }>('SELECT latest_version FROM prompts WHERE id = $1 FOR UPDATE', [promptId])
  const current = locked[0]
  if (!current) throw notFound('prompt', promptId)
  precondition(current.latest_version)
  const hash = contentHash(body)
  if (current.latest_version > 0) {
    const { rows } = await tx.query<Omit<VersionView, 'template_variables'>>(`SELECT ${VERSION_COLUMNS} FROM prompt_versions WHERE prompt_id = $1 AND version = $2`, [promptId, current.latest_version])
    if (rows[0] && String(rows[0].content_hash ?? '').trim() === hash) return { view: versionView(rows[0]), created: false, latest: current.latest_version }
  }
  const { rows: counter } = await tx.query<{ latest_version: number }>(
    'UPDATE prompts SET latest_version = latest_version + 1, updated_at = now() WHERE id = $1 RETURNING latest_version',
    [promptId],
  )
  const version = counter[0]!.latest_version
  const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v))
  const { rows } = await tx.query<Omit<VersionView, 'template_variables'>>(
    `INSERT INTO prompt_versions (prompt_id, version, template, model, params, tools, response_format, variables, metadata, message, content_hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ${VERSION_COLUMNS}`,
    [promptId, version, JSON.stringify(body.template), body.model ?? null, JSON.stringify(body.params ?? {}), json(body.tools),
      json(body.response_format), json(body.variables), JSON.stringify(body.metadata ?? {}), body.message ?? null, hash],
  )
  const view = versionView(rows[0]!)
  await audit(tx, { action: 'prompt.version.create', objectType: 'prompt_version', objectId: view.id, after: view })
  return { view, created: true, latest: version }
}

export async function listVersions(q: Queryable, promptId: string, page: Page): Promise<PageResult<VersionView>> {
  await getPrompt(q, promptId)
  const c = cursorParts(page.cursor, ['int4'])
  const { rows } = await q.query<Omit<VersionView, 'template_variables'>>(
    `SELECT ${VERSION_COLUMNS} FROM prompt_versions WHERE prompt_id = $1 AND ($2::int IS NULL OR version < $2) ORDER BY version DESC LIMIT $3`,
    [promptId, c?.[0] ?? null, page.limit + 1],
  )
  const more = rows.length > page.limit
  const data = rows.slice(0, page.limit)
  const last = data.at(-1)
  return { data: data.map(versionView), next_cursor: more && last ? encodeCursor([last.version]) : null }
}

/** A version by number or by id. */
export async function getVersion(q: Queryable, promptId: string, ref: string): Promise<VersionView> {
  const byNumber = /^[1-9][0-9]{0,8}$/.test(ref)
  const { rows } = await q.query<Omit<VersionView, 'template_variables'>>(
    `SELECT ${VERSION_COLUMNS} FROM prompt_versions WHERE prompt_id = $1 AND ${byNumber ? 'version = $2::int' : 'id = $2::uuid'}`,
    [promptId, ref],
  )
  if (!rows[0]) throw notFound('prompt version', ref)
  return versionView(rows[0])
}
