/**
 * Connection caps, applied on the listener's 'connection' event before a byte is parsed: at most
 * `perIp` open connections per client address (429) and `global` in total (503). A refused plain-HTTP
 * connection gets a minimal JSON answer and is closed; a refused TLS connection is closed (nothing can
 * be said before the handshake). Requests that still arrive on a refused socket are dropped by the
 * guard (`isRefused`).
 */
import type { Server } from 'node:net'
import type { Socket } from 'node:net'
import { clientKey } from './address.ts'

export type ConnectionRefusal = 'connections_per_ip' | 'connections'

export interface ConnectionLimiterOptions {
  perIp: number
  global: number
  /** True when the address is exempt from the per-address cap. */
  exempt(address: string): boolean
  /** The raw HTTP/1.1 answer for a refusal (plain HTTP listeners); undefined: just close. */
  answer?: (reason: ConnectionRefusal) => string
  onRefuse?: (reason: ConnectionRefusal) => void
}

export class ConnectionLimiter {
  readonly #o: ConnectionLimiterOptions
  readonly #perIp = new Map<string, number>()
  readonly #refused = new WeakSet<Socket>()
  #open = 0

  constructor(opts: ConnectionLimiterOptions) {
    this.#o = opts
  }

  get open(): number {
    return this.#open
  }

  /** Open connections of one address key (tests, metrics). */
  openFrom(address: string): number {
    return this.#perIp.get(clientKey(address)) ?? 0
  }

  isRefused(socket: Socket): boolean {
    return this.#refused.has(socket)
  }

  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.#admit(socket))
  }

  #admit(socket: Socket): void {
    const o = this.#o
    if (o.global > 0 && this.#open >= o.global) { this.#refuse(socket, 'connections'); return }
    const remote = socket.remoteAddress ?? 'unknown'
    const limited = o.perIp > 0 && !o.exempt(remote)
    const key = limited ? clientKey(remote) : ''
    if (limited) {
      const n = this.#perIp.get(key) ?? 0
      if (n >= o.perIp) { this.#refuse(socket, 'connections_per_ip'); return }
      this.#perIp.set(key, n + 1)
    }
    this.#open++
    socket.once('close', () => {
      this.#open--
      if (!limited) return
      const n = (this.#perIp.get(key) ?? 1) - 1
      if (n <= 0) this.#perIp.delete(key)
      else this.#perIp.set(key, n)
    })
  }

  #refuse(socket: Socket, reason: ConnectionRefusal): void {
    this.#refused.add(socket)
    this.#o.onRefuse?.(reason)
    const text = this.#o.answer?.(reason)
    socket.on('error', () => {})
    if (text === undefined) { socket.destroy(); return }
    // Whatever the client still sends is not read; the socket goes away soon after the answer.
    socket.end(text)
    const t = setTimeout(() => socket.destroy(), 1000)
    t.unref()
    socket.once('close', () => clearTimeout(t))
  }
}
