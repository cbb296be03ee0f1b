/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on anything
 * a Prometheus server would reject or silently mangle (HELP/TYPE after samples or twice, a sample of
 * a family without TYPE, duplicate series, bad escapes, bad names, non-cumulative buckets).
 */
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export interface Sample { name: string; labels: Record<string, string>; value: number }
export interface Family { name: string; type: string; help: string; samples: Sample[] }

function parseLabels(s: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {}
  let i = 1
  for (;;) {
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) }
    const eq = s.indexOf('=', i)
    if (eq < 0) throw new Error(`label without '=': ${line}`)
    const name = s.slice(i, eq)
    if (!LABEL.test(name)) throw new Error(`bad label name ${JSON.stringify(name)}: ${line}`)
    if (name in labels) throw new Error(`label ${name} twice: ${line}`)
    if (s[eq + 1] !== '"') throw new Error(`label value not quoted: ${line}`)
    let v = ''
    let j = eq + 2
    for (;; j++) {
      const c = s[j]
      if (c === undefined) throw new Error(`unterminated label value: ${line}`)
      if (c === '"') break
      if (c === '\\') {
        const n = s[++j]
        if (n === '\\') v += '\\'
        else if (n === '"') v += '"'
        else if (n === 'n') v += '\n'
        else throw new Error(`bad escape \\${n} in label value: ${line}`)
      } else v += c
    }
    labels[name] = v
    i = j + 1
    if (s[i] === ',') i++
    else if (s[i] !== '}') throw new Error(`expected ',' or '}' after label value: ${line}`)
  }
}

function parseValue(v: string, line: string): number {
  if (v === '+Inf') return Infinity
  if (v === '-Inf') return -Infinity
  if (v === 'NaN') return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) throw new Error(`bad value ${JSON.stringify(v)}: ${line}`)
  return Number(v)
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length)
      if (types.get(base) === 'histogram' || (suffix !== '_bucket' && types.get(base) === 'summary')) return base
    }
  }
  return undefined
}

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('exposition does not end with a newline')
  const families = new Map<string, Family>()
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const seen = new Set<string>()
  const closed = new Set<string>()
  let current: string | undefined
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (!m) continue
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (!NAME.test(name)) throw new Error(`bad metric name: ${line}`)
      if (closed.has(name) || (families.get(name)?.samples.length ?? 0) > 0) throw new Error(`${kind} after samples of ${name}`)
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`HELP twice for ${name}`)
        helps.add(name)
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`bad escape in HELP: ${line}`)
      } else {
        if (types.has(name)) throw new Error(`TYPE twice for ${name}`)
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad type: ${line}`)
        types.set(name, rest)
        families.set(name, { name, type: rest, help: '', samples: [] })
      }
      if (current !== undefined && current !== name) closed.add(current)
      current = name
      continue
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
    if (!nm) throw new Error(`bad sample line: ${line}`)
    const name = nm[0]
    let rest = line.slice(name.length)
    let labels: Record<string, string> = {}
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line))
    const parts = rest.trim().split(/ +/)
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new Error(`bad sample line: ${line}`)
    const value = parseValue(parts[0]!, line)
    const fam = familyOf(name, types)
    if (fam === undefined) throw new Error(`sample without TYPE: ${line}`)
    if (closed.has(fam)) throw new Error(`samples of ${fam} not contiguous: ${line}`)
    if (current !== fam) { if (current !== undefined) closed.add(current); current = fam }
    const key = name + JSON.stringify(Object.entries(labels).sort())
    if (seen.has(key)) throw new Error(`duplicate series: ${line}`)
    seen.add(key)
    families.get(fam)!.samples.push({ name, labels, value })
  }
  for (const f of families.values()) checkFamily(f)
  return families
}

function checkFamily(f: Family): void {
  if (f.type === 'counter') {
    if (!f.name.endsWith('_total')) throw new Error(`counter ${f.name} does not end in _total`)
    for (const s of f.samples) if (!(s.value >= 0)) throw new Error(`counter ${f.name} negative or NaN`)
  }
  if (f.type !== 'histogram') return
  const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    let g = groups.get(key)
    if (!g) { g = { buckets: [] }; groups.set(key, g) }
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}_bucket without le`)
      g.buckets.push([parseValue(le, le), s.value])
    } else if (s.name === `${f.name}_sum`) g.sum = s.value
    else if (s.name === `${f.name}_count`) g.count = s.value
    else throw new Error(`stray sample ${s.name} in histogram ${f.name}`)
  }
  for (const [key, g] of groups) {
    if (g.sum === undefined || g.count === undefined) throw new Error(`${f.name}${key}: _sum or _count missing`)
    const inf = g.buckets.find(([le]) => le === Infinity)
    if (!inf) throw new Error(`${f.name}${key}: no +Inf bucket`)
    if (inf[1] !== g.count) throw new Error(`${f.name}${key}: +Inf ${inf[1]} != _count ${g.count}`)
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new Error(`${f.name}${key}: le not increasing`)
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new Error(`${f.name}${key}: buckets not cumulative`)
    }
  }
}

/** Every counter series (and histogram count/sum/bucket) of `after` is >= its value in `before`. */
export function checkMonotone(before: Map<string, Family>, after: Map<string, Family>): void {
  for (const f of before.values()) {
    if (f.type !== 'counter' && f.type !== 'histogram') continue
    const next = after.get(f.name)
    if (!next) throw new Error(`family ${f.name} disappeared`)
    const values = new Map(next.samples.map((s) => [s.name + JSON.stringify(Object.entries(s.labels).sort()), s.value]))
    for (const s of f.samples) {
      const key = s.name + JSON.stringify(Object.entries(s.labels).sort())
      const v = values.get(key)
      if (v === undefined) throw new Error(`series ${key} disappeared`)
      if (v < s.value) throw new Error(`series ${key} went down: ${s.value} -> ${v}`)
    }
  }
}
