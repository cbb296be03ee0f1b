/**
 * Redis store: one EVALSHA of lua/admit.lua per admission (ioredis `defineCommand`: EVAL on the
 * first use per connection, EVALSHA after, EVAL again on NOSCRIPT), so limits are exact across
 * gateway instances. Never waits longer than `timeoutMs`:
 *
 *  - not connected (`status !== 'ready'`): fails at once, nothing is sent ('not_ready');
 *  - no answer within `timeoutMs`: fails ('timeout'); the command may still run later;
 *  - the command was sent and failed (a connection reset before the reply, an error reply): fails
 *    ('error'); the script may have run;
 *  - `breakerFailures` consecutive timeouts/errors open a breaker: Redis is skipped ('breaker_open')
 *    for `breakerCooldownMs`, then one request probes it; success closes the breaker.
 *
 * The caller applies its fail policy to every failure. After a timeout or an error, the slots the
 * script may have taken are released at once (idempotent: ZREM of an absent member is a no-op), or
 * when the connection is ready again. Completion writes (slot release, token
 * correction) are sent without waiting; releases that cannot be sent are retried when the
 * connection is ready again (bounded), and leaked slots expire on their own (slot TTL).
 */
import { readFileSync } from 'node:fs'
import type { Redis } from 'ioredis'
import type { Check, StoreWrites, Verdict } from './gcra.ts'

const ADMIT_LUA = readFileSync(new URL('./lua/admit.lua', import.meta.url), 'utf8')
const ADJUST_LUA = readFileSync(new URL('./lua/adjust.lua', import.meta.url), 'utf8')
const ADMIT = 'mcpRateLimitAdmit'
const ADJUST = 'mcpRateLimitAdjust'
const MAX_PENDING_RELEASES = 10_000

export type FailureReason = 'timeout' | 'error' | 'not_ready' | 'breaker_open'
export interface BackendFailure {
  readonly failure: FailureReason
  readonly error?: Error
}

export function isFailure(v: Verdict | BackendFailure): v is BackendFailure {
  return 'failure' in v
}

export interface RedisStoreOptions {
  prefix: string
  timeoutMs: number
  breakerFailures: number
  breakerCooldownMs: number
  /** Called for every failed completion write (release/adjust), for counting. */
  onWriteFailure?: (op: 'release' | 'adjust', err: Error) => void
  clock?: () => number
}

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>

const NOT_READY: BackendFailure = Object.freeze({ failure: 'not_ready' })
const BREAKER_OPEN: BackendFailure = Object.freeze({ failure: 'breaker_open' })
const TIMEOUT: BackendFailure = Object.freeze({ failure: 'timeout' })

export class RedisStore implements StoreWrites {
  readonly #redis: Redis
  readonly #admit: ScriptFn
  readonly #adjust: ScriptFn
  readonly #o: RedisStoreOptions
  readonly #clock: () => number
  #fails = 0
  #openUntil = 0
  #probing = false
  #pending: [key: string, member: string][] = []
  readonly #onReady = (): void => this.#flushReleases()

