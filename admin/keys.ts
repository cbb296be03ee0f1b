/**
 * API keys on the control plane: the write schemas, the minting rule ("never broader than the caller"), and the
 * key resolver the data plane and the admin gate verify keys with (from the snapshot; last use recorded in the
 * background, never on the request path).
 *
 * Key format and verification: plugins/auth/api-key.ts. Scopes and their subset rule: plugins/auth/scopes.ts.
 */
import type { Logger } from 'pino'
import { GatewayError } from '../gateway/errors.ts'
import { compileSchema, type JSONSchema } from '../gateway/validate.ts'
import type { KeyRecord, KeyResolver } from '../plugins/auth/api-key.ts'
import { ROLES, roleWithin, type Role } from '../plugins/auth/roles.ts'
import { BUDGET_FIELDS, LIMIT_FIELDS, numbersWithin, scopesWithin, type KeyBudgets, type KeyLimits, type KeyScopes, type Principal } from '../plugins/auth/scopes.ts'
import type { Queryable } from '../store/types.ts'
import { fieldForbidden } from './rbac.ts'

const handle = (max: number): JSONSchema => ({ type: 'string', minLength: 1, maxLength: max, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' })
const list = (item: JSONSchema): JSONSchema => ({ type: ['array', 'null'], maxItems: 200, uniqueItems: true, items: item })

export const keyScopesSchema: JSONSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'null or absent: not restricted in that dimension (docs/rbac.md, "Scopes").',
  properties: {
    environments: list(handle(50)),
    models: list({ type: 'string', minLength: 1, maxLength: 200, pattern: '^[^\\s*]*\\*?$', description: 'Exact, or a prefix ending in *.' }),
    aliases: list({ type: 'string', minLength: 1, maxLength: 200 }),
    deployments: list({ type: 'string', format: 'uuid' }),
  },
}

export const keyLimitsSchema: JSONSchema = {
  type: 'object', additionalProperties: false,
  properties: Object.fromEntries(LIMIT_FIELDS.map((f) => [f, { type: 'integer', minimum: 1, maximum: 1_000_000_000 }])),
}

export const keyBudgetsSchema: JSONSchema = {
  type: 'object', additionalProperties: false,
  properties: Object.fromEntries(BUDGET_FIELDS.map((f) => [f, { type: 'number', minimum: 0, maximum: 1_000_000_000 }])),
}

const keyFields: Record<string, JSONSchema> = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  owner: { type: 'string', minLength: 1, maxLength: 200 },
  team: handle(100),
  role: { enum: [...ROLES] },
  scopes: keyScopesSchema,
  limits: keyLimitsSchema,
  budgets: keyBudgetsSchema,
  metadata: { type: 'object', description: 'Free-form JSON object.' },
  expires_at: { type: ['string', 'null'], format: 'date-time' },
}

export const keyCreateSchema: JSONSchema = { type: 'object', additionalProperties: false, properties: keyFields }
export const keyUpdateSchema: JSONSchema = { type: 'object', additionalProperties: false, minProperties: 1, properties: keyFields }
export const keyRotateSchema: JSONSchema = {
  type: 'object', additionalProperties: false,
  properties: {
    overlap_seconds: { type: 'integer', minimum: 0, maximum: 30 * 86_400, default: 3600, description: 'How long the old key keeps working (0: revoked at once).' },
    expires_at: { type: ['string', 'null'], format: 'date-time', description: 'Expiry of the new key (default: the old key\'s).' },
  },
}

const nullableDate: JSONSchema = { type: ['string', 'null'], format: 'date-time' }
export const keySchema: JSONSchema = {
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' }, prefix: { type: 'string' }, name: { type: ['string', 'null'] }, owner: { type: 'string' },
    team: { type: ['string', 'null'] }, role: { enum: [...ROLES] }, scopes: keyScopesSchema, limits: keyLimitsSchema, budgets: keyBudgetsSchema,
    metadata: { type: 'object' }, expires_at: nullableDate, revoked_at: nullableDate, rotated_from_id: { type: ['string', 'null'] },
    rotation_overlap_until: nullableDate, last_used_at: nullableDate, created_by: { type: ['string', 'null'] },
    created_at: { type: 'string', format: 'date-time' }, updated_at: { type: 'string', format: 'date-time' },
    status: { enum: ['active', 'rotating', 'expired', 'revoked'] },
    key: { type: 'string', description: 'The whole key: in the creation and rotation answers only, never again.' },
    warnings: {
      type: 'array', items: { type: 'string' },
      description: 'In the creation, change and rotation answers only, when some of the key\'s limits or budgets are not held: the routes whose chains lack rate-limit or budget after auth.',
    },
  },
}

/** The rotation answer: the new key, and the old one as the rotation left it. */
export const keyRotatedSchema: JSONSchema = {
  ...keySchema,
  properties: {
    ...(keySchema['properties'] as Record<string, JSONSchema>),
    rotated: {
      type: 'object',
      description: 'The old key after the rotation: rotating until rotation_overlap_until, or revoked at once (overlap_seconds 0).',
      required: ['id', 'status', 'rotation_overlap_until', 'revoked_at'],
      properties: { id: { type: 'string', format: 'uuid' }, status: { enum: ['active', 'rotating', 'expired', 'revoked'] }, rotation_overlap_until: nullableDate, revoked_at: nullableDate },
    },
  },
}

