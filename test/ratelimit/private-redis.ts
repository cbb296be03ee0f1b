/**
 * A private, throwaway redis-server on a free port (no persistence) for outage tests: it can be
 * frozen (SIGSTOP), thawed (SIGCONT), killed and restarted on the same port. Never the shared one.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { Socket } from 'node:net'
import { freePort, portClash } from '../helpers/gateway-process.ts'

export interface PrivateRedis {
  readonly port: number
  readonly url: string
  readonly pid: number
  freeze(): void
  thaw(): void
  kill(): Promise<void>
  /** Starts a fresh server on the same port after kill(). */
  restart(): Promise<void>
  stop(): Promise<void>
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket()
    const done = (ok: boolean): void => { s.destroy(); resolve(ok) }
    s.setTimeout(200, () => done(false))
    s.once('error', () => done(false))
    s.connect(port, '127.0.0.1', () => s.write('PING\r\n'))
    s.once('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}

/** The pid of the redis-server answering on `port` (INFO server's process_id), or undefined. */
function serverPid(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = new Socket()
    let buf = ''
    const done = (pid: number | undefined): void => { s.destroy(); resolve(pid) }
    s.setTimeout(500, () => done(undefined))
    s.once('error', () => done(undefined))
    s.connect(port, '127.0.0.1', () => s.write('INFO server\r\n'))
    s.on('data', (d) => {
      buf += d.toString()
      const m = /process_id:(\d+)/.exec(buf)
      if (m) done(Number(m[1]))
    })
  })
}

async function launch(port: number): Promise<{ proc: ChildProcess; exited: Promise<void> }> {
  // DEBUG SLEEP (the budget tests stall the server with it) is allowed from local clients only.
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--enable-debug-command', 'local'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let failed: Error | undefined
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8') })
  proc.once('error', (e) => { failed = e }) // ENOENT: redis-server is not installed
  let running = true
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { running = false; resolve() }))
  const deadline = Date.now() + 5000
  while (!(await ping(port))) {
    if (failed) throw failed
    // Exited before answering: most often the port was taken ("Address already in use" in its log).
    if (!running) throw new Error(`redis-server on ${port} exited during start:\n${out}`)
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`redis-server on ${port} did not start`) }
    await new Promise((r) => setTimeout(r, 25))
  }
  // The PONG may come from another process's server on the port (a test run in another checkout took it between
  // freePort and the bind): ours failed to bind and is about to exit. Only our own server will do.
  if ((await serverPid(port)) !== proc.pid) {
    proc.kill('SIGKILL')
    await exited
    throw new Error(`redis-server on ${port}: address already in use by another process`)
  }
  return { proc, exited }
}

/** A first start on a port another process took is retried on a new port. */
async function launchOnFreePort(): Promise<{ port: number; proc: ChildProcess; exited: Promise<void> }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    try {
      return { port, ...(await launch(port)) }
    } catch (e) {
      if (attempt >= 4 || !portClash(e)) throw e
    }
  }
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  let cur = await launchOnFreePort()
  const port = cur.port
  let frozen = false
  const pidOf = (): number => cur.proc.pid!
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() { return pidOf() },
    freeze() { process.kill(pidOf(), 'SIGSTOP'); frozen = true },
    thaw() { process.kill(pidOf(), 'SIGCONT'); frozen = false },
    async kill() {
      if (cur.proc.exitCode !== null || cur.proc.signalCode !== null) return
      process.kill(pidOf(), 'SIGKILL')
      await cur.exited
      frozen = false
    },
    async restart() { cur = { port, ...(await launch(port)) } },
    async stop() {
      if (cur.proc.exitCode !== null || cur.proc.signalCode !== null) return
      if (frozen) process.kill(pidOf(), 'SIGCONT')
      process.kill(pidOf(), 'SIGKILL')
      await cur.exited
    },
  }
}
