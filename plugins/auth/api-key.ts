/**
 * API keys: `mcp_<prefix>_<secret>`.
 *
 * - prefix: 12 base62 characters (~71 bits), the public key id: shown in lists and logs, unique in api_keys.
 * - secret: 32 random bytes (256 bits), base64url (43 characters). Only sha256(secret) is stored (hex).
 *
 * Verification never touches the database: the key resolver (`services.keys`, provided by the control plane from
 * its in-memory snapshot) finds the record by prefix, and sha256(secret) is compared with the stored digest with
 * `timingSafeEqual`. An unknown prefix is compared with a dummy digest, so the work done does not depend on it.
 * The bootstrap key (MCP_ADMIN_KEY) is compared the same way, digest against digest.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Role } from './roles.ts'
import { UNRESTRICTED, type KeyBudgets, type KeyLimits, type KeyScopes, type Principal } from './scopes.ts'

export const KEY_PREFIX_LENGTH = 12
export const KEY_SECRET_BYTES = 32
const KEY_RE = /^mcp_([0-9A-Za-z]{12})_([A-Za-z0-9_-]{43})$/
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** What the data plane needs of a key; built by the control plane from api_keys, immutable. */
export interface KeyRecord {
  readonly id: string
  readonly prefix: string
  /** sha256(secret), 32 bytes. */
  readonly hash: Buffer
  readonly role: Role
  readonly team: string | null
  readonly scopes: KeyScopes
  readonly limits: KeyLimits
  readonly budgets: KeyBudgets
  /** The earlier of expires_at and rotation_overlap_until, ms since the epoch; null: never. */
  readonly expiresAt: number | null
}

/** Finds key records by prefix (no I/O) and learns which keys were used (batched last_used_at). */
export interface KeyResolver {
  lookup(prefix: string): KeyRecord | undefined
  used?(keyId: string): void
}

declare module '../../gateway/pipeline/types.ts' {
  interface PluginServices {
    /** API keys (admin/bootstrap.ts provides them from the control plane's snapshot). */
    keys?: KeyResolver
  }
}

export function sha256(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest()
}

function base62(n: number): string {
  let out = ''
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248) out += BASE62[b % 62] // 248 = 4 * 62: no modulo bias
      if (out.length === n) break
    }
  }
  return out
}

export interface NewKey {
  /** The whole key, shown once. */
  key: string
  prefix: string
  /** sha256(secret), hex: what api_keys.key_hash stores. */
  hashHex: string
}

export function generateKey(): NewKey {
  const prefix = base62(KEY_PREFIX_LENGTH)
  const secret = randomBytes(KEY_SECRET_BYTES).toString('base64url')
  return { key: `mcp_${prefix}_${secret}`, prefix, hashHex: sha256(secret).toString('hex') }
}

export function parseKey(key: string): { prefix: string; secret: string } | undefined {
  const m = KEY_RE.exec(key)
  return m ? { prefix: m[1]!, secret: m[2]! } : undefined
}

/** The public part of a key-looking string (for logs), never the secret. */
export function keyPrefixOf(key: string): string | undefined {
  return parseKey(key)?.prefix
}

export type AuthFailure = 'missing' | 'invalid' | 'expired'
export type AuthOutcome = { ok: true; principal: Principal; record?: KeyRecord } | { ok: false; reason: AuthFailure }

export const BOOTSTRAP_PRINCIPAL: Principal = Object.freeze({ keyId: 'bootstrap', role: 'admin', scopes: UNRESTRICTED })

export function principalOfRecord(r: KeyRecord): Principal {
  return {
    keyId: r.id, role: r.role, prefix: r.prefix, scopes: r.scopes, limits: r.limits, budgets: r.budgets,
    ...(r.team !== null ? { team: r.team } : {}),
    ...(r.expiresAt !== null ? { expiresAt: r.expiresAt } : {}),
  }
}

const DUMMY = sha256('mcp-dummy-key-digest')

/**
 * `presented` (undefined: no key sent) → the principal, or why not. The bootstrap key, when set, is checked first;
 * then API keys through `keys`. Principals of records are cached per record (records are immutable).
 */
export function createAuthenticator(opts: { adminKey?: string | undefined; keys?: KeyResolver | undefined; now?: () => number }): (presented: string | undefined) => AuthOutcome {
  const expected = opts.adminKey ? sha256(opts.adminKey) : undefined
  const keys = opts.keys
  const now = opts.now ?? Date.now
  const principals = new WeakMap<KeyRecord, Principal>()
  return (presented) => {
    if (presented === undefined) return { ok: false, reason: 'missing' }
    const whole = sha256(presented)
    if (expected && timingSafeEqual(whole, expected)) return { ok: true, principal: BOOTSTRAP_PRINCIPAL }
    const parsed = parseKey(presented)
    if (!parsed || !keys) {
      timingSafeEqual(whole, DUMMY)
      return { ok: false, reason: 'invalid' }
    }
    const record = keys.lookup(parsed.prefix)
    const digest = sha256(parsed.secret)
    const same = timingSafeEqual(digest, record ? record.hash : DUMMY)
    if (!record || !same) return { ok: false, reason: 'invalid' }
    if (record.expiresAt !== null && record.expiresAt <= now()) return { ok: false, reason: 'expired' }
    let p = principals.get(record)
    if (!p) { p = Object.freeze(principalOfRecord(record)); principals.set(record, p) }
    keys.used?.(record.id)
    return { ok: true, principal: p, record }
  }
}
