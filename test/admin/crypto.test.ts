/**
 * Credentials at rest: AES-256-GCM round trip, tampering and a wrong row id (associated data) fail, key material
 * parsing, the keyring sources (env, development key file, production without a key), and rotation — through
 * the function on both engines and through `npm run rotate-keys` on an embedded store.
 */
import { execFile } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { asStoredCredentials, credentialAad, openCredentials, sealCredentials } from '../../admin/credentials.ts'
import { derivedKeyId, fingerprint, Keyring, lastFour, masterKey, parseKeyMaterial, SealError, sealedKeyId } from '../../admin/crypto.ts'
import { DEV_KEY_FILE, loadKeyring } from '../../admin/master-key.ts'
import { rotateCredentials } from '../../admin/rotate-keys.ts'
import { openStore } from '../../store/index.ts'
import type { Store } from '../../store/types.ts'
import { testEngines } from './helpers.ts'

const run = promisify(execFile)
const key = (): Buffer => randomBytes(32)

describe('sealing', () => {
  const ring = new Keyring([masterKey(key(), 'k1')])

  it('round-trips, with the key id inside the ciphertext and a fresh IV each time', () => {
    const a = ring.seal('sk-secret-value', 'row-1')
    const b = ring.seal('sk-secret-value', 'row-1')
    expect(a).not.toBe(b)
    expect(a).toMatch(/^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/)
    expect(a).not.toContain('sk-secret-value')
    expect(sealedKeyId(a)).toBe('k1')
    expect(ring.open(a, 'row-1')).toBe('sk-secret-value')
    expect(ring.open(ring.seal('', 'r'), 'r')).toBe('')
    expect(ring.open(ring.seal('ünïcødé 🔑', 'r'), 'r')).toBe('ünïcødé 🔑')
  })

  it('a tampered ciphertext, tag or IV does not open', () => {
    const sealed = ring.seal('sk-secret-value', 'row-1')
    const parts = sealed.split('.')
    for (const i of [2, 3, 4]) {
      const p = [...parts]
      const bytes = Buffer.from(p[i]!, 'base64url')
      bytes[0]! ^= 1
      p[i] = bytes.toString('base64url')
      expect(() => ring.open(p.join('.'), 'row-1'), `part ${i}`).toThrow(SealError)
    }
    expect(() => ring.open('v1.k1.x.y', 'row-1')).toThrow(SealError)
    expect(() => ring.open('plaintext', 'row-1')).toThrow(SealError)
  })

  it('the wrong associated data (another row id or field) does not open', () => {
    const id = randomUUID()
    const stored = sealCredentials(ring, id, { apiKey: 'sk-abcdefghijklmnop' })
    expect(openCredentials(ring, id, stored)).toEqual({ apiKey: 'sk-abcdefghijklmnop' })
    expect(() => openCredentials(ring, randomUUID(), stored)).toThrow(SealError)
    expect(() => ring.open(stored['apiKey']!.sealed, credentialAad(id, 'otherField'))).toThrow(SealError)
  })

  it('a key that is not in the keyring does not open, and says which key it needs', () => {
    const other = new Keyring([masterKey(key(), 'k2')])
    expect(() => other.open(ring.seal('x', 'r'), 'r')).toThrow(/'k1'/)
  })

  it('stores a fingerprint and the last four characters, never the value', () => {
    const stored = sealCredentials(ring, 'r', { apiKey: 'sk-live-0123456789abcdef' })
    expect(stored['apiKey']).toMatchObject({ fingerprint: fingerprint('sk-live-0123456789abcdef'), last4: 'cdef' })
    expect(stored['apiKey']!.fingerprint).toMatch(/^[0-9a-f]{12}$/)
    expect(JSON.stringify(stored)).not.toContain('0123456789abcdef')
    expect(lastFour('short')).toBeNull()
    expect(asStoredCredentials({ apiKey: 'plain' })).toEqual({})
  })

  it('parses key material as base64, base64url or hex; rejects anything else', () => {
    const k = key()
    expect(parseKeyMaterial(k.toString('base64'), 'x').equals(k)).toBe(true)
    expect(parseKeyMaterial(k.toString('base64url'), 'x').equals(k)).toBe(true)
    expect(parseKeyMaterial(k.toString('hex'), 'x').equals(k)).toBe(true)
    expect(() => parseKeyMaterial('too-short', 'MCP_MASTER_KEY')).toThrow(/MCP_MASTER_KEY/)
    expect(() => parseKeyMaterial(randomBytes(16).toString('base64'), 'x')).toThrow()
  })
})

