/**
 * `npm run rotate-keys`: re-seals every stored provider credential under the current master key.
 *
 *   MCP_MASTER_KEYS=<new key>,<old key> npm run rotate-keys     # then keep only MCP_MASTER_KEY=<new key>
 *
 * Uses the same environment as the server (MCP_DATABASE_URL, or the embedded store under MCP_DATA_DIR: stop the
 * server first, PGlite allows one process per directory). Prints a JSON summary; exits 1 (nothing changed) when a
 * value was sealed by a key that is not in the keyring.
 */
import { openStore, storeOptionsFromEnv } from '../../store/index.ts'
import { loadKeyring } from '../master-key.ts'
import { rotateCredentials } from '../rotate-keys.ts'

async function main(): Promise<void> {
  const options = storeOptionsFromEnv()
  const keyring = await loadKeyring({ dataDir: options.dataDir, log: { warn: (_o, msg) => process.stderr.write(`rotate-keys: ${msg}\n`) } })
  const store = await openStore(options)
  try {
    const result = await rotateCredentials(store, keyring)
    process.stdout.write(JSON.stringify(result) + '\n')
  } finally {
    await store.close()
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`rotate-keys: ${(e as Error).message}\n`)
  process.exit(1)
})
