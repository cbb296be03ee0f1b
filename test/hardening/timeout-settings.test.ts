/**
 * The listeners' client timeouts as settings: Node's http.createServer throws a RangeError for a header timeout longer
 * than the request timeout, so such a configuration is a config error naming the field (at start, on reload), and the
 * admin listener, whose request timeout is at most a minute, keeps its header timeout within it.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, startGateway, type TestGateway } from '../helpers/gateway.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}` }

describe('server.headersTimeoutMs against server.requestTimeoutMs', () => {
  // The process died at start with Node's raw `RangeError [ERR_OUT_OF_RANGE]: The value of "headersTimeout" is out of range`.
  it('longer header timeout: main.ts refuses to start with a config error naming the field', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'mcp-timeouts-'))
    try {
      const proc = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', 'main.ts'], {
        cwd: ROOT,
        env: {
          ...process.env, NODE_ENV: 'test', MCP_ADMIN_KEY: ADMIN_KEY, MCP_DATA_DIR: dataDir, MCP_PORT: '0', MCP_ADMIN_PORT: '0',
          NODE_CONFIG: JSON.stringify({ server: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      proc.stdout.on('data', (d: Buffer) => { out += d.toString('utf8') })
      proc.stderr.on('data', (d: Buffer) => { out += d.toString('utf8') })
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
      const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)))
      clearTimeout(timer)
      expect(code).toBe(1)
      expect(out).toContain('mcp: Configuration rejected: server.headersTimeoutMs: must be <= server.requestTimeoutMs (1000)')
      expect(out).not.toContain('RangeError')
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })

  describe('in a running gateway', () => {
    let tg: TestGateway
    // A header timeout past the admin port's one-minute request timeout: the admin listener threw the same RangeError.
    beforeAll(async () => { tg = await startGateway({ server: { headersTimeoutMs: 70_000, requestTimeoutMs: 300_000 } }) })
    afterAll(async () => { await tg?.close() })

    it('a header timeout longer than the admin port\'s request timeout still starts both listeners', async () => {
      expect((await fetch(`${tg.adminUrl}/healthz`)).status).toBe(200)
      expect((await fetch(`${tg.url}/v1/models`, { headers: ADMIN })).status).toBe(200)
    })

    it('a reload to a longer header timeout is refused naming the field; the running configuration keeps serving', async () => {
      tg.setConfig({ server: { headersTimeoutMs: 70_000, requestTimeoutMs: 60_000 } })
      const r = await fetch(`${tg.adminUrl}/api/v1/mcp/config/reload`, { method: 'POST', headers: ADMIN })
      expect(r.status).toBe(400)
      expect((await r.json() as { error: { code: string; message: string } }).error).toMatchObject({
        code: 'MCP_ERR_CONFIG_INVALID',
        message: 'Configuration rejected: server.headersTimeoutMs: must be <= server.requestTimeoutMs (60000)',
      })
      expect(tg.gw.settings.server.requestTimeoutMs).toBe(300_000)
    })
  })
})