describe('keyring sources', () => {
  const dirs: string[] = []
  afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

  it('MCP_MASTER_KEYS: the first key seals, the others open; ids explicit or derived', async () => {
    const a = key()
    const b = key()
    const ring = await loadKeyring({ dataDir: 'memory://', env: { MCP_MASTER_KEYS: `new:${a.toString('base64')}, ${b.toString('hex')}` } })
    expect(ring.current?.id).toBe('new')
    expect(ring.ids).toEqual(['new', derivedKeyId(b)])
    const old = new Keyring([masterKey(b)])
    expect(ring.open(old.seal('v', 'r'), 'r')).toBe('v')
  })

  it('MCP_MASTER_KEY: one key with its derived id; a malformed key is an error', async () => {
    const a = key()
    const ring = await loadKeyring({ dataDir: 'memory://', env: { MCP_MASTER_KEY: a.toString('base64') } })
    expect(ring.current?.id).toBe(derivedKeyId(a))
    await expect(loadKeyring({ dataDir: 'memory://', env: { MCP_MASTER_KEY: 'nope' } })).rejects.toThrow(/32 bytes/)
  })

  it('production without a key: nothing can be sealed', async () => {
    const ring = await loadKeyring({ dataDir: 'memory://', env: { NODE_ENV: 'production' } })
    expect(ring.current).toBeUndefined()
    expect(() => ring.seal('x', 'r')).toThrow(SealError)
  })

  it('development without a key: a key file under the data dir, created once (0600) and reused, with a warning', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-key-'))
    dirs.push(dir)
    const warnings: string[] = []
    const log = { warn: (_o: object, msg: string) => { warnings.push(msg) } }
    const first = await loadKeyring({ dataDir: dir, env: {}, log })
    const second = await loadKeyring({ dataDir: dir, env: {}, log })
    expect(first.current?.id).toBe(second.current?.id)
    expect(second.open(first.seal('v', 'r'), 'r')).toBe('v')
    expect((await stat(join(dir, DEV_KEY_FILE))).mode & 0o777).toBe(0o600)
    expect(warnings.join('\n')).toMatch(/MCP_MASTER_KEY/)
    expect((await readFile(join(dir, DEV_KEY_FILE), 'utf8')).trim()).toHaveLength(44)
  })
})

async function insertProvider(store: Store, ring: Keyring, name: string, secret: string): Promise<string> {
  const id = randomUUID()
  await store.query(
    "INSERT INTO provider_configs (id, name, provider, config, credentials, status) VALUES ($1, $2, 'openai', '{}', $3, 'active')",
    [id, name, JSON.stringify(sealCredentials(ring, id, { apiKey: secret }))],
  )
  return id
}

async function credentialsOf(store: Store, id: string): Promise<ReturnType<typeof asStoredCredentials>> {
  const { rows } = await store.query<{ credentials: unknown }>('SELECT credentials FROM provider_configs WHERE id = $1', [id])
  return asStoredCredentials(rows[0]!.credentials)
}

const engines = testEngines('key rotation')