  constructor(redis: Redis, opts: RedisStoreOptions) {
    this.#redis = redis
    this.#o = opts
    this.#clock = opts.clock ?? Date.now
    redis.defineCommand(ADMIT, { lua: ADMIT_LUA })
    redis.defineCommand(ADJUST, { lua: ADJUST_LUA, numberOfKeys: 1 })
    const r = redis as unknown as Record<string, ScriptFn>
    this.#admit = r[ADMIT]!.bind(redis)
    this.#adjust = r[ADJUST]!.bind(redis)
    redis.on('ready', this.#onReady)
  }

  /** Breaker state for metrics and tests. */
  get breakerOpen(): boolean {
    return this.#fails >= this.#o.breakerFailures
  }

  /** All-or-nothing admission in one round trip; resolves within ~timeoutMs, never rejects. */
  admit(checks: readonly Check[], member: string): Promise<Verdict | BackendFailure> {
    if (this.#redis.status !== 'ready') return Promise.resolve(NOT_READY)
    const now = this.#clock()
    if (this.#fails >= this.#o.breakerFailures) {
      if (now < this.#openUntil || this.#probing) return Promise.resolve(BREAKER_OPEN)
      this.#probing = true
    }
    const n = checks.length
    const args: (string | number)[] = [n]
    const p = this.#o.prefix
    for (const c of checks) args.push(p + c.key)
    args.push(member)
    for (const c of checks) {
      if (c.kind === 'gcra') args.push('g', c.emissionMs, c.toleranceMs, c.cost)
      else args.push('s', c.limit, c.ttlMs, 0)
    }
    const sent = this.#admit(...args)
    return new Promise((resolve) => {
      let done = false
      // The budget expires in the timers phase; a reply already in the socket buffer is read in the
      // poll phase that follows, so the verdict waits for the check phase (setImmediate): a busy event
      // loop is not mistaken for a slow Redis.
      const timer = setTimeout(() => setImmediate(() => {
        if (done) return
        done = true
        this.#failed()
        this.#releaseLate(checks, member)
        resolve(TIMEOUT)
      }), this.#o.timeoutMs)
      sent.then((raw) => {
        if (done) return
        done = true
        clearTimeout(timer)
        const v = parseVerdict(raw, n)
        if (v === undefined) {
          this.#failed()
          this.#releaseLate(checks, member)
          resolve({ failure: 'error', error: new Error('unexpected reply from the rate-limit script') })
          return
        }
        this.#fails = 0
        this.#probing = false
        if (this.#pending.length > 0) this.#flushReleases()
        resolve(v)
      }, (err: Error) => {
        if (done) return
        done = true
        clearTimeout(timer)
        this.#failed()
        // The command was written: the script may have run and taken slots whose reply was lost (a reset
        // connection). Undone like a timeout's; the release waits for the connection when it is down.
        this.#releaseLate(checks, member)
        resolve({ failure: /timed out/i.test(err.message) ? 'timeout' : 'error', error: err })
      })
    })
  }

  adjust(key: string, emissionMs: number, delta: number): void {
    if (delta === 0) return
    if (this.#redis.status !== 'ready') { this.#o.onWriteFailure?.('adjust', new Error('redis not ready')); return }
    this.#adjust(this.#o.prefix + key, emissionMs, delta).catch((e: Error) => this.#o.onWriteFailure?.('adjust', e))
  }

  release(key: string, member: string): void {
    if (this.#redis.status !== 'ready') { this.#queueRelease(key, member); return }
    this.#redis.zrem(this.#o.prefix + key, member).catch((e: Error) => {
      this.#o.onWriteFailure?.('release', e)
      this.#queueRelease(key, member)
    })
  }

  close(): void {
    this.#redis.off('ready', this.#onReady)
  }

  #failed(): void {
    this.#fails++
    this.#probing = false
    if (this.#fails >= this.#o.breakerFailures) this.#openUntil = this.#clock() + this.#o.breakerCooldownMs
  }

  /**
   * An admission that timed out or failed after it was sent may have run, or may still run when Redis
   * wakes up. Its slot adds are undone by a ZREM sent now on the same connection (Redis runs them in
   * order), or queued until the connection is back when it was reset; ZREM of an absent member is a no-op.
   */
  #releaseLate(checks: readonly Check[], member: string): void {
    for (const c of checks) if (c.kind === 'slot') this.release(c.key, member)
  }

  #queueRelease(key: string, member: string): void {
    if (this.#pending.length < MAX_PENDING_RELEASES) this.#pending.push([key, member])
  }

  #flushReleases(): void {
    if (this.#pending.length === 0) return
    const batch = this.#pending
    this.#pending = []
    const pipe = this.#redis.pipeline()
    for (const [k, m] of batch) pipe.zrem(this.#o.prefix + k, m)
    pipe.exec().catch((e: Error) => this.#o.onWriteFailure?.('release', e))
  }
}

function parseVerdict(raw: unknown, n: number): Verdict | undefined {
  if (!Array.isArray(raw) || raw.length !== 3 + 2 * n) return undefined
  const num = (i: number): number => Number(raw[i])
  const remaining = new Array<number>(n)
  const resetMs = new Array<number>(n)
  for (let i = 0; i < n; i++) { remaining[i] = num(3 + 2 * i); resetMs[i] = num(4 + 2 * i) }
  const ok = num(0) === 1
  return { ok, failed: ok ? -1 : num(1) - 1, retryMs: ok ? 0 : num(2), remaining, resetMs }
}
