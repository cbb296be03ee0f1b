/**
 * Prompts and versions:
 *   POST /prompts · GET /prompts (?team, ?name, paginated) · GET /prompts/{id}
 *   POST /prompts/{id}/versions (If-Match optional: the prompt's ETag is its latest version number)
 *   GET /prompts/{id}/versions (paginated, newest first) · GET /prompts/{id}/versions/{version or id}
 *
 * Access (docs/rbac.md): prompts.read / prompts.write, checked here; a team-bound key sees and writes its team's
 * prompts only (another team's prompt is a 404) and creates prompts of its own team.
 */
import type { IncomingMessage } from 'node:http'
import { compileUserSchema, userPatternProblem } from '../../gateway/validate.ts'
import type { Principal } from '../../plugins/auth/scopes.ts'
import type { Queryable } from '../../store/types.ts'
import { auditActor, bindAudit } from '../audit.ts'
import type { ControlPlane } from '../control-plane.ts'
import { bodyInvalid, checkIfMatch, isUuid, notFound, pageOf, queryOf, requireUuid, sendWithEtag, unprocessable } from '../http.ts'
import { authorize, hidden, readChecked, teamFilter, visible, writeTeam, WRITE_RULES } from '../rbac.ts'
import { createPrompt, createVersion, getPrompt, getVersion, listPrompts, listVersions } from '../repo/prompts.ts'
import { validators } from '../schemas.ts'
import { sendJson, type AdminServer } from '../server.ts'
import { compileTemplate, TemplateSyntaxError } from '../template.ts'
import { toolChoiceProblem } from '../tool-choice.ts'

const BASE = '/api/v1/mcp'

/**
 * The prompt's team when the principal may see it; another team's prompt is a 404 (as a missing one). A missing
 * prompt returns undefined (the repository answers its own 404).
 */
export async function promptTeamFor(q: Queryable, p: Principal, id: string): Promise<string | null | undefined> {
  const { rows } = await q.query<{ team: string | null }>('SELECT team FROM prompts WHERE id = $1', [id])
  if (!rows[0]) return undefined
  if (!visible(p, rows[0].team)) throw hidden('prompt', id)
  return rows[0].team
}

/** Keywords whose values are data, not schemas: a `pattern` key inside them is not a pattern. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples'])

/**
 * The first pattern of a user's schema (`pattern`, `patternProperties`' keys) the linear-time engine refuses, with
 * its path (`variables.properties.city.pattern`): the 422 names it. The schema's compile refuses it anyway.
 */
function refusedPattern(schema: unknown, path: string): { path: string; why: string } | undefined {
  if (schema === null || typeof schema !== 'object') return undefined
  for (const [k, v] of Object.entries(schema)) {
    const at = Array.isArray(schema) ? `${path}[${k}]` : `${path}.${k}`
    if (DATA_KEYWORDS.has(k) && !Array.isArray(schema)) continue
    if (k === 'pattern' && typeof v === 'string') {
      const why = userPatternProblem(v)
      if (why) return { path: at, why }
    }
    if (k === 'patternProperties' && v !== null && typeof v === 'object') {
      for (const p of Object.keys(v)) {
        const why = userPatternProblem(p)
        if (why) return { path: `${at}.${p}`, why }
      }
    }
    const inner = refusedPattern(v, at)
    if (inner) return inner
  }
  return undefined
}

function bound(req: IncomingMessage, p: Principal, tx: Queryable, team: string | null | undefined): Queryable {
  return bindAudit(tx, { actor: auditActor(req, p), ...(team !== undefined ? { team } : {}) })
}

