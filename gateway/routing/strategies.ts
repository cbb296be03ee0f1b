/**
 * Load-balancing strategies: each orders an alias's available targets for one request, best first.
 * The router tries them in that order. All state they read lives in TargetState.
 */
import type { Strategy } from './config.ts'
import type { CompiledTarget } from './alias.ts'

export type Order = (targets: readonly CompiledTarget[], stickyKey: string | undefined) => CompiledTarget[]

/** FNV-1a 32-bit, for rendezvous hashing of sticky keys. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/**
 * Weighted rendezvous (highest random weight) hashing: the same key picks the same target while it
 * is available, and removing a target moves only the keys that were on it.
 */
export function rendezvous(targets: readonly CompiledTarget[], key: string): CompiledTarget[] {
  const scored = targets.map((t) => {
    const h = (fnv1a(`${key}\u0000${t.state.id}`) + 1) / 4294967297
    return { t, score: -t.weight / Math.log(h) }
  })
  scored.sort((a, b) => b.score - a.score)
  return scored.map((s) => s.t)
}

/** Smooth weighted round-robin (nginx's): deterministic, evenly interleaved by weight. */
export function createSmoothWeighted(): Order {
  const current = new Map<CompiledTarget, number>()
  return (targets) => {
    if (targets.length <= 1) return [...targets]
    let total = 0
    let best: CompiledTarget | undefined
    let bestScore = -Infinity
    for (const t of targets) {
      const c = (current.get(t) ?? 0) + t.weight
      current.set(t, c)
      total += t.weight
      if (c > bestScore) { bestScore = c; best = t }
    }
    current.set(best!, bestScore - total)
    return [best!, ...byPriority(targets.filter((t) => t !== best))]
  }
}

function weightedRandom(targets: readonly CompiledTarget[]): CompiledTarget[] {
  const rest = [...targets]
  const out: CompiledTarget[] = []
  while (rest.length > 0) {
    let total = 0
    for (const t of rest) total += t.weight
    let r = Math.random() * total
    let i = 0
    for (; i < rest.length - 1; i++) { r -= rest[i]!.weight; if (r < 0) break }
    out.push(rest.splice(i, 1)[0]!)
  }
  return out
}

function byPriority(targets: readonly CompiledTarget[]): CompiledTarget[] {
  return [...targets].sort((a, b) => a.priority - b.priority || a.index - b.index)
}

/** Power of two choices on in-flight requests (relative to weight), the rest by priority. */
function leastOutstanding(targets: readonly CompiledTarget[]): CompiledTarget[] {
  if (targets.length <= 2) return [...targets].sort((a, b) => a.state.inflight / a.weight - b.state.inflight / b.weight)
  const i = Math.floor(Math.random() * targets.length)
  let j = Math.floor(Math.random() * (targets.length - 1))
  if (j >= i) j++
  const a = targets[i]!
  const b = targets[j]!
  const first = a.state.inflight / a.weight <= b.state.inflight / b.weight ? a : b
  return [first, ...byPriority(targets.filter((t) => t !== first))]
}

/** Lowest EWMA of time to first token; unmeasured targets first so they get measured. */
function lowestLatency(targets: readonly CompiledTarget[]): CompiledTarget[] {
  return [...targets].sort((a, b) => a.state.ttftEwma - b.state.ttftEwma || a.priority - b.priority)
}

/** Lowest blended price (input + output per million tokens); unpriced targets last. */
function lowestCost(targets: readonly CompiledTarget[]): CompiledTarget[] {
  const cost = (t: CompiledTarget): number => (t.price ? t.price.input + t.price.output : Number.POSITIVE_INFINITY)
  return [...targets].sort((a, b) => cost(a) - cost(b) || a.priority - b.priority)
}

export function createOrder(strategy: Strategy): Order {
  switch (strategy) {
    case 'weighted': return createSmoothWeighted()
    case 'random': return (t) => weightedRandom(t)
    case 'priority': return (t) => byPriority(t)
    case 'least-outstanding': return (t) => leastOutstanding(t)
    case 'lowest-latency': return (t) => lowestLatency(t)
    case 'lowest-cost': return (t) => lowestCost(t)
  }
}
