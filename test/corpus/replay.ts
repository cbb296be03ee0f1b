/**
 * Replays one corpus case over raw TCP and judges the answers: every answer parsed (status, headers,
 * body by Content-Length, chunked, or up to the close), whether the server closed the connection.
 */
import net from 'node:net'
import type { CorpusCase } from './case.ts'
import { bytesOf } from './case.ts'

export interface ParsedResponse {
  status: number
  headers: Record<string, string>
  body: string
}

export interface Exchange {
  responses: ParsedResponse[]
  /** The server closed the connection (FIN or reset). */
  closed: boolean
  /** Bytes left that did not form a complete response. */
  rest: string
  timedOut: boolean
}

/** Parses complete responses from the front of `buf`; returns them and the offset consumed. */
function parseResponses(buf: Buffer, head: boolean, closed: boolean): { out: ParsedResponse[]; used: number } {
  const out: ParsedResponse[] = []
  let off = 0
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off)
    if (end === -1) break
    const lines = buf.subarray(off, end).toString('latin1').split('\r\n')
    const status = Number(lines[0]?.split(' ')[1])
    const headers: Record<string, string> = {}
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':')
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
    }
    let p = end + 4
    if (status >= 100 && status < 200) { off = p; continue }
    let body: Buffer
    if (head && out.length === 0) body = Buffer.alloc(0)
    else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length'])
      if (buf.length < p + n) break
      body = buf.subarray(p, p + n)
      p += n
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = []
      let q = p
      let complete = false
      for (;;) {
        const le = buf.indexOf('\r\n', q)
        if (le === -1) break
        const size = parseInt(buf.subarray(q, le).toString('latin1'), 16)
        if (Number.isNaN(size)) break
        if (size === 0) {
          const te = buf.indexOf('\r\n\r\n', le - 2)
          if (te === -1) break
          q = te + 4
          complete = true
          break
        }
        if (buf.length < le + 2 + size + 2) break
        parts.push(buf.subarray(le + 2, le + 2 + size))
        q = le + 2 + size + 2
      }
      if (!complete) break
      body = Buffer.concat(parts)
      p = q
    } else if (status === 204 || status === 304) body = Buffer.alloc(0)
    else {
      if (!closed) break
      body = buf.subarray(p)
      p = buf.length
    }
    out.push({ status, headers, body: body.toString('utf8') })
    off = p
  }
  return { out, used: off }
}

export function replay(port: number, c: CorpusCase, timeoutMs: number): Promise<Exchange> {
  const bytes = bytesOf(c)
  const head = bytes.subarray(0, 5).toString('latin1') === 'HEAD '
  const want = c.expect.responses ?? 1
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    let done = false
    let closed = false
    let grace: NodeJS.Timeout | undefined
    const finish = (timedOut: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      clearTimeout(grace)
      const { out, used } = parseResponses(buf, head, closed)
      sock.destroy()
      resolve({ responses: out, closed, rest: buf.subarray(used).toString('latin1').slice(0, 300), timedOut })
    }
    const timer = setTimeout(() => finish(true), timeoutMs)
    const check = (): void => {
      const { out } = parseResponses(buf, head, closed)
      if (closed) { finish(false); return }
      if (out.length >= want && grace === undefined) {
        // Wait a little for the close (or for answers that must not come, like a smuggled request's).
        grace = setTimeout(() => finish(false), c.expect.close ? 2000 : 100)
      }
    }
    sock.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); check() })
    sock.on('end', () => { closed = true; check() })
    sock.on('close', () => { closed = true; check() })
    sock.on('error', () => { /* EPIPE / ECONNRESET after an early answer: judged by what arrived */ })
    sock.on('connect', () => { sock.write(bytes) })
  })
}

/** Why an exchange fails its case, or an empty list. */
export function judge(c: CorpusCase, x: Exchange): string[] {
  const errs: string[] = []
  const want = c.expect.responses ?? 1
  if (x.responses.length === 0) {
    errs.push(`no answer (closed=${x.closed}, timedOut=${x.timedOut}, got ${JSON.stringify(x.rest.slice(0, 120))})`)
    return errs
  }
  if (x.responses.length < want) errs.push(`${x.responses.length} answers, expected ${want}`)
  for (const [i, r] of x.responses.entries()) {
    if (r.status >= 500) errs.push(`answer ${i}: status ${r.status}`)
    if (i === 0 && (r.status < c.expect.status[0] || r.status > c.expect.status[1])) errs.push(`status ${r.status} outside ${c.expect.status.join('..')}`)
    const ct = r.headers['content-type'] ?? ''
    // A request that turned out valid may stream (stream: true); every error is JSON.
    if (r.status < 400 && ct.startsWith('text/event-stream')) {
      if (!r.body.includes('data: ')) errs.push(`answer ${i}: an event stream without events`)
      continue
    }
    if (!ct.includes('application/json')) errs.push(`answer ${i}: content-type ${ct || '(none)'}`)
    const headOnly = i === 0 && r.body === '' && bytesOf(c).subarray(0, 5).toString('latin1') === 'HEAD '
    if (headOnly) continue
    let json: unknown
    try {
      json = JSON.parse(r.body)
    } catch {
      errs.push(`answer ${i}: body is not JSON: ${JSON.stringify(r.body.slice(0, 120))}`)
      continue
    }
    if (r.status >= 400) {
      const j = json as { error?: { message?: unknown }; type?: unknown }
      if (typeof j?.error?.message !== 'string') errs.push(`answer ${i}: not a JSON error body: ${r.body.slice(0, 120)}`)
    }
    if (c.expect.canary && r.body.includes('smuggled-canary')) errs.push(`answer ${i}: the smuggled request was served`)
  }
  if (c.expect.close && !x.closed) errs.push('the connection stayed open')
  return errs
}
