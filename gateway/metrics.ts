/**
 * A small Prometheus registry built for the hot path: a labelled series is resolved once
 * (`counter.labels(...)` returns a bound child you keep) and an observation is a few array writes.
 * Rendering the text format happens only on scrape.
 */

type Labels = readonly string[]

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function labelText(names: Labels, values: Labels, extra = ''): string {
  const parts: string[] = []
  for (let i = 0; i < names.length; i++) parts.push(`${names[i]}="${escapeLabel(values[i] ?? '')}"`)
  if (extra) parts.push(extra)
  return parts.length ? `{${parts.join(',')}}` : ''
}

interface Metric {
  readonly name: string
  render(out: string[]): void
}

export class CounterChild {
  value = 0
  inc(n = 1): void { this.value += n }
}

export class Counter implements Metric {
  readonly name: string
  readonly #help: string
  readonly #labels: Labels
  readonly #children = new Map<string, { values: Labels; child: CounterChild }>()
  readonly #collect: ((set: (v: number, ...labels: string[]) => void) => void) | undefined

  /** `collect`: a running total kept elsewhere (the process's CPU time), read at scrape time. */
  constructor(name: string, help: string, labels: Labels = [], collect?: (set: (v: number, ...labels: string[]) => void) => void) {
    this.name = name
    this.#help = help
    this.#labels = labels
    this.#collect = collect
  }

  labels(...values: string[]): CounterChild {
    const key = values.join('\u0000')
    let e = this.#children.get(key)
    if (!e) { e = { values, child: new CounterChild() }; this.#children.set(key, e) }
    return e.child
  }

  inc(n = 1): void { this.labels().inc(n) }

  render(out: string[]): void {
    if (this.#collect) this.#collect((v, ...l) => { this.labels(...l).value = v })
    out.push(`# HELP ${this.name} ${this.#help}`, `# TYPE ${this.name} counter`)
    for (const { values, child } of this.#children.values()) out.push(`${this.name}${labelText(this.#labels, values)} ${child.value}`)
  }
}

export class Gauge implements Metric {
  readonly name: string
  readonly #help: string
  readonly #labels: Labels
  readonly #values = new Map<string, { values: Labels; v: number }>()
  readonly #collect: ((set: (v: number, ...labels: string[]) => void) => void) | undefined

  constructor(name: string, help: string, labels: Labels = [], collect?: (set: (v: number, ...labels: string[]) => void) => void) {
    this.name = name
    this.#help = help
    this.#labels = labels
    this.#collect = collect
  }

  set(v: number, ...values: string[]): void {
    const key = values.join('\u0000')
    const e = this.#values.get(key)
    if (e) e.v = v
    else this.#values.set(key, { values, v })
  }

  inc(n = 1, ...values: string[]): void {
    const key = values.join('\u0000')
    const e = this.#values.get(key)
    if (e) e.v += n
    else this.#values.set(key, { values, v: n })
  }

  dec(n = 1, ...values: string[]): void { this.inc(-n, ...values) }

  render(out: string[]): void {
    // A collected gauge shows what its collector reports now: a label set it no longer reports (a target removed
    // by a reload) is dropped, not repeated at its last value forever.
    if (this.#collect) {
      this.#values.clear()
      this.#collect((v, ...l) => this.set(v, ...l))
    }
    out.push(`# HELP ${this.name} ${this.#help}`, `# TYPE ${this.name} gauge`)
    for (const { values, v } of this.#values.values()) out.push(`${this.name}${labelText(this.#labels, values)} ${v}`)
  }
}

export class HistogramChild {
  readonly counts: Float64Array
  sum = 0
  count = 0
  readonly #bounds: readonly number[]

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds
    this.counts = new Float64Array(bounds.length)
  }

  observe(v: number): void {
    this.sum += v
    this.count++
    const b = this.#bounds
    for (let i = 0; i < b.length; i++) if (v <= b[i]!) { this.counts[i]!++; return }
  }
}

export class Histogram implements Metric {
  readonly name: string
  readonly #help: string
  readonly #labels: Labels
  readonly #bounds: readonly number[]
  readonly #children = new Map<string, { values: Labels; child: HistogramChild }>()

  constructor(name: string, help: string, labels: Labels, bounds: readonly number[]) {
    this.name = name
    this.#help = help
    this.#labels = labels
    this.#bounds = bounds
  }

  labels(...values: string[]): HistogramChild {
    const key = values.join('\u0000')
    let e = this.#children.get(key)
    if (!e) { e = { values, child: new HistogramChild(this.#bounds) }; this.#children.set(key, e) }
    return e.child
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.#help}`, `# TYPE ${this.name} histogram`)
    for (const { values, child } of this.#children.values()) {
      let cum = 0
      for (let i = 0; i < this.#bounds.length; i++) {
        cum += child.counts[i]!
        out.push(`${this.name}_bucket${labelText(this.#labels, values, `le="${this.#bounds[i]}"`)} ${cum}`)
      }
      out.push(`${this.name}_bucket${labelText(this.#labels, values, 'le="+Inf"')} ${child.count}`)
      out.push(`${this.name}_sum${labelText(this.#labels, values)} ${child.sum}`)
      out.push(`${this.name}_count${labelText(this.#labels, values)} ${child.count}`)
    }
  }
}

/** Seconds buckets from 100 µs to 60 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]

export class Metrics {
  readonly #metrics = new Map<string, Metric>()

  #add<M extends Metric>(m: M): M {
    const existing = this.#metrics.get(m.name)
    if (existing) return existing as M
    this.#metrics.set(m.name, m)
    return m
  }

  counter(name: string, help: string, labels: Labels = [], collect?: (set: (v: number, ...labels: string[]) => void) => void): Counter {
    return this.#add(new Counter(name, help, labels, collect))
  }

  gauge(name: string, help: string, labels: Labels = [], collect?: (set: (v: number, ...labels: string[]) => void) => void): Gauge {
    return this.#add(new Gauge(name, help, labels, collect))
  }

  histogram(name: string, help: string, labels: Labels, bounds: readonly number[] = LATENCY_BUCKETS): Histogram {
    return this.#add(new Histogram(name, help, labels, bounds))
  }

  render(): string {
    const out: string[] = []
    for (const m of this.#metrics.values()) m.render(out)
    return out.join('\n') + '\n'
  }
}
