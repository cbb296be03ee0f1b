/**
 * Secrets at rest: AES-256-GCM under a master key from a keyring. A sealed value is one string,
 *
 *   v1.<keyId>.<iv>.<tag>.<ciphertext>        (iv, tag, ciphertext in base64url; iv 12 bytes, tag 16)
 *
 * so the key that sealed it travels with it and keys can rotate: the keyring holds the current key (used to seal)
 * and older ones (still able to open) until `npm run rotate-keys` re-sealed everything under the current one.
 * The associated data binds a value to where it is stored (the provider row id and field), so a ciphertext
 * copied into another row or field does not open.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/

export interface MasterKey {
  readonly id: string
  readonly key: Buffer
}

/** Opening failed: unknown key id, tampered value, wrong associated data, or not a sealed value at all. */
export class SealError extends Error {
  override name = 'SealError'
}

/** 32 bytes from base64 (standard or url-safe, padded or not) or 64 hex digits; throws otherwise. */
export function parseKeyMaterial(text: string, where: string): Buffer {
  const t = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex')
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (b.length === 32) return b
  }
  throw new Error(`${where}: a master key must be 32 bytes, written as base64 (44 characters) or hex (64 digits)`)
}

/** The id a key gets when none is given: the first 8 hex digits of its sha256 (stable, reveals nothing usable). */
export function derivedKeyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8)
}

export function masterKey(key: Buffer, id = derivedKeyId(key)): MasterKey {
  if (key.length !== 32) throw new Error('a master key must be 32 bytes')
  if (!KEY_ID.test(id)) throw new Error(`master key id '${id}' must match ${KEY_ID.source}`)
  return { id, key }
}

export class Keyring {
  /** Seals new values; undefined when no key is configured (production without MCP_MASTER_KEY). */
  readonly current: MasterKey | undefined
  readonly #byId: ReadonlyMap<string, Buffer>

  /** `keys[0]` is the current key; the others only open. */
  constructor(keys: readonly MasterKey[]) {
    const byId = new Map<string, Buffer>()
    for (const k of keys) {
      const seen = byId.get(k.id)
      if (seen && !seen.equals(k.key)) throw new Error(`two different master keys have the id '${k.id}'`)
      byId.set(k.id, k.key)
    }
    this.current = keys[0]
    this.#byId = byId
  }

  get ids(): string[] {
    return [...this.#byId.keys()]
  }

  has(keyId: string): boolean {
    return this.#byId.has(keyId)
  }

  seal(plaintext: string, aad: string): string {
    const k = this.current
    if (!k) throw new SealError('no master key is configured')
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', k.key, iv, { authTagLength: TAG_BYTES })
    cipher.setAAD(Buffer.from(aad, 'utf8'))
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return [VERSION, k.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.')
  }

  open(sealed: string, aad: string): string {
    const parts = sealed.split('.')
    if (parts.length !== 5 || parts[0] !== VERSION) throw new SealError('not a sealed value')
    const [, keyId, ivText, tagText, ctText] = parts as [string, string, string, string, string]
    const key = this.#byId.get(keyId)
    if (!key) throw new SealError(`sealed with master key '${keyId}', which is not in the keyring`)
    const iv = Buffer.from(ivText, 'base64url')
    const tag = Buffer.from(tagText, 'base64url')
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new SealError('malformed sealed value')
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
      decipher.setAAD(Buffer.from(aad, 'utf8'))
      decipher.setAuthTag(tag)
      return Buffer.concat([decipher.update(Buffer.from(ctText, 'base64url')), decipher.final()]).toString('utf8')
    } catch {
      throw new SealError('the sealed value does not authenticate (tampered, or bound to another row or field)')
    }
  }
}

/** The key id inside a sealed value, or undefined when the string is not one. */
export function sealedKeyId(sealed: string): string | undefined {
  const parts = sealed.split('.')
  return parts.length === 5 && parts[0] === VERSION ? parts[1] : undefined
}

/** sha256 of a secret, first 12 hex digits: enough to tell two keys apart, useless to recover one. */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex').slice(0, 12)
}

/** The last four characters, only for secrets long enough that they give nothing away (>= 12 characters). */
export function lastFour(secret: string): string | null {
  return secret.length >= 12 ? secret.slice(-4) : null
}
