/**
 * Where cached answers live: an in-process LRU (bounded by entries and bytes, TTL checked on read),
 * or Redis (`SET PX`, shared by every instance). Entries are stored as JSON text, so a hit never
 * shares an object with another request.
 */
import type { Redis } from '../../gateway/redis.ts'
import type { ChatResponse } from '../../providers/types.ts'

export interface CacheEntry {
  v: 1
  response: ChatResponse
  /** What the answer cost when it was made (pico-USD; 0 when unknown): what each hit saves. */
  pico: number
  provider: string
  model: string
  createdAt: number
}

export interface CacheStore {
  readonly kind: 'memory' | 'redis'
  get(key: string, now: number): Promise<string | undefined>
  set(key: string, value: string, ttlMs: number, now: number): Promise<void>
}

export class MemoryCacheStore implements CacheStore {
  readonly kind = 'memory' as const
  readonly #map = new Map<string, { value: string; bytes: number; expiresAt: number }>()
  #bytes = 0
  maxEntries: number
  maxBytes: number

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }

  get size(): number {
    return this.#map.size
  }

  get bytes(): number {
    return this.#bytes
  }

  #delete(key: string): void {
    const e = this.#map.get(key)
    if (!e) return
    this.#bytes -= e.bytes
    this.#map.delete(key)
  }

  getSync(key: string, now: number): string | undefined {
    const e = this.#map.get(key)
    if (!e) return undefined
    if (e.expiresAt <= now) { this.#delete(key); return undefined }
    // Most recently used goes last.
    this.#map.delete(key)
    this.#map.set(key, e)
    return e.value
  }

  setSync(key: string, value: string, ttlMs: number, now: number): void {
    this.#delete(key)
    const bytes = value.length * 2 + key.length * 2 + 64
    if (bytes > this.maxBytes) return
    this.#map.set(key, { value, bytes, expiresAt: now + ttlMs })
    this.#bytes += bytes
    for (const k of this.#map.keys()) {
      if (this.#map.size <= this.maxEntries && this.#bytes <= this.maxBytes) break
      this.#delete(k)
    }
  }

  get(key: string, now: number): Promise<string | undefined> {
    return Promise.resolve(this.getSync(key, now))
  }

  set(key: string, value: string, ttlMs: number, now: number): Promise<void> {
    this.setSync(key, value, ttlMs, now)
    return Promise.resolve()
  }
}

export class RedisCacheStore implements CacheStore {
  readonly kind = 'redis' as const
  readonly #redis: Redis
  readonly #prefix: string

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis
    this.#prefix = prefix
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.#redis.get(this.#prefix + key)) ?? undefined
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#redis.set(this.#prefix + key, value, 'PX', ttlMs)
  }
}

/** In-process stores by key prefix, shared across plugin instances so entries survive a reload. */
const memoryStores = new Map<string, MemoryCacheStore>()

export function memoryStoreFor(prefix: string, maxEntries: number, maxBytes: number): MemoryCacheStore {
  let s = memoryStores.get(prefix)
  if (!s) { s = new MemoryCacheStore(maxEntries, maxBytes); memoryStores.set(prefix, s) } else { s.maxEntries = maxEntries; s.maxBytes = maxBytes }
  return s
}
