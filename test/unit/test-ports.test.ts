/**
 * The test suite's own port handling (test/helpers/gateway-process.ts): ports for child processes come from
 * below the kernel's ephemeral range, where no outgoing connection can take them between the pick and the
 * child's bind, and a child that still loses its port (another test's pick) is started again on new ports.
 * CI once failed on exactly that race: a spawned gateway died with EADDRINUSE on a listen(0) port.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { freePort, launchEntry, portClash } from '../helpers/gateway-process.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'mcp-ports-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('test ports', () => {
  it('freePort hands out distinct ports below the ephemeral range that bind on every address', async () => {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()))
    expect(new Set(ports).size).toBe(20)
    for (const p of ports) {
      if (low! - 15_000 >= 4000) expect(p).toBeLessThan(low!)
      const s = net.createServer()
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(p, '0.0.0.0', () => resolve()) })
      await new Promise<void>((resolve) => s.close(() => resolve()))
    }
  })

  it('portClash recognises Node\'s and redis-server\'s messages only', () => {
    expect(portClash(new Error('listen EADDRINUSE: address already in use 0.0.0.0:34065'))).toBe(true)
    expect(portClash(new Error('# Warning: Could not create server TCP listening socket 127.0.0.1:6390: bind: Address already in use'))).toBe(true)
    expect(portClash(new Error('entry exited during start: config invalid'))).toBe(false)
  })

  it('launchEntry starts a child again on new ports when its first start lost a port', async () => {
    const attempts = path.join(dir, 'attempts')
    writeFileSync(attempts, '')
    const script = path.join(dir, 'entry.mjs')
    // First start: dies as a gateway does when its port was taken. Second: serves /healthz on the admin port.
    writeFileSync(script, `
      import { appendFileSync, readFileSync } from 'node:fs'
      import http from 'node:http'
      appendFileSync(${JSON.stringify(attempts)}, process.env.MCP_PORT + ' ' + process.env.MCP_ADMIN_PORT + '\\n')
      if (readFileSync(${JSON.stringify(attempts)}, 'utf8').trim().split('\\n').length === 1) {
        process.stderr.write('Error: listen EADDRINUSE: address already in use 0.0.0.0:' + process.env.MCP_PORT + '\\n')
        process.exit(1)
      }
      http.createServer((req, res) => res.end('ok')).listen(Number(process.env.MCP_ADMIN_PORT), '127.0.0.1')
    `)
    const p = await launchEntry(script, {}, 10_000)
    try {
      const lines = readFileSync(attempts, 'utf8').trim().split('\n')
      expect(lines).toHaveLength(2)
      expect(lines[0]).not.toBe(lines[1])
      expect(lines[1]).toBe(`${p.port} ${p.adminPort}`)
      expect((await fetch(`${p.adminUrl}/healthz`)).status).toBe(200)
    } finally {
      await p.kill()
    }
  })

  it('launchEntry does not retry a start that failed for another reason', async () => {
    const script = path.join(dir, 'broken.mjs')
    writeFileSync(script, `process.stderr.write('config invalid: server.port\\n'); process.exit(1)`)
    await expect(launchEntry(script, {}, 10_000)).rejects.toThrow(/exited during start:\nconfig invalid/)
  })
})
