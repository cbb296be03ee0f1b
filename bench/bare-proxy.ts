/**
 * The reference floor: the least a Node HTTP gateway can do. node:http in, one undici Pool out,
 * pool.stream() writing the upstream body straight into the response. No plugins, no parsing.
 * Env: BARE_PORT (listen, 127.0.0.1), UPSTREAM (origin, e.g. http://127.0.0.1:9100).
 */
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { Pool } from 'undici'

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer', 'host'])
const pool = new Pool(process.env['UPSTREAM'] ?? 'http://127.0.0.1:9100', { connections: 256, pipelining: 1 })

function strip(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  for (const k in h) if (!HOP.has(k) && h[k] !== undefined) out[k] = h[k]
  return out
}

const server = createServer((req, res) => {
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
  pool.stream(
    { path: req.url ?? '/', method: req.method as 'POST', headers: strip(req.headers) as Record<string, string>, body: hasBody ? req : null },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, strip(headers))
      return res
    },
  ).catch((err: Error) => {
    if (res.headersSent) { res.destroy(err); return }
    res.writeHead(502, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { message: err.message, type: 'bare_proxy_error' } }))
  })
})
server.keepAliveTimeout = 65_000
server.listen(Number(process.env['BARE_PORT'] ?? 9200), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })}\n`)
})
const stop = (): void => { server.close(); void pool.close().finally(() => process.exit(0)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
