/**
 * pino, JSON to stdout. Credentials are redacted whole: auth headers, cookies, and any field named
 * like key, secret, token or password, wherever it sits in a logged object.
 */
import { pino, type Logger } from 'pino'

const SECRET_HEADERS = ['authorization', 'x-api-key', 'api-key', 'x-goog-api-key', 'cookie', 'set-cookie', 'proxy-authorization']
const SECRET_FIELD = /(key|secret|token|password|passphrase|credentials?|authorization|cookie)$/i

/** Deep copy with secret-named fields replaced; used by the serializers and for config dumps. */
export function redactSecrets(v: unknown, depth = 0): unknown {
  if (depth > 8 || v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.map((x) => redactSecrets(x, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    out[k] = SECRET_FIELD.test(k) && (typeof x === 'string' || typeof x === 'number') ? '[redacted]' : redactSecrets(x, depth + 1)
  }
  return out
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { pid: process.pid },
    redact: {
      paths: [
        ...SECRET_HEADERS.flatMap((h) => [`headers["${h}"]`, `req.headers["${h}"]`, `res.headers["${h}"]`]),
        '*.apiKey', '*.key', '*.secret', '*.token', '*.password', 'apiKey', 'key', 'secret', 'token', 'password',
      ],
      censor: '[redacted]',
    },
    serializers: {
      config: (c: unknown) => redactSecrets(c),
      err: pino.stdSerializers.err,
    },
  }
  return destination ? pino(opts, destination as pino.DestinationStream) : pino(opts, pino.destination({ sync: false }))
}