describe.each(engines)('key rotation on $name', (engine) => {
  it('re-seals every credential under the current key; the old key is no longer needed', async () => {
    const store = await engine.open()
    try {
      const oldKey = masterKey(key(), 'old')
      const newKey = masterKey(key(), 'new')
      const before = new Keyring([oldKey])
      const ids = [await insertProvider(store, before, 'a', 'sk-aaaaaaaaaaaaaaaa'), await insertProvider(store, before, 'b', 'sk-bbbbbbbbbbbbbbbb')]
      const fingerprints = await Promise.all(ids.map(async (id) => (await credentialsOf(store, id))['apiKey']!.fingerprint))

      // Without the old key in the keyring: refused, nothing changed.
      await expect(rotateCredentials(store, new Keyring([newKey]))).rejects.toThrow(/'old'/)
      expect(sealedKeyId((await credentialsOf(store, ids[0]!))['apiKey']!.sealed)).toBe('old')

      const result = await rotateCredentials(store, new Keyring([newKey, oldKey]))
      expect(result).toMatchObject({ currentKeyId: 'new', rows: 2, resealed: 2, unchanged: 0, before: { old: 2 } })
      const onlyNew = new Keyring([newKey])
      for (const [i, id] of ids.entries()) {
        const c = await credentialsOf(store, id)
        expect(sealedKeyId(c['apiKey']!.sealed)).toBe('new')
        expect(c['apiKey']!.fingerprint).toBe(fingerprints[i])
        expect(openCredentials(onlyNew, id, c)).toEqual({ apiKey: i === 0 ? 'sk-aaaaaaaaaaaaaaaa' : 'sk-bbbbbbbbbbbbbbbb' })
      }
      const again = await rotateCredentials(store, onlyNew)
      expect(again).toMatchObject({ resealed: 0, unchanged: 2 })
    } finally {
      await store.close()
    }
  })
})

describe.each(engines)('key rotation on $name, a key id reused for the new key', (engine) => {
  it('refuses, instead of counting values it cannot open as already rotated', async () => {
    const store = await engine.open()
    try {
      // The operator ran with MCP_MASTER_KEYS=main:$OLD, then rotates with main:$NEW,old:$OLD.
      const oldMaterial = key()
      const id = await insertProvider(store, new Keyring([masterKey(oldMaterial, 'main')]), 'reused', 'sk-dddddddddddddddd')
      const sealed = (await credentialsOf(store, id))['apiKey']!.sealed
      const ring = new Keyring([masterKey(key(), 'main'), masterKey(oldMaterial, 'old')])
      // Reported as done, the old key would be dropped next and the credential would never open again.
      await expect(rotateCredentials(store, ring)).rejects.toThrow(/credentials\.apiKey/)
      expect((await credentialsOf(store, id))['apiKey']!.sealed).toBe(sealed)
    } finally {
      await store.close()
    }
  })
})

describe('npm run rotate-keys', () => {
  it('re-seals an embedded store from the command line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-rotate-'))
    try {
      const oldKey = key()
      const newKey = key()
      let store = await openStore({ dataDir: dir })
      const id = await insertProvider(store, new Keyring([masterKey(oldKey)]), 'cli', 'sk-cccccccccccccccc')
      await store.close()
      const env = { ...process.env, MCP_DATA_DIR: dir, MCP_DATABASE_URL: '', MCP_MASTER_KEY: '', MCP_MASTER_KEYS: `${newKey.toString('base64')},${oldKey.toString('base64')}` }
      // While a gateway holds the embedded store open, the command refuses (two processes would corrupt it).
      const held = await openStore({ dataDir: dir })
      const refused = run(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'admin/cli/rotate-master-key.ts'], { env, cwd: process.cwd() })
      await expect(refused).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/in use by another process/) })
      await held.close()
      const { stdout } = await run(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'admin/cli/rotate-master-key.ts'], { env, cwd: process.cwd() })
      expect(JSON.parse(stdout)).toMatchObject({ currentKeyId: derivedKeyId(newKey), resealed: 1 })
      store = await openStore({ dataDir: dir })
      expect(openCredentials(new Keyring([masterKey(newKey)]), id, await credentialsOf(store, id))).toEqual({ apiKey: 'sk-cccccccccccccccc' })
      await store.close()
      // A key missing from the keyring: exit 1 and a message naming it.
      const failing = run(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'admin/cli/rotate-master-key.ts'], { env: { ...env, MCP_MASTER_KEYS: key().toString('base64') } })
      await expect(failing).rejects.toMatchObject({ code: 1 })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
