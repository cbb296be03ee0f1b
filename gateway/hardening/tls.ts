/**
 * The listener factory: plain `http.Server`, or `https.Server` when a `tls` block is configured
 * (certificate and key files, optional client CA for mutual TLS, TLS 1.2 at least). The certificate is
 * reloaded when its files change, with `setSecureContext`: new handshakes use the new certificate,
 * open connections are not dropped, and a pair that does not load leaves the old one serving.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import { createHash } from 'node:crypto'
import type { SecureContextOptions } from 'node:tls'
import type { Logger } from 'pino'
import type { TlsSettings } from './config.ts'

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** The secure-context options of a TLS block, read from its files now. */
export function readTlsFiles(t: TlsSettings): SecureContextOptions {
  const opts: SecureContextOptions = { cert: readFileSync(t.certFile), key: readFileSync(t.keyFile), minVersion: t.minVersion }
  if (t.caFile !== undefined) opts.ca = readFileSync(t.caFile)
  return opts
}

function fingerprint(o: SecureContextOptions): string {
  const h = createHash('sha256')
  for (const v of [o.cert, o.key, o.ca]) h.update(v === undefined ? '-' : String(v)).update('\0')
  return h.digest('hex')
}

/**
 * Creates the listener. With TLS: `handshakeTimeout` follows `headersTimeout` (a slow handshake is a
 * slow client too), client certificates are required when `caFile` is set, and the files are watched
 * when `watch` is on (the watchers close with the server).
 */
export function createListener(tls: TlsSettings | undefined, options: http.ServerOptions, handler: RequestHandler, log: Logger): http.Server {
  if (tls === undefined) return http.createServer(options, handler)
  const ctx = readTlsFiles(tls)
  const server = https.createServer({
    ...options,
    ...ctx,
    handshakeTimeout: options.headersTimeout ?? 10_000,
    ...(tls.caFile !== undefined ? { requestCert: true, rejectUnauthorized: true } : {}),
  }, handler)
  if (tls.watch) watchTls(server, tls, fingerprint(ctx), log)
  return server as unknown as http.Server
}

function watchTls(server: https.Server, tls: TlsSettings, initial: string, log: Logger): void {
  let current = initial
  let timer: NodeJS.Timeout | undefined
  const reload = (): void => {
    let next: SecureContextOptions
    try {
      next = readTlsFiles(tls)
    } catch (e) {
      log.error({ err: e, certFile: tls.certFile }, 'TLS certificate reload failed: the previous certificate keeps serving')
      return
    }
    const fp = fingerprint(next)
    if (fp === current) return
    try {
      server.setSecureContext(next)
      current = fp
      log.info({ certFile: tls.certFile }, 'TLS certificate reloaded')
    } catch (e) {
      log.error({ err: e, certFile: tls.certFile }, 'TLS certificate reload failed: the previous certificate keeps serving')
    }
  }
  // Directories, not files: certificates are usually replaced by rename (a Kubernetes secret swaps a symlink).
  const dirs = new Set([tls.certFile, tls.keyFile, ...(tls.caFile !== undefined ? [tls.caFile] : [])].map((f) => path.dirname(path.resolve(f))))
  const watchers: FSWatcher[] = []
  for (const d of dirs) {
    try {
      const w = watch(d, () => { clearTimeout(timer); timer = setTimeout(reload, 100) })
      w.on('error', (e) => log.error({ err: e, dir: d }, 'TLS certificate watcher failed'))
      w.unref()
      watchers.push(w)
    } catch (e) {
      log.error({ err: e, dir: d }, 'cannot watch the TLS certificate directory')
    }
  }
  server.once('close', () => { clearTimeout(timer); for (const w of watchers) w.close() })
}
