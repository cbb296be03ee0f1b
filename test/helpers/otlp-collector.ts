/**
 * A test OTLP/HTTP (JSON) trace collector on 127.0.0.1: every exported span lands in `spans`, with `attr()` to read
 * an attribute whatever its value type.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: { key: string; value: Record<string, unknown> }[]
  status?: { code?: number }
}

export interface OtlpCollector {
  readonly spans: OtlpSpan[]
  /** The traces endpoint, for `telemetry.tracing.endpoint`. */
  readonly url: string
  close(): Promise<void>
}

export function attr(s: OtlpSpan, key: string): unknown {
  const a = s.attributes.find((x) => x.key === key)
  if (!a) return undefined
  const v = a.value
  return v['stringValue'] ?? v['intValue'] ?? v['boolValue'] ?? v['doubleValue'] ?? v['arrayValue']
}

export async function startCollector(): Promise<OtlpCollector> {
  const spans: OtlpSpan[] = []
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    spans,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}
