/**
 * The processes a benchmark script starts (bench/ab.ts, bench/icount.ts): tracked until they exit, and ended by their
 * PIDs when the script exits or is interrupted. And a wait for a server to answer.
 */
import { spawn, type ChildProcess } from 'node:child_process'

const children = new Set<ChildProcess>()
let hooked = false

/** Ends every process started here that is still running (SIGKILL, by its PID). */
export function endChildren(): void {
  for (const c of children) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL')
}

/** Starts `command args` in `cwd` with `env` over this process's environment; stdout ignored, stderr shown. */
export function startChild(command: string, args: string[], cwd: string, env: Record<string, string>): ChildProcess {
  if (!hooked) {
    hooked = true
    process.on('exit', endChildren)
    process.on('SIGINT', () => { endChildren(); process.exit(130) })
    process.on('SIGTERM', () => { endChildren(); process.exit(143) })
  }
  const c = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  children.add(c)
  c.once('exit', () => children.delete(c))
  return c
}

/** Resolves once `url` answers with a status below 500; throws after `timeoutMs`. */
export async function whenReady(url: string, headers: Record<string, string> = {}, timeoutMs = 30_000, intervalMs = 100): Promise<void> {
  for (const end = Date.now() + timeoutMs; Date.now() < end;) {
    try { if ((await fetch(url, { headers })).status < 500) return } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
  throw new Error(`not ready: ${url}`)
}
