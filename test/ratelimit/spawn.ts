/**
 * Spawns test/ratelimit/gateway-entry.ts as a real process (like test/helpers/gateway-process.ts
 * does for main.ts): a temp copy of config/ plus local.yaml, free ports, ready when /healthz answers.
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
  metrics(): Promise<string>
  stop(): Promise<void>
}

export async function spawnEntry(local: Record<string, unknown>, env: Record<string, string>): Promise<EntryProcess> {
  const configDir = mkdtempSync(path.join(tmpdir(), 'mcp-rl-config-'))
  cpSync(path.join(ROOT, 'config'), configDir, { recursive: true })
  writeFileSync(path.join(configDir, 'local.yaml'), JSON.stringify(local, null, 2))
  const port = await freePort()
  const adminPort = await freePort()
  const proc = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'test/ratelimit/gateway-entry.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      NODE_CONFIG_DIR: configDir,
      MCP_PORT: String(port),
      MCP_ADMIN_PORT: String(adminPort),
      MCP_ADMIN_KEY: ADMIN_KEY,
      MCP_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  let running = true
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { running = false; resolve() }))
  const adminUrl = `http://127.0.0.1:${adminPort}`
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
    output: () => out,
    async metrics() {
      const r = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      return r.text()
    },
    async stop() {
      if (running) { proc.kill('SIGKILL'); await exited }
      rmSync(configDir, { recursive: true, force: true })
    },
  }
}

/** Value of one series in a Prometheus text scrape (0 when absent). */
export function series(text: string, s: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${s} `))
  return line === undefined ? 0 : Number(line.slice(s.length + 1))
}
