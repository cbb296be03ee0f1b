/**
 * Master key rotation: re-seals every provider credential under the keyring's current key, in one transaction
 * (all rows or none). Values already under the current key are left alone (after checking that it opens them), so
 * running it twice is harmless.
 * Afterwards the old keys can leave the keyring. Fingerprints do not change (same plaintext); rows keep their
 * revision (ETag): what the API shows is unchanged.
 */
import type { Store } from '../store/types.ts'
import { asStoredCredentials, credentialAad, type StoredCredentials } from './credentials.ts'
import { sealedKeyId, type Keyring } from './crypto.ts'

export interface RotationResult {
  currentKeyId: string
  rows: number
  /** Values re-sealed under the current key. */
  resealed: number
  /** Values that were already under it. */
  unchanged: number
  /** Key ids found before the rotation, with how many values each sealed. */
  before: Record<string, number>
}

export async function rotateCredentials(store: Store, keyring: Keyring): Promise<RotationResult> {
  const current = keyring.current
  if (!current) throw new Error('no master key is configured (MCP_MASTER_KEY or MCP_MASTER_KEYS): nothing to rotate to')
  return store.transaction(async (tx) => {
    const { rows } = await tx.query<{ id: string; name: string; credentials: unknown }>('SELECT id, name, credentials FROM provider_configs ORDER BY id FOR UPDATE')
    const result: RotationResult = { currentKeyId: current.id, rows: rows.length, resealed: 0, unchanged: 0, before: {} }
    for (const row of rows) {
      const stored = asStoredCredentials(row.credentials)
      const next: StoredCredentials = {}
      let changed = false
      for (const [field, c] of Object.entries(stored)) {
        const keyId = sealedKeyId(c.sealed) ?? '?'
        result.before[keyId] = (result.before[keyId] ?? 0) + 1
        // Opened even when it names the current key: a value sealed by another key under the same id (an id reused
        // for the new key) would otherwise count as rotated, and be lost once the old key is dropped.
        let plain: string
        try {
          plain = keyring.open(c.sealed, credentialAad(row.id, field))
        } catch (e) {
          const reused = keyId === current.id ? ` (the current key has the id '${keyId}' but did not seal it: give the new key an id of its own)` : ''
          throw new Error(`provider '${row.name}' (${row.id}) credentials.${field}: ${(e as Error).message}${reused}; add its key to MCP_MASTER_KEYS and run again (nothing was changed)`)
        }
        if (keyId === current.id) { next[field] = c; result.unchanged++; continue }
        next[field] = { ...c, sealed: keyring.seal(plain, credentialAad(row.id, field)) }
        result.resealed++
        changed = true
      }
      if (changed) await tx.query('UPDATE provider_configs SET credentials = $2 WHERE id = $1', [row.id, JSON.stringify(next)])
    }
    return result
  })
}
