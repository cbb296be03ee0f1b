/**
 * Provider credentials as stored in provider_configs.credentials (JSONB): one entry per secret field,
 *
 *   { "apiKey": { "sealed": "v1.<keyId>.<iv>.<tag>.<ct>", "fingerprint": "3f2a9c01b7de", "last4": "x9Qa" } }
 *
 * The associated data of each value is `provider_configs:<row id>:<field>`. Fingerprint and last four are kept
 * beside the ciphertext so listing providers needs no master key; the plaintext only ever exists in memory
 * (the control plane's snapshot, the pipeline's adapters).
 */
import { fingerprint, lastFour, sealedKeyId, type Keyring } from './crypto.ts'

export interface StoredCredential {
  sealed: string
  fingerprint: string
  last4: string | null
}

export type StoredCredentials = Record<string, StoredCredential>

/** What the API returns for a credential: never the value. */
export interface CredentialView {
  fingerprint: string
  last4: string | null
}

export function credentialAad(rowId: string, field: string): string {
  return `provider_configs:${rowId}:${field}`
}

export function sealCredential(keyring: Keyring, rowId: string, field: string, secret: string): StoredCredential {
  return { sealed: keyring.seal(secret, credentialAad(rowId, field)), fingerprint: fingerprint(secret), last4: lastFour(secret) }
}

export function sealCredentials(keyring: Keyring, rowId: string, plain: Readonly<Record<string, string>>): StoredCredentials {
  const out: StoredCredentials = {}
  for (const [field, secret] of Object.entries(plain)) out[field] = sealCredential(keyring, rowId, field, secret)
  return out
}

/** Throws SealError naming nothing secret when a value does not open. */
export function openCredentials(keyring: Keyring, rowId: string, stored: StoredCredentials): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [field, c] of Object.entries(stored)) out[field] = keyring.open(c.sealed, credentialAad(rowId, field))
  return out
}

export function credentialViews(stored: StoredCredentials): Record<string, CredentialView> {
  const out: Record<string, CredentialView> = {}
  for (const [field, c] of Object.entries(stored)) out[field] = { fingerprint: c.fingerprint, last4: c.last4 }
  return out
}

/** Narrows the JSONB column; anything unexpected (a hand-edited row) counts as no credentials. */
export function asStoredCredentials(v: unknown): StoredCredentials {
  const out: StoredCredentials = {}
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return out
  for (const [field, c] of Object.entries(v as Record<string, unknown>)) {
    if (c !== null && typeof c === 'object' && typeof (c as StoredCredential).sealed === 'string') {
      const s = c as StoredCredential
      out[field] = { sealed: s.sealed, fingerprint: String(s.fingerprint ?? ''), last4: typeof s.last4 === 'string' ? s.last4 : null }
    }
  }
  return out
}

/** Key ids that sealed the values of a row. */
export function credentialKeyIds(stored: StoredCredentials): string[] {
  return Object.values(stored).map((c) => sealedKeyId(c.sealed) ?? '?')
}
