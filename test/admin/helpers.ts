/**
 * The admin suites run against both store engines: PGlite in memory, and PostgreSQL at MCP_TEST_DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/test) in a schema of their own, dropped at the end. PostgreSQL
 * unreachable: the suites fail when CI=true, and skip that engine with a message otherwise.
 *
 * startTestMcp() starts the whole process as main.ts does (admin/bootstrap.ts startMcp) on ephemeral ports.
 */
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { startMcp, type Mcp, type StartMcpOptions } from '../../admin/bootstrap.ts'
import { Keyring, masterKey } from '../../admin/crypto.ts'
import { createLogger } from '../../gateway/logger.ts'
import { readRawConfig } from '../../gateway/settings.ts'
import { openStore, type OpenStoreOptions } from '../../store/index.ts'
import type { Store } from '../../store/types.ts'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { dropSchemas, freshSchemaUrl as freshSchema, PG_URL, pgUnavailable } from '../helpers/postgres.ts'

export { PG_URL }

export { ADMIN_KEY }

/** A fresh schema on the test PostgreSQL, dropped after the file's tests; returns a URL selecting it. */
export function freshSchemaUrl(base = PG_URL): Promise<string> {
  return freshSchema('mcp_admin_test', base)
}

export interface Engine {
  name: 'pglite' | 'postgres'
  /** A migrated store of its own. */
  open(extra?: Partial<OpenStoreOptions>): Promise<Store>
  /** Two stores on one database (two instances); PostgreSQL only. */
  openPair?: () => Promise<[Store, Store]>
}

/** The engines to run; registers the CI failure / skip notice for PostgreSQL and the schema cleanup. */
export function testEngines(label: string): Engine[] {
  const engines: Engine[] = [{ name: 'pglite', open: () => openStore({ dataDir: 'memory://' }) }]
  if (pgUnavailable === undefined) {
    engines.push({
      name: 'postgres',
      open: async (extra) => openStore({ dataDir: 'unused', databaseUrl: await freshSchemaUrl(), ...extra }),
      openPair: async () => {
        const url = await freshSchemaUrl()
        const first = await openStore({ dataDir: 'unused', databaseUrl: url })
        return [first, await openStore({ dataDir: 'unused', databaseUrl: url })]
      },
    })
  } else if (process.env['CI'] === 'true') {
    describe(`${label} on PostgreSQL`, () => {
      it('needs PostgreSQL in CI', () => {
        expect.fail(`PostgreSQL at ${PG_URL} is unreachable (${pgUnavailable}); CI=true requires it`)
      })
    })
  } else {
    console.warn(`[${label}] PostgreSQL at ${PG_URL} is unreachable (${pgUnavailable}): the postgres engine is not run (CI=true requires it)`)
  }
  afterAll(dropSchemas)
  return engines
}

export const postgresAvailable = pgUnavailable === undefined

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k]
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && cur !== null && typeof cur === 'object' && !Array.isArray(cur)
      ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
      : v
  }
  return out
}

export function testKeyring(): Keyring {
  return new Keyring([masterKey(randomBytes(32))])
}

export interface ApiResponse<T = any> {
  status: number
  headers: Headers
  body: T
  text: string
}

export interface TestMcp {
  mcp: Mcp
  url: string
  adminUrl: string
  store: Store
  /** Every log line, raw. */
  logText(): string
  /** A request to the admin API with the admin key; `path` is relative to /api/v1/mcp unless it starts with '/'. */
  api<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>
  /** A request to the data plane with the admin key. */
  data<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>
  /** Replaces the config override read at the next reload. */
  setConfig(override: Record<string, unknown>): void
  close(): Promise<void>
}

async function call(base: string, method: string, path: string, body: unknown, headers: Record<string, string>): Promise<ApiResponse> {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  })
  const text = await r.text()
  let parsed: unknown = undefined
  try { parsed = text === '' ? undefined : JSON.parse(text) } catch { parsed = undefined }
  return { status: r.status, headers: r.headers, body: parsed, text }
}

export interface StartTestMcpOptions extends Partial<Omit<StartMcpOptions, 'logger' | 'rawConfig' | 'store'>> {
  store: Store
  override?: Record<string, unknown>
  /** Close the store with the server (default true). */
  ownStore?: boolean
}

export async function startTestMcp(opts: StartTestMcpOptions): Promise<TestMcp> {
  let override = opts.override ?? {}
  const lines: string[] = []
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb() } })
  const logger = createLogger('info', sink)
  const raw = readRawConfig()
  // Load shedding watches the event loop, which PGlite's start and a busy test machine stall: not under test here.
  const shedding = (raw['server'] as Record<string, unknown> | undefined)?.['shedding'] !== undefined ? { shedding: { enabled: false } } : {}
  const base = { server: { port: 0, host: '127.0.0.1', ...shedding }, admin: { port: 0, key: ADMIN_KEY }, log: { level: 'info' }, reload: { watch: false }, dataDir: 'memory://' }
  const { store, override: _o, ownStore, ...rest } = opts
  const mcp = await startMcp({
    keyring: testKeyring(),
    pollIntervalMs: 100,
    pollTimeoutMs: 1000,
    ...rest,
    logger,
    store,
    rawConfig: () => merge(merge(readRawConfig(), base), override),
  })
  return {
    mcp,
    url: mcp.url,
    adminUrl: mcp.adminUrl,
    store,
    logText: () => lines.join('\n'),
    api: (method, path, body, headers = {}) => call(mcp.adminUrl, method, path.startsWith('/') ? path : `/api/v1/mcp/${path}`, body, headers),
    data: (method, path, body, headers = {}) => call(mcp.url, method, path, body, headers),
    setConfig(o) { override = o },
    async close() {
      await mcp.close(2000)
      if (ownStore !== false) await store.close()
    },
  }
}

/** Builds a prompt with versions and returns ids; versions' templates are `v<n>: {{text}}`-style when not given. */
export async function seedPrompt(t: TestMcp, name: string, versions: readonly Record<string, unknown>[]): Promise<{ promptId: string; versionIds: string[] }> {
  const p = await t.api('POST', 'prompts', { name })
  expect(p.status, p.text).toBe(201)
  const versionIds: string[] = []
  for (const v of versions) {
    const r = await t.api('POST', `prompts/${p.body.id}/versions`, v)
    expect(r.status, r.text).toBe(201)
    versionIds.push(r.body.id)
  }
  return { promptId: p.body.id, versionIds }
}