export const auditEntrySchema: JSONSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' }, created_at: { type: 'string', format: 'date-time' }, actor_key_id: { type: ['string', 'null'] }, actor: { type: ['string', 'null'] },
    action: { type: 'string' }, object_type: { type: 'string' }, object_id: { type: ['string', 'null'] }, team: { type: ['string', 'null'] },
    before: {}, after: {}, request_id: { type: ['string', 'null'] }, source_ip: { type: ['string', 'null'] },
  },
}

export interface KeyScopesInput { environments?: string[] | null; models?: string[] | null; aliases?: string[] | null; deployments?: string[] | null }
export interface KeyCreate {
  name?: string; owner?: string; team?: string; role?: Role; scopes?: KeyScopesInput; limits?: KeyLimits; budgets?: KeyBudgets
  metadata?: Record<string, unknown>; expires_at?: string | null
}
export type KeyUpdate = KeyCreate
export interface KeyRotate { overlap_seconds?: number; expires_at?: string | null }

export const keyValidators = {
  create: compileSchema<KeyCreate>(keyCreateSchema),
  update: compileSchema<KeyUpdate>(keyUpdateSchema),
  rotate: compileSchema<KeyRotate>(keyRotateSchema),
}

export function scopesOf(s: KeyScopesInput | undefined): KeyScopes {
  return {
    environments: s?.environments ?? null, models: s?.models ?? null, aliases: s?.aliases ?? null,
    deployments: s?.deployments ? s.deployments.map((d) => d.toLowerCase()) : null,
  }
}

/** What a key can do, for the "not broader than" comparison. */
export interface KeyPowers {
  role: Role
  scopes: KeyScopes
  limits: KeyLimits
  budgets: KeyBudgets
  /** ms since the epoch; null: never expires. */
  expiresAt: number | null
}

/** The first field in which `k` reaches further than `caller`, or undefined. */
export function broaderField(k: KeyPowers, caller: Principal): string | undefined {
  if (!roleWithin(k.role, caller.role)) return 'role'
  return scopesWithin(k.scopes, caller.scopes)
    ?? numbersWithin(k.limits, caller.limits, LIMIT_FIELDS, 'limits')
    ?? numbersWithin(k.budgets, caller.budgets, BUDGET_FIELDS, 'budgets')
    ?? (caller.expiresAt !== undefined && (k.expiresAt === null || k.expiresAt > caller.expiresAt) ? 'expires_at' : undefined)
}

/** Minting: 403 naming the first field in which the new key would reach further than its creator. */
export function checkMint(k: KeyPowers, caller: Principal): void {
  const f = broaderField(k, caller)
  if (f !== undefined) throw fieldForbidden(f, 'a key may not create a key broader than itself')
}

/** Acting on an existing key (rotate, revoke, update): it must be inside the caller. */
export function checkActOn(k: KeyPowers, caller: Principal, verb: string, id: string): void {
  const f = broaderField(k, caller)
  if (f !== undefined) {
    throw new GatewayError('MCP_ERR_AUTH_FORBIDDEN', { action: `${verb} key ${id}: it reaches further than the calling key (${f})` }, { details: 'admin.key_broader', param: f })
  }
}

/**
 * The key resolver given to the data plane (`services.keys`) and the admin gate: lookups read the current snapshot;
 * `used` collects key ids, flushed every `flushIntervalMs` as one UPDATE of last_used_at (which does not bump
 * control_plane_version, so no instance reloads because of it).
 */
export class SnapshotKeyResolver implements KeyResolver {
  readonly #keys: () => ReadonlyMap<string, KeyRecord>
  readonly #store: Queryable
  readonly #log: Logger
  readonly #used = new Set<string>()
  readonly #timer: NodeJS.Timeout
  #flushing: Promise<void> = Promise.resolve()

  constructor(o: { keys: () => ReadonlyMap<string, KeyRecord>; store: Queryable; log: Logger; flushIntervalMs?: number }) {
    this.#keys = o.keys
    this.#store = o.store
    this.#log = o.log
    this.#timer = setInterval(() => void this.flush(), o.flushIntervalMs ?? 60_000)
    this.#timer.unref()
  }

  lookup(prefix: string): KeyRecord | undefined {
    return this.#keys().get(prefix)
  }

  used(keyId: string): void {
    if (this.#used.size < 100_000) this.#used.add(keyId)
  }

  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#used.size === 0) return
      const ids = [...this.#used]
      this.#used.clear()
      try {
        await this.#store.query(
          'UPDATE api_keys SET last_used_at = now() WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)',
          [JSON.stringify(ids)],
        )
      } catch (err) {
        this.#log.warn({ err, keys: ids.length }, 'keys: last_used_at could not be recorded (skipped)')
      }
    })
    return this.#flushing
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.flush()
  }
}
