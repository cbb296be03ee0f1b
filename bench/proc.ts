/**
 * Per-process CPU time and RSS from /proc (Linux only).
 *
 *   cpuMicros(pid)  utime + stime of the process (all threads), in microseconds
 *   rssBytes(pid)   VmRSS of the process, in bytes
 *   ioSyscalls(pid) read/write-family system calls so far (/proc/<pid>/io syscr, syscw)
 *   treeCpuMicros(pid) CPU of a process and all its children, exited ones included (a database server)
 *   ProcSampler     CPU and syscalls before/after a run + RSS polled every 200 ms (peak), for
 *                   several processes
 */
import { execSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** Clock ticks per second (USER_HZ), read once. */
export const CLK_TCK: number = (() => {
  try {
    const n = Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim())
    return Number.isFinite(n) && n > 0 ? n : 100
  } catch {
    return 100
  }
})()

/** utime + stime of `pid` in microseconds (resolution 1/CLK_TCK s, i.e. 10 ms at 100 Hz). */
export function cpuMicros(pid: number): number {
  const rest = statFields(pid)
  const utime = Number(rest[14 - 3])
  const stime = Number(rest[15 - 3])
  return ((utime + stime) * 1e6) / CLK_TCK
}

/**
 * The fields of /proc/<pid>/stat from field 3 on (index i holds field i + 3). comm (field 2) may contain spaces
 * and ')': the fields after the LAST ')' start at field 3.
 */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * CPU time of `root` and of its children, in microseconds: its own utime + stime, what its exited children used
 * (cutime + cstime, counted once it reaped them) and what its live children used so far. The difference between
 * two readings is what the whole tree used in between, children that started or exited meanwhile included
 * (grandchildren only once their parent exits). For a PostgreSQL server: root is the postmaster, the children its
 * backends and background workers.
 */
export function treeCpuMicros(root: number): number {
  const f = statFields(root)
  let ticks = Number(f[14 - 3]) + Number(f[15 - 3]) + Number(f[16 - 3]) + Number(f[17 - 3])
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0)
    if (c < 48 || c > 57) continue
    try {
      const cf = statFields(Number(name))
      if (Number(cf[4 - 3]) === root) ticks += Number(cf[14 - 3]) + Number(cf[15 - 3])
    } catch { /* gone meanwhile */ }
  }
  return (ticks * 1e6) / CLK_TCK
}

/** The parent of `pid` (field 4 of /proc/<pid>/stat). */
export function parentPid(pid: number): number {
  return Number(statFields(pid)[4 - 3])
}

/** Resident set size of `pid` in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  return m === null ? 0 : Number(m[1]) * 1024
}

/**
 * Read- and write-family system calls made so far (/proc/<pid>/io: syscr, syscw). Socket
 * read/readv/write/writev count here (sendmsg/recvmsg do not); epoll does not. 0 if unreadable.
 */
export function ioSyscalls(pid: number): { reads: number; writes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8')
    return { reads: Number(/^syscr:\s+(\d+)/m.exec(io)?.[1] ?? 0), writes: Number(/^syscw:\s+(\d+)/m.exec(io)?.[1] ?? 0) }
  } catch {
    return { reads: 0, writes: 0 }
  }
}

export interface ProcUsage {
  /** CPU time used during the sampled window, µs */
  cpuMicros: number
  /** highest RSS seen during the window (polled), bytes */
  rssPeakBytes: number
  /** RSS at the end of the window, bytes */
  rssEndBytes: number
  /** read-/write-family system calls during the window */
  readSyscalls: number
  writeSyscalls: number
}

/**
 * Samples a set of processes over one measurement window: call start(), run the load, call stop().
 * RSS is polled every `pollMs` (default 200 ms) in between; the timer is unref'd.
 */
export class ProcSampler {
  private readonly pids: Map<string, number>
  private readonly pollMs: number
  private cpu0 = new Map<string, number>()
  private io0 = new Map<string, { reads: number; writes: number }>()
  private peak = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined

  constructor(pids: Record<string, number>, pollMs = 200) {
    this.pids = new Map(Object.entries(pids))
    this.pollMs = pollMs
  }

  start(): void {
    for (const [name, pid] of this.pids) {
      this.cpu0.set(name, cpuMicros(pid))
      this.io0.set(name, ioSyscalls(pid))
      this.peak.set(name, rssBytes(pid))
    }
    this.timer = setInterval(() => this.poll(), this.pollMs)
    this.timer.unref()
  }

  private poll(): void {
    for (const [name, pid] of this.pids) {
      try {
        const r = rssBytes(pid)
        if (r > (this.peak.get(name) ?? 0)) this.peak.set(name, r)
      } catch { /* process gone: the run will fail anyway */ }
    }
  }

  stop(): Record<string, ProcUsage> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.poll()
    const out: Record<string, ProcUsage> = {}
    for (const [name, pid] of this.pids) {
      const rssEnd = rssBytes(pid)
      const io = ioSyscalls(pid)
      const io0 = this.io0.get(name) ?? { reads: 0, writes: 0 }
      out[name] = {
        cpuMicros: cpuMicros(pid) - (this.cpu0.get(name) ?? 0),
        rssPeakBytes: Math.max(this.peak.get(name) ?? 0, rssEnd),
        rssEndBytes: rssEnd,
        readSyscalls: io.reads - io0.reads,
        writeSyscalls: io.writes - io0.writes,
      }
    }
    return out
  }
}
