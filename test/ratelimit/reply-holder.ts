/**
 * A TCP forwarder to Redis that can withhold Redis's replies while still passing the client's
 * commands on (hold), and reset every connection (cut): a command that ran whose reply is lost,
 * as when a connection drops between Redis running a script and the client reading its answer.
 */
import net from 'node:net'

export interface ReplyHolder {
  readonly port: number
  /** Commands still reach Redis; its replies are kept back. */
  hold(): void
  /** Every open connection is destroyed (the client sees a reset); new ones are refused until restore(). */
  cut(): void
  /** Replies flow and connections are accepted again. */
  restore(): void
  close(): Promise<void>
}

export async function startReplyHolder(target: { host: string; port: number }): Promise<ReplyHolder> {
  let holding = false
  let cutting = false
  const pairs = new Set<{ a: net.Socket; b: net.Socket }>()
  const server = net.createServer((a) => {
    a.on('error', () => {})
    if (cutting) { a.destroy(); return }
    const b = net.connect(target.port, target.host)
    const pair = { a, b }
    pairs.add(pair)
    b.on('error', () => a.destroy())
    a.on('error', () => b.destroy())
    const done = (): void => { pairs.delete(pair); a.destroy(); b.destroy() }
    a.on('close', done)
    b.on('close', done)
    a.on('data', (d: Buffer) => b.write(d))
    b.on('data', (d: Buffer) => { if (!holding) a.write(d) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const destroyAll = (): void => {
    for (const p of pairs) { p.a.destroy(); p.b.destroy() }
    pairs.clear()
  }
  return {
    port: (server.address() as net.AddressInfo).port,
    hold() { holding = true },
    cut() { cutting = true; destroyAll() },
    restore() { holding = false; cutting = false },
    async close() {
      destroyAll()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
