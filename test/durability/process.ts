/**
 * Spawns test/durability/gateway-entry.ts as a real process (like test/helpers/gateway-process.ts does for
 * main.ts): NODE_CONFIG_DIR is a temp copy of config/ plus a local.yaml, ports picked beforehand.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ADMIN_KEY } from '../helpers/gateway.ts'
import { freePort } from '../helpers/gateway-process.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export interface EntryProcess {
  readonly proc: ChildProcess
  readonly url: string
  readonly adminUrl: string
  output(): string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop(): Promise<void>
}

export async function spawnEntry(local: Record<string, unknown>, env: Record<string, string>): Promise<EntryProcess> {
  const configDir = mkdtempSync(path.join(tmpdir(), 'mcp-durability-config-'))
  cpSync(path.join(ROOT, 'config'), configDir, { recursive: true })
  writeFileSync(path.join(configDir, 'local.yaml'), JSON.stringify(local, null, 2))
  const port = await freePort()
  const adminPort = await freePort()
  const proc = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'test/durability/gateway-entry.ts'], {
    cwd: ROOT,
    env: {
      ...process.env, NODE_ENV: 'test', NODE_CONFIG_DIR: configDir, MCP_PORT: String(port), MCP_ADMIN_PORT: String(adminPort),
      MCP_ADMIN_KEY: ADMIN_KEY, MCP_LOG_LEVEL: 'warn', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
  let running = true
  void exited.then(() => { running = false })
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const deadline = Date.now() + 20_000
  for (;;) {
    if (!running) throw new Error(`entry exited during start:\n${out}`)
    try {
      if ((await fetch(`${adminUrl}/healthz`)).status === 200) break
    } catch { /* not yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`entry did not become healthy:\n${out}`) }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    proc,
    url: `http://127.0.0.1:${port}`,
    adminUrl,
    output: () => out,
    exited,
    async stop() {
      if (running) { proc.kill('SIGKILL'); await exited }
      rmSync(configDir, { recursive: true, force: true })
    },
  }
}

export { ADMIN_KEY }