export function registerPromptRoutes(admin: AdminServer, cp: ControlPlane): void {
  admin.route('POST', `${BASE}/prompts`, async (req, res) => {
    const who = authorize(req, 'prompts.write')
    const body = await readChecked(req, validators.promptCreate, WRITE_RULES['POST /prompts']!)
    // Execute and the snapshot find a prompt by id or by name: a name shaped like an id would shadow another prompt.
    if (isUuid(body.name)) throw bodyInvalid(['name: must not be shaped like a UUID (prompts are also found by id)'])
    const team = writeTeam(who, body.team)
    const { team: _t, ...rest } = body
    const p = await cp.write((tx) => createPrompt(bound(req, who, tx, team), team === null ? rest : { ...rest, team }))
    sendWithEtag(res, 201, p, p.latest_version, { location: `${BASE}/prompts/${p.id}` })
  })

  admin.route('GET', `${BASE}/prompts`, async (req, res) => {
    const who = authorize(req, 'prompts.read')
    const q = queryOf(req)
    const page = pageOf(q)
    const own = teamFilter(who)
    const asked = q.get('team') ?? undefined
    if (own !== undefined && asked !== undefined && asked !== own) { sendJson(res, 200, { data: [], next_cursor: null }); return }
    sendJson(res, 200, await cp.read((db) => listPrompts(db, { team: own ?? asked, name: q.get('name') ?? undefined }, page)))
  })

  admin.route('GET', `${BASE}/prompts/{id}`, async (req, res, params) => {
    req.resume()
    const who = authorize(req, 'prompts.read')
    const id = requireUuid('prompt', params['id'])
    const p = await cp.read(async (db) => { await promptTeamFor(db, who, id); return getPrompt(db, id) })
    sendWithEtag(res, 200, p, p.latest_version)
  })

  admin.route('POST', `${BASE}/prompts/{id}/versions`, async (req, res, params) => {
    const who = authorize(req, 'prompts.write')
    const id = requireUuid('prompt', params['id'])
    const body = await readChecked(req, validators.versionCreate, WRITE_RULES['POST /prompts/{id}/versions']!)
    try {
      compileTemplate(body.template)
    } catch (e) {
      if (e instanceof TemplateSyntaxError) throw bodyInvalid([e.message])
      throw e
    }
    const choiceProblem = toolChoiceProblem(body.params?.tool_choice, body.tools)
    if (choiceProblem) throw unprocessable(`params.tool_choice: ${choiceProblem}`, 'params.tool_choice')
    if (body.variables !== undefined) {
      for (const k of ['$id', '$async']) if (k in body.variables) throw unprocessable(`variables.${k}: not supported in a variables schema`, `variables.${k}`)
      const pattern = refusedPattern(body.variables, 'variables')
      if (pattern) throw unprocessable(`${pattern.path}: ${pattern.why}`, pattern.path)
      try { compileUserSchema(body.variables) } catch (e) { throw unprocessable(`variables: not a valid JSON Schema: ${(e as Error).message}`, 'variables') }
    }
    const r = await cp.write(async (tx) => {
      const team = await promptTeamFor(tx, who, id)
      return createVersion(bound(req, who, tx, team), id, body, (latest) => checkIfMatch(req, latest, `prompt ${id}`, false))
    })
    sendWithEtag(res, r.created ? 201 : 200, r.view, r.latest, { location: `${BASE}/prompts/${id}/versions/${r.view.version}` })
  })

  admin.route('GET', `${BASE}/prompts/{id}/versions`, async (req, res, params) => {
    const who = authorize(req, 'prompts.read')
    const id = requireUuid('prompt', params['id'])
    const page = pageOf(queryOf(req))
    sendJson(res, 200, await cp.read(async (db) => { await promptTeamFor(db, who, id); return listVersions(db, id, page) }))
  })

  admin.route('GET', `${BASE}/prompts/{id}/versions/{version}`, async (req, res, params) => {
    req.resume()
    const who = authorize(req, 'prompts.read')
    const id = requireUuid('prompt', params['id'])
    const ref = params['version'] ?? ''
    if (!/^[1-9][0-9]{0,8}$/.test(ref) && !isUuid(ref)) throw notFound('prompt version', ref)
    sendJson(res, 200, await cp.read(async (db) => { await promptTeamFor(db, who, id); return getVersion(db, id, ref) }))
  })
}
