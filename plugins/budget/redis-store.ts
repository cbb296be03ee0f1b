/**
 * Budget counters shared by every gateway instance: the admission and settlement of store.ts as Lua
 * scripts (atomic on the Redis server, so two instances can never both take the last of a budget).
 *
 * Keys (prefix P, default `mcp:{budget}:`, whose hash tag keeps every key in one Cluster slot):
 *   P c:<budget>:<scope id>:<period start>     hash: su st sq (spent), ru rt rq (reserved), r:<id> "u t q"
 *   P c:<budget>:<scope id>:<period start>:r   zset: reservation id → expiry (ms)
 *   P i:<budget>:<period start>                set: scope ids with a counter (admin listing)
 *   P s:<request id>                           settle marker (PX = reservation TTL)
 * Counters and indexes expire COUNTER_RETENTION_MS after their period ends.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Redis } from '../../gateway/redis.ts'
import { COUNTER_RETENTION_MS, type AdmitResult, type BudgetStore, type CounterSpec, type CounterState, type Units } from './store.ts'

interface Script { readonly text: string; readonly sha: string }

function script(name: string): Script {
  const text = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8')
  return { text, sha: createHash('sha1').update(text).digest('hex') }
}

const ADMIT = script('admit')
const SETTLE = script('settle')
const PEEK = script('peek')

const STATUS: Record<number, AdmitResult['status']> = { 1: 'ok', 0: 'refused', 2: 'over', [-1]: 'settled' }

function states(flat: readonly unknown[], from: number, n: number): CounterState[] {
  const out: CounterState[] = []
  for (let i = 0; i < n; i++) {
    const v = (j: number): number => Number(flat[from + i * 6 + j] ?? 0)
    out.push({ spent: [v(0), v(1), v(2)], reserved: [v(3), v(4), v(5)] })
  }
  return out
}

/**
 * A scope id in a key. encodeURIComponent throws on a lone surrogate, and a model budget's scope id is the client's
 * model name: such a name is encoded with U+FFFD instead (as Redis stores it in the scope index), rather than
 * failing the admission as if Redis were down.
 */
function encodeScope(id: string): string {
  return encodeURIComponent(id.toWellFormed())
}

export class RedisBudgetStore implements BudgetStore {
  readonly kind = 'redis' as const
  readonly #redis: Redis
  readonly #prefix: string
  readonly #ttlMs: number

  constructor(redis: Redis, prefix: string, reservationTtlMs: number) {
    this.#redis = redis
    this.#prefix = prefix
    this.#ttlMs = reservationTtlMs
  }

  counterKey(c: CounterSpec): string {
    return `${this.#prefix}c:${c.budget}:${encodeScope(c.scopeId)}:${c.periodStart}`
  }

  async #run(s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown[]> {
    try {
      return await this.#redis.evalsha(s.sha, keys.length, ...keys, ...args) as unknown[]
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e
      return await this.#redis.eval(s.text, keys.length, ...keys, ...args) as unknown[]
    }
  }

  async admit(id: string, counters: readonly CounterSpec[], amount: Units, enforce: boolean, now: number): Promise<AdmitResult> {
    const keys = [`${this.#prefix}s:${id}`]
    const args: (string | number)[] = [id, now, now + this.#ttlMs, counters.length, amount[0], amount[1], amount[2], enforce ? '1' : '0']
    for (const c of counters) {
      const h = this.counterKey(c)
      keys.push(h, `${h}:r`, `${this.#prefix}i:${c.budget}:${c.periodStart}`)
      args.push(c.hard ? '1' : '0', c.limits[0], c.limits[1], c.limits[2], c.periodEnd + COUNTER_RETENTION_MS, c.scopeId)
    }
    const r = await this.#run(ADMIT, keys, args)
    return { status: STATUS[Number(r[0])] ?? 'refused', failed: Number(r[1]), unit: Number(r[2]), states: states(r, 3, counters.length) }
  }

  async settle(id: string, counters: readonly CounterSpec[], actual: Units, _now: number): Promise<readonly CounterState[] | undefined> {
    const keys = [`${this.#prefix}s:${id}`]
    const args: (string | number)[] = [id, this.#ttlMs, counters.length, actual[0], actual[1], actual[2]]
    for (const c of counters) {
      const h = this.counterKey(c)
      keys.push(h, `${h}:r`)
      args.push(c.periodEnd + COUNTER_RETENTION_MS)
    }
    const r = await this.#run(SETTLE, keys, args)
    if (Number(r[0]) !== 1) return undefined
    return states(r, 1, counters.length)
  }

  /**
   * Moves the expiry of open reservations to now + TTL (requests still running: keepalive.ts), in one round trip:
   * one `ZADD XX` per counter with every id on it. XX only updates a member that exists, so a reservation settled
   * or dropped meanwhile is not brought back.
   */
  async refresh(entries: readonly { id: string; counters: readonly CounterSpec[] }[], now: number): Promise<void> {
    if (entries.length === 0) return
    const expiry = String(now + this.#ttlMs)
    const byCounter = new Map<string, string[]>()
    for (const e of entries) {
      for (const c of e.counters) {
        const z = `${this.counterKey(c)}:r`
        let args = byCounter.get(z)
        if (!args) { args = []; byCounter.set(z, args) }
        args.push(expiry, e.id)
      }
    }
    const pipe = this.#redis.pipeline()
    for (const [z, args] of byCounter) pipe.zadd(z, 'XX', ...args)
    const results = await pipe.exec()
    for (const [err] of results ?? []) if (err) throw err
  }

  async peek(counters: readonly CounterSpec[], now: number): Promise<readonly CounterState[]> {
    if (counters.length === 0) return []
    const keys: string[] = []
    for (const c of counters) { const h = this.counterKey(c); keys.push(h, `${h}:r`) }
    return states(await this.#run(PEEK, keys, [now]), 0, counters.length)
  }

  async scopes(budget: string, periodStart: number): Promise<string[]> {
    return this.#redis.smembers(`${this.#prefix}i:${budget}:${periodStart}`)
  }
}
