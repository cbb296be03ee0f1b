/**
 * A TCP forwarder put between the gateway and PostgreSQL, to cause an outage without touching the shared server.
 * cut(): every open connection is destroyed and new ones are accepted then closed at once (the client sees the
 * server go away, as when PostgreSQL stops). pause(): connections stay open but nothing flows (a network
 * blackhole, as with `kill -STOP`); restore() resumes both.
 */
import net from 'node:net'

export interface Forwarder {
  readonly host: string
  readonly port: number
  cut(): void
  pause(): void
  restore(): void
  close(): Promise<void>
  /** Connections accepted since start. */
  readonly accepted: number
}

export async function startForwarder(target: { host: string; port: number }): Promise<Forwarder> {
  let mode: 'open' | 'cut' | 'paused' = 'open'
  let accepted = 0
  const pairs = new Set<{ a: net.Socket; b: net.Socket }>()
  const server = net.createServer((a) => {
    accepted++
    a.on('error', () => {})
    if (mode === 'cut') { a.destroy(); return }
    const b = net.connect(target.port, target.host)
    b.on('error', () => a.destroy())
    a.on('error', () => b.destroy())
    const pair = { a, b }
    pairs.add(pair)
    const done = (): void => { pairs.delete(pair); a.destroy(); b.destroy() }
    a.on('close', done)
    b.on('close', done)
    a.pipe(b)
    b.pipe(a)
    if (mode === 'paused') { a.pause(); b.pause() }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    host: '127.0.0.1',
    port,
    get accepted() { return accepted },
    cut() {
      mode = 'cut'
      for (const p of pairs) { p.a.destroy(); p.b.destroy() }
      pairs.clear()
    },
    pause() {
      mode = 'paused'
      for (const p of pairs) { p.a.unpipe(p.b); p.b.unpipe(p.a); p.a.pause(); p.b.pause() }
    },
    restore() {
      const wasPaused = mode === 'paused'
      mode = 'open'
      if (wasPaused) for (const p of pairs) { p.a.pipe(p.b); p.b.pipe(p.a); p.a.resume(); p.b.resume() }
    },
    async close() {
      for (const p of pairs) { p.a.destroy(); p.b.destroy() }
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
