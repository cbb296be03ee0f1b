/**
 * bench/proc.ts treeCpuMicros: the CPU of a process tree between two readings, children that ran and exited in
 * between included (how the bench charges a database server's backends to the requests that made them work).
 */
import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { CLK_TCK, cpuMicros, parentPid, treeCpuMicros } from '../../bench/proc.ts'

/** A child that burns about `ms` of CPU and exits; resolves once it was reaped. */
function burn(ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', `const end = Date.now() + ${ms}; while (Date.now() < end);`], { stdio: 'ignore' })
    child.once('error', reject)
    child.once('exit', () => resolve(child.pid ?? -1))
  })
}

describe('bench/proc.ts treeCpuMicros', () => {
  it('counts the CPU of a child that started and exited between two readings', async () => {
    const before = treeCpuMicros(process.pid)
    const own0 = cpuMicros(process.pid)
    await burn(300)
    const tree = treeCpuMicros(process.pid) - before
    const own = cpuMicros(process.pid) - own0
    // The child spun for 300 ms of wall time on a machine that may be busy: at least a third of it on a CPU.
    expect(tree - own).toBeGreaterThanOrEqual(100_000 - 1e6 / CLK_TCK)
  }, 10_000)

  it('parentPid reads the parent from /proc', () => {
    expect(parentPid(process.pid)).toBe(process.ppid)
  })
})
