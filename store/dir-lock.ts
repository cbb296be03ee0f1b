/**
 * One process per directory, for what cannot be shared: PGlite's data directory (two processes writing it corrupt
 * the database) and the execution-log spool (two writers replay and delete each other's segments).
 *
 * The lock is a symbolic link whose target is `<pid>:<start>` (start: the process's start time from /proc, where
 * there is one): created atomically (never seen half written), and it needs no data block, so it can be taken on a
 * full disk (the spool's leftover segments are still replayed).
 * A lock whose process is gone (crash, SIGKILL, a container restarted with the same volume) is stale and taken
 * over; a pid that was reused by another process is told apart by its start time. Released by `release()`.
 */
import { readFileSync } from 'node:fs'
import { readlink, symlink, unlink } from 'node:fs/promises'

export class DirLockedError extends Error {
  override name = 'DirLockedError'
}

interface Holder { pid: number; start?: string }

/** Lock files this process holds (a second open in the same process is refused too). */
const held = new Set<string>()

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 22 (starttime), counted after the command name, which may hold spaces and ends at the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function alive(h: Holder): boolean {
  if (h.pid === process.pid) return false // a previous life of this pid (container restart); our own locks are in `held`
  try {
    process.kill(h.pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const start = h.start === undefined ? undefined : startTime(h.pid)
  return start === undefined || start === h.start
}

async function readHolder(file: string): Promise<Holder | undefined> {
  try {
    const [pid, start] = (await readlink(file)).split(':')
    const h: Holder = { pid: Number(pid), ...(start ? { start } : {}) }
    return Number.isInteger(h.pid) && h.pid > 0 ? h : undefined
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { pid: 0 }
    return undefined
  }
}

/**
 * Takes the lock file `file` for `what` (named in the error); throws DirLockedError when a live process holds it.
 * Resolves with the release function (idempotent).
 */
export async function lockDir(file: string, what: string): Promise<() => Promise<void>> {
  if (held.has(file)) throw new DirLockedError(`${what} is already open in this process (${file})`)
  const me = `${process.pid}:${startTime(process.pid) ?? ''}`
  for (let attempt = 0; ; attempt++) {
    try {
      await symlink(me, file)
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    const h = await readHolder(file)
    if (attempt >= 2 || (h !== undefined && h.pid !== 0 && alive(h))) {
      throw new DirLockedError(
        `${what} is in use by another process (pid ${h?.pid ?? '?'}, lock file ${file}): one process per directory; ` +
          'give each instance its own MCP_DATA_DIR, or stop the other process first',
      )
    }
    // Stale (its process is gone) or unreadable: take it over.
    await unlink(file).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e })
  }
  held.add(file)
  let released = false
  return async () => {
    if (released) return
    released = true
    held.delete(file)
    const h = await readHolder(file)
    if (h?.pid === process.pid) await unlink(file).catch(() => {})
  }
}
