/**
 * Where the master keys come from (docs/api.md, "Credentials at rest"):
 *
 * - `MCP_MASTER_KEYS=[id:]key,[id:]key,...`: a keyring; the first key seals, all of them open. An entry without
 *   `id:` gets the derived id (first 8 hex digits of the key's sha256), the same id `MCP_MASTER_KEY` gets.
 * - `MCP_MASTER_KEY=key`: one key (ignored when MCP_MASTER_KEYS is set).
 * - Neither, NODE_ENV=production: no key. Credentials cannot be stored (MCP_ERR_ADMIN_MASTER_KEY_MISSING) and
 *   stored ones cannot be opened (those providers stay out of the pipeline, logged).
 * - Neither, otherwise (development): a key file `<dataDir>/master.key` (mode 0600) is created on first start and
 *   reused, with a warning; with an in-memory store (`memory://`) the key lives in memory only.
 *
 * A key is 32 bytes as base64 or hex: `openssl rand -base64 32`.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Keyring, masterKey, parseKeyMaterial, type MasterKey } from './crypto.ts'

export interface KeyringSource {
  env?: NodeJS.ProcessEnv
  /** MCP_DATA_DIR; 'memory://' keeps a generated development key in memory. */
  dataDir: string
  log?: WarnLog
}

/** The one logger method used (pino's Logger fits). */
export interface WarnLog {
  warn(obj: object, msg: string): void
}

export const DEV_KEY_FILE = 'master.key'

function parseKeyring(text: string): MasterKey[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((entry, i) => {
    const colon = entry.indexOf(':')
    const where = `MCP_MASTER_KEYS[${i}]`
    if (colon === -1) return masterKey(parseKeyMaterial(entry, where))
    return masterKey(parseKeyMaterial(entry.slice(colon + 1), where), entry.slice(0, colon))
  })
}

/** The keyring of this process; throws on a malformed key (the process should not start). */
export async function loadKeyring(source: KeyringSource): Promise<Keyring> {
  const env = source.env ?? process.env
  const ring = env['MCP_MASTER_KEYS']
  if (ring) {
    const keys = parseKeyring(ring)
    if (keys.length === 0) throw new Error('MCP_MASTER_KEYS is set but holds no key')
    return new Keyring(keys)
  }
  const single = env['MCP_MASTER_KEY']
  if (single) return new Keyring([masterKey(parseKeyMaterial(single, 'MCP_MASTER_KEY'))])
  if (env['NODE_ENV'] === 'production') return new Keyring([])
  if (source.dataDir === 'memory://' || source.dataDir === '') {
    source.log?.warn({}, 'no MCP_MASTER_KEY: provider credentials are sealed under a key that lives in memory only (development)')
    return new Keyring([masterKey(randomBytes(32))])
  }
  const file = join(source.dataDir, DEV_KEY_FILE)
  let text: string | undefined
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
  if (text === undefined) {
    await mkdir(source.dataDir, { recursive: true })
    const generated = randomBytes(32).toString('base64')
    try {
      await writeFile(file, generated + '\n', { mode: 0o600, flag: 'wx' })
      text = generated
    } catch (e) {
      // Another process created it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      text = await readFile(file, 'utf8')
    }
  }
  source.log?.warn({ file }, 'no MCP_MASTER_KEY: provider credentials are sealed under a generated development key file; set MCP_MASTER_KEY in production')
  return new Keyring([masterKey(parseKeyMaterial(text, file))])
}
