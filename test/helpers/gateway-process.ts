/**
 * Spawns the real process (`node main.ts`) with NODE_CONFIG_DIR pointing to a temp copy of config/
 * plus a `local.yaml`, on free ports picked beforehand. For SIGHUP, file-watch and SIGTERM tests.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ADMIN_KEY } from './gateway.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
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

export async function spawnGateway(local: Record<string, unknown>, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const configDir = mkdtempSync(path.join(tmpdir(), 'mcp-config-'))
  cpSync(path.join(ROOT, 'config'), configDir, { recursive: true })
  const writeLocal = (l: Record<string, unknown>): void => writeFileSync(path.join(configDir, 'local.yaml'), JSON.stringify(l, null, 2))
  writeLocal(local)
  const port = await freePort()
  const adminPort = await freePort()
  const proc = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      NODE_CONFIG_DIR: configDir,
      MCP_PORT: String(port),
      MCP_ADMIN_PORT: String(adminPort),
      MCP_ADMIN_KEY: ADMIN_KEY,
      MCP_LOG_LEVEL: 'info',
      // main.ts opens the embedded store: one PGlite directory per process (never the repo's ./data).
      MCP_DATA_DIR: path.join(configDir, 'data'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
  const adminUrl = `http://127.0.0.1:${adminPort}`
  let running = true
  void exited.then(() => { running = false })

  const deadline = Date.now() + 15_000
  for (;;) {
    if (!running) throw new Error(`gateway process exited during start:\n${out}`)
    try {
      const r = await fetch(`${adminUrl}/healthz`)
      if (r.status === 200) break
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`gateway process did not become healthy:\n${out}`) }
    await new Promise((r) => setTimeout(r, 50))
  }

  return {
    proc,
    url: `http://127.0.0.1:${port}`,
    adminUrl,
    port,
    configDir,
    output: () => out,
    writeLocal,
    exited,
    async config() {
      const r = await fetch(`${adminUrl}/api/v1/mcp/config`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      if (r.status !== 200) throw new Error(`GET config: ${r.status}`)
      return r.json() as ReturnType<GatewayProcess['config']>
    },
    async stop() {
      if (running) { proc.kill('SIGKILL'); await exited }
      rmSync(configDir, { recursive: true, force: true })
    },
  }
}
