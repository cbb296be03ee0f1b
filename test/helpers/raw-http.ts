/**
 * Raw HTTP/1.1 over a TCP socket, for what fetch cannot express: a huge Content-Length with no
 * body, a chunked body that never ends, an oversize header block. Resolves with the first response
 * as soon as it is complete (or when the server closes the socket).
 */
import net from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  /** True when the server closed the socket (FIN) after the response. */
  closed: boolean
}

export interface RawExchange {
  /** The first response. */
  response: Promise<RawResponse>
  /** Resolves when the server closed the connection. */
  closed: Promise<void>
  write(data: string | Buffer): boolean
  destroy(): void
}

function parse(buf: Buffer, closed: boolean): RawResponse | undefined {
  const end = buf.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
  const status = Number(lines[0]?.split(' ')[1])
  const headers: Record<string, string> = {}
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  const body = buf.subarray(end + 4)
  const cl = headers['content-length']
  if (cl !== undefined) {
    if (body.length < Number(cl)) return undefined
    return { status, headers, body: body.subarray(0, Number(cl)).toString('utf8'), closed }
  }
  return closed ? { status, headers, body: body.toString('utf8'), closed } : undefined
}

export function rawExchange(port: number, head: string, timeoutMs = 5000): RawExchange {
  const sock = net.connect(port, '127.0.0.1')
  let buf = Buffer.alloc(0)
  let resolveRes!: (r: RawResponse) => void
  let rejectRes!: (e: Error) => void
  const response = new Promise<RawResponse>((res, rej) => { resolveRes = res; rejectRes = rej })
  let done = false
  const timer = setTimeout(() => { if (!done) { done = true; rejectRes(new Error(`no complete response within ${timeoutMs} ms; got: ${buf.toString('latin1').slice(0, 300)}`)); sock.destroy() } }, timeoutMs)
  const closed = new Promise<void>((res) => sock.once('close', () => res()))
  const check = (isClosed: boolean): void => {
    if (done) return
    const r = parse(buf, isClosed)
    if (r) { done = true; clearTimeout(timer); resolveRes(r) } else if (isClosed) { done = true; clearTimeout(timer); rejectRes(new Error(`connection closed before a complete response: ${buf.toString('latin1').slice(0, 300)}`)) }
  }
  sock.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); check(false) })
  sock.on('end', () => check(true))
  sock.on('close', () => check(true))
  sock.on('error', () => { /* EPIPE/ECONNRESET after the server answered early: judged by the response */ })
  sock.write(head)
  return {
    response,
    closed,
    write: (d) => (sock.destroyed ? false : sock.write(d)),
    destroy: () => sock.destroy(),
  }
}
