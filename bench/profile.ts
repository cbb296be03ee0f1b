/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function
 * (functionName + url:line), and per package/area. Idle samples are excluded from the percentages.
 *
 *   node --experimental-strip-types bench/profile.ts <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }

export interface ProfileRow { key: string; samples: number; pct: number; ms: number }
export interface ProfileSummary {
  file: string
  totalSamples: number
  busySamples: number
  /** mean sampling interval, µs */
  intervalUs: number
  wallMs: number
  top: ProfileRow[]
  /** self time with node internals and natives charged to the nearest project/npm caller */
  byCaller: ProfileRow[]
  byArea: ProfileRow[]
}

function shortUrl(url: string, root: string): string {
  if (url === '') return ''
  if (url.startsWith('node:')) return url
  let p = url
  if (url.startsWith('file://')) { try { p = fileURLToPath(url) } catch { /* keep */ } }
  const nm = p.lastIndexOf('/node_modules/')
  if (nm >= 0) return p.slice(nm + 1)
  return p.startsWith(root) ? relative(root, p) : p
}

/** node:internal, a node_modules package, or a project directory. */
function area(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native/builtin)'
  if (url.startsWith('node:')) return url.startsWith('node:internal/') ? `node:internal/${url.split('/')[1] ?? ''}` : url
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m !== null) return `npm:${m[1] ?? ''}`
  const parts = url.split('/')
  return parts.length > 1 ? `${parts[0] ?? ''}/${parts[1] ?? ''}` : url
}

export function summarizeProfile(file: string, topN = 25, root = process.cwd()): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byFn = new Map<string, number>()
  const byArea = new Map<string, number>()
  const byCaller = new Map<string, number>()
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const n of prof.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n.id)
  }
  const keyOf = (n: ProfileNode): string => {
    const fn = n.callFrame.functionName === '' ? '(anonymous)' : n.callFrame.functionName
    const url = shortUrl(n.callFrame.url, root)
    return url === '' ? fn : `${fn} ${url}:${n.callFrame.lineNumber + 1}`
  }
  /** the nearest frame (itself included) that is neither native nor node:* */
  const appFrame = (n: ProfileNode): ProfileNode | undefined => {
    let cur: ProfileNode | undefined = n
    while (cur !== undefined) {
      const u = cur.callFrame.url
      if (u !== '' && !u.startsWith('node:')) return cur
      const pid = parent.get(cur.id)
      cur = pid === undefined ? undefined : byId.get(pid)
    }
    return undefined
  }
  let total = 0
  let idle = 0
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0
    if (hits === 0) continue
    total += hits
    const fn = n.callFrame.functionName === '' ? '(anonymous)' : n.callFrame.functionName
    if (fn === '(idle)') { idle += hits; continue }
    const url = shortUrl(n.callFrame.url, root)
    const key = keyOf(n)
    byFn.set(key, (byFn.get(key) ?? 0) + hits)
    const app = fn.startsWith('(') ? undefined : appFrame(n)
    const ck = app === undefined ? (fn.startsWith('(') ? fn : `(node only) ${key}`) : keyOf(app)
    byCaller.set(ck, (byCaller.get(ck) ?? 0) + hits)
    const a = area(url, fn)
    byArea.set(a, (byArea.get(a) ?? 0) + hits)
  }
  const busy = total - idle
  const wallMs = (prof.endTime - prof.startTime) / 1000
  const intervalUs = total > 0 ? (prof.endTime - prof.startTime) / total : 0
  const rows = (m: Map<string, number>, n: number): ProfileRow[] =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([key, samples]) => ({
      key,
      samples,
      pct: busy > 0 ? Math.round((samples / busy) * 1000) / 10 : 0,
      ms: Math.round((samples * intervalUs) / 100) / 10,
    }))
  return { file, totalSamples: total, busySamples: busy, intervalUs: Math.round(intervalUs), wallMs: Math.round(wallMs), top: rows(byFn, topN), byCaller: rows(byCaller, 15), byArea: rows(byArea, 15) }
}

export function formatProfile(s: ProfileSummary): string {
  const lines: string[] = []
  lines.push(`CPU profile ${s.file}`)
  lines.push(`  ${s.busySamples} busy samples of ${s.totalSamples} (~${s.intervalUs} µs each, ${(s.wallMs / 1000).toFixed(1)} s wall); % of busy (non-idle) samples`)
  lines.push('  top self time by function:')
  for (const r of s.top) lines.push(`  ${r.pct.toFixed(1).padStart(5)}%  ${String(r.samples).padStart(6)}  ${r.key}`)
  lines.push('  self time charged to the nearest project/npm frame (node internals and natives folded into their caller):')
  for (const r of s.byCaller) lines.push(`  ${r.pct.toFixed(1).padStart(5)}%  ${String(r.samples).padStart(6)}  ${r.key}`)
  lines.push('  self time by area:')
  for (const r of s.byArea) lines.push(`  ${r.pct.toFixed(1).padStart(5)}%  ${String(r.samples).padStart(6)}  ${r.key}`)
  return lines.join('\n')
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: profile.ts <file.cpuprofile> [top=25]\n')
    process.exit(2)
  }
  process.stdout.write(`${formatProfile(summarizeProfile(file, Number(process.argv[3] ?? 25)))}\n`)
}
