/**
 * Reads a JSON request body under a size limit. A declared Content-Length over the limit is a 413
 * before a byte of the body is read; a chunked body is cut off as soon as it crosses the limit.
 * A compressed body (Content-Encoding gzip, deflate, br or zstd) is decoded under the same limit, which
 * then bounds the decoded size too (a small bomb is a 413, not a gigabyte in memory); any other coding is a 415.
 * Bytes must be valid UTF-8 and the text valid JSON.
 */
import type { IncomingMessage } from 'node:http'
import * as zlib from 'node:zlib'
import { GatewayError } from '../errors.ts'

type Decode = (buf: Buffer, opts: { maxOutputLength: number }, cb: (err: Error | null, out: Buffer) => void) => void

/** The content codings a body may arrive in (RFC 9110 8.4.1; `deflate` is the zlib format). zstd where Node has it. */
const DECODERS: Readonly<Record<string, Decode | undefined>> = {
  gzip: zlib.gunzip, 'x-gzip': zlib.gunzip, deflate: zlib.inflate, br: zlib.brotliDecompress,
  zstd: (zlib as { zstdDecompress?: Decode }).zstdDecompress,
}
const SUPPORTED = Object.keys(DECODERS).filter((k) => DECODERS[k] !== undefined && k !== 'x-gzip').join(', ')

/**
 * The codings of a Content-Encoding header in the order they were applied (identity left out); a 415 naming the
 * first one the gateway cannot decode.
 */
function codingsOf(header: string): string[] {
  const out: string[] = []
  for (const part of header.split(',')) {
    const c = part.trim().toLowerCase()
    if (c === '' || c === 'identity') continue
    if (!Object.hasOwn(DECODERS, c) || DECODERS[c] === undefined) {
      throw new GatewayError('MCP_ERR_REQ_CONTENT_ENCODING', { encoding: JSON.stringify(part.trim().slice(0, 50)), supported: SUPPORTED }, { details: 'request.content_encoding' })
    }
    out.push(c)
  }
  return out
}

function decodeOne(buf: Buffer, coding: string, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    DECODERS[coding]!(buf, { maxOutputLength: limit }, (err, out) => {
      if (!err) return resolve(out)
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        return reject(new GatewayError('MCP_ERR_REQ_BODY_TOO_LARGE', { limit }, { details: 'request.body_too_large' }))
      }
      reject(new GatewayError('MCP_ERR_REQ_BODY_ENCODING', { encoding: coding, reason: err.message.slice(0, 200) }, { details: 'request.body_encoding' }))
    })
  })
}

/** The body with its content codings undone, last applied first, each decoded size under the limit. */
async function decodeBody(buf: Buffer, codings: readonly string[], limit: number): Promise<Buffer> {
  for (let i = codings.length - 1; i >= 0; i--) buf = await decodeOne(buf, codings[i]!, limit)
  return buf
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

export function checkContentType(req: IncomingMessage): void {
  const ct = req.headers['content-type']
  if (ct === undefined) return
  const base = ct.split(';', 1)[0]!.trim().toLowerCase()
  if (base !== 'application/json' && !base.endsWith('+json')) {
    throw new GatewayError('MCP_ERR_REQ_CONTENT_TYPE', { contentType: JSON.stringify(ct.slice(0, 100)) }, { details: 'request.content_type' })
  }
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const encoding = req.headers['content-encoding']
  if (encoding !== undefined) {
    let codings: string[]
    try { codings = codingsOf(encoding) } catch (e) { return Promise.reject(e) }
    if (codings.length > 0) return readRaw(req, limit).then((buf) => decodeBody(buf, codings, limit))
  }
  return readRaw(req, limit)
}

function readRaw(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new GatewayError('MCP_ERR_REQ_BODY_TOO_LARGE', { limit }, { details: 'request.body_too_large' }))
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let size = 0
    let done = false
    const onData = (c: Buffer): void => {
      size += c.length
      if (size > limit) {
        done = true
        cleanup()
        req.pause()
        reject(new GatewayError('MCP_ERR_REQ_BODY_TOO_LARGE', { limit }, { details: 'request.body_too_large' }))
        return
      }
      parts.push(c)
    }
    const onEnd = (): void => {
      if (done) return
      done = true
      cleanup()
      resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size))
    }
    const onError = (e: Error): void => {
      if (done) return
      done = true
      cleanup()
      reject(new GatewayError('MCP_ERR_REQ_ABORTED', {}, { details: 'client_abort', cause: e }))
    }
    const onClose = (): void => {
      if (!done && !req.complete) onError(new Error('client closed the connection while sending the body'))
    }
    function cleanup(): void {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

/** Deeper nesting than this is refused before parsing: re-serialising it would exhaust the stack. */
export const MAX_JSON_DEPTH = 128

/** The deepest nesting of arrays and objects in JSON bytes (strings skipped); stops counting past the limit. */
export function jsonDepth(buf: Buffer, limit = MAX_JSON_DEPTH): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
      continue
    }
    if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) { if (++depth > max) { max = depth; if (max > limit) return max } }
    else if (c === 0x7d || c === 0x5d) depth--
  }
  return max
}

export function parseJson(buf: Buffer): unknown {
  if (buf.length === 0) throw new GatewayError('MCP_ERR_REQ_JSON_INVALID', { reason: 'the body is empty' }, { details: 'request.json_invalid' })
  let text: string
  if (buf.length > MAX_JSON_DEPTH * 2 && jsonDepth(buf) > MAX_JSON_DEPTH) {
    throw new GatewayError('MCP_ERR_REQ_JSON_INVALID', { reason: `nesting deeper than ${MAX_JSON_DEPTH} levels` }, { details: 'request.json_too_deep' })
  }
  try {
    text = utf8.decode(buf)
  } catch {
    throw new GatewayError('MCP_ERR_REQ_JSON_INVALID', { reason: 'the body is not valid UTF-8' }, { details: 'request.json_invalid' })
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new GatewayError('MCP_ERR_REQ_JSON_INVALID', { reason: (e as Error).message.slice(0, 200) }, { details: 'request.json_invalid' })
  }
}
