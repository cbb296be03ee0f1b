/**
 * Spawns the real process (`node main.ts`) with NODE_CONFIG_DIR pointing to a temp copy of config/
 * plus a `local.yaml`, on free ports picked beforehand. For SIGHUP, file-watch and SIGTERM tests.
 * Also the one launcher every test entry process starts through (`launchEntry`), and `freePort`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ADMIN_KEY } from './gateway.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/**
 * Ports for child processes are drawn below the kernel's ephemeral range. A port from `listen(0)` is
 * inside that range, and between probing it and the child binding it, any outgoing connection of any
 * test (the load tests open thousands) may take it as its local port: the child then dies with
 * EADDRINUSE. Below the range only another test's pick can collide, which is rare (random over
 * thousands of ports, distinct within a process) and retried by `launchEntry`.
 */
const EPHEMERAL_LOW = ((): number => {
  try { return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768 } catch { return 32768 }
})()
const PICK_LOW = 15_000
const PICK_HIGH = EPHEMERAL_LOW - PICK_LOW >= 4000 ? EPHEMERAL_LOW : 65_536
const PICK_FROM = PICK_HIGH === 65_536 ? 61_000 : PICK_LOW
const handedOut = new Set<number>()

/** Binds the port on every address (as the gateway's 0.0.0.0 listener will) and releases it. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen({ port, exclusive: true }, () => s.close(() => resolve(true)))
  })
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = PICK_FROM + Math.floor(Math.random() * (PICK_HIGH - PICK_FROM))
    if (handedOut.has(port)) continue
    if (await probe(port)) { handedOut.add(port); return port }
  }
  throw new Error('freePort: no free port found below the ephemeral range')
}

/** True when a start failed because another process holds the port (retry on other ports). */
export function portClash(e: unknown): boolean {
  return /EADDRINUSE|address already in use/i.test((e as Error)?.message ?? String(e))
}

export interface LaunchedEntry {
  readonly proc: ChildProcess
  readonly port: number
  readonly adminPort: number
  readonly url: string
  readonly adminUrl: string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  running(): boolean
  /** Everything the process wrote to stdout and stderr. */
  output(): string
  /** SIGKILL if still running. */
  kill(): Promise<void>
}

/**
 * Spawns `node <script>` with MCP_PORT and MCP_ADMIN_PORT set to free ports and waits until the admin
 * port's /healthz answers 200. A start that dies because a port was taken is retried on new ports.
 */
export async function launchEntry(script: string, env: Record<string, string>, timeoutMs = 20_000): Promise<LaunchedEntry> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchOnce(script, env, timeoutMs)
    } catch (e) {
      if (attempt >= 4 || !portClash(e)) throw e
    }
  }
}

async function launchOnce(script: string, env: Record<string, string>, timeoutMs: number): Promise<LaunchedEntry> {
  const port = await freePort()
  const adminPort = await freePort()
  const proc = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', script], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'test', ...env, MCP_PORT: String(port), MCP_ADMIN_PORT: String(adminPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  let running = true
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => { running = false; resolve({ code, signal }) }))
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!running) { await exited; throw new Error(`${script} exited during start:\n${out}`) }
    try {
      if ((await fetch(`${adminUrl}/healthz`)).status === 200) break
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); await exited; throw new Error(`${script} did not become healthy:\n${out}`) }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    proc, port, adminPort, url: `http://127.0.0.1:${port}`, adminUrl, exited,
    running: () => running,
    output: () => out,
    async kill() { if (running) { proc.kill('SIGKILL'); await exited } },
  }
}

export interface ConfiguredEntry extends LaunchedEntry {
  readonly configDir: string
  /** Rewrites local.yaml (JSON is valid YAML). */
  writeLocal(local: Record<string, unknown>): void
  /** SIGKILL if still running, remove the temp config dir. */
  stop(): Promise<void>
}

/**
 * `launchEntry` with NODE_CONFIG_DIR set to a temp copy of config/ plus a `local.yaml` holding `local`.
 * `env` may depend on that directory (e.g. a data directory inside it).
 */
export async function spawnConfigured(script: string, local: Record<string, unknown>, env: Record<string, string> | ((configDir: string) => Record<string, string>), timeoutMs = 20_000): Promise<ConfiguredEntry> {
  const configDir = mkdtempSync(path.join(tmpdir(), 'mcp-config-'))
  cpSync(path.join(ROOT, 'config'), configDir, { recursive: true })
  const writeLocal = (l: Record<string, unknown>): void => writeFileSync(path.join(configDir, 'local.yaml'), JSON.stringify(l, null, 2))
  writeLocal(local)
  let p: LaunchedEntry
  try {
    p = await launchEntry(script, { NODE_CONFIG_DIR: configDir, ...(typeof env === 'function' ? env(configDir) : env) }, timeoutMs)
  } catch (e) {
    rmSync(configDir, { recursive: true, force: true })
    throw e
  }
  return {
    ...p,
    configDir,
    writeLocal,
    async stop() {
      await p.kill()
      rmSync(configDir, { recursive: true, force: true })
    },
  }
}

export interface GatewayProcess {
  readonly proc: ChildProcess
  readonly url: string
  readonly adminUrl: string
  readonly port: number
  readonly configDir: string
  /** Everything the process wrote to stdout and stderr. */
  output(): string
  /** Rewrites local.yaml (JSON is valid YAML). */
  writeLocal(local: Record<string, unknown>): void
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** GET /api/v1/mcp/config with the admin key. */
  config(): Promise<{ generation: number; hash: string; lastReload: { ok: boolean; source: string; generation: number; error?: string }; settings: Record<string, unknown> }>
  /** SIGKILL if still running, remove the temp config dir. */
  stop(): Promise<void>
}

export async function spawnGateway(local: Record<string, unknown>, env: Record<string, string> | ((configDir: string) => Record<string, string>) = {}): Promise<GatewayProcess> {
  const p = await spawnConfigured('main.ts', local, (configDir) => ({
    MCP_ADMIN_KEY: ADMIN_KEY,
    MCP_LOG_LEVEL: 'info',
    // main.ts opens the embedded store: one PGlite directory per process (never the repo's ./data).
    MCP_DATA_DIR: path.join(configDir, 'data'),
    ...(typeof env === 'function' ? env(configDir) : env),
  }), 15_000)
  return {
    ...p,
    async config() {
      const r = await fetch(`${p.adminUrl}/api/v1/mcp/config`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      if (r.status !== 200) throw new Error(`GET config: ${r.status}`)
      return r.json() as ReturnType<GatewayProcess['config']>
    },
  }
}
