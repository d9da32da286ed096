import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** Raised when another live process holds the embedded database's folder. */
export class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DataDirLockedError'
  }
}

interface LockRecord {
  pid: number
  host: string
  startedAt: string
}

const LOCK_FILE = 'modelplane.lock'

/**
 * PGlite is one writer per folder: a second process opening the same folder would write the same
 * pages and corrupt the database. The lock is a file created exclusively (O_EXCL) before PGlite
 * opens anything; a lock left by a process that died (SIGKILL, power loss) is taken over once its
 * pid is gone from this host.
 */
export function lockDataDir(dir: string): { release(): void } {
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, LOCK_FILE)
  const mine: LockRecord = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() }
  const text = `${JSON.stringify(mine)}\n`
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, text, { flag: 'wx', mode: 0o600 })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
      const holder = readRecord(file)
      if (holder && isLive(holder)) {
        throw new DataDirLockedError(
          `DATA_DIR ${dir} is in use by another modelplane process (pid ${holder.pid} on ${holder.host}, ` +
            `since ${holder.startedAt}). Two processes on one embedded database would corrupt it: stop that ` +
            'process, give this one its own DATA_DIR, or run several replicas on DATABASE_URL.',
        )
      }
      // Left by a process that is gone: take it over (the retry is exclusive again, so two
      // processes racing for a stale lock cannot both win).
      fs.rmSync(file, { force: true })
    }
  }
  const onExit = () => release()
  process.once('exit', onExit)
  function release(): void {
    process.removeListener('exit', onExit)
    // Only our own lock: never a successor's after a takeover.
    if (readRecord(file)?.pid === process.pid) fs.rmSync(file, { force: true })
  }
  return { release }
}

function readRecord(file: string): LockRecord | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockRecord>
    return typeof parsed.pid === 'number' && typeof parsed.host === 'string'
      ? { pid: parsed.pid, host: parsed.host, startedAt: String(parsed.startedAt ?? '') }
      : undefined
  } catch {
    // Unreadable or half-written: a crashed writer's; treat as stale.
    return undefined
  }
}

/** A lock from another host (a shared volume) is never assumed dead: we cannot see its processes. */
function isLive(record: LockRecord): boolean {
  if (record.host !== os.hostname()) return true
  if (record.pid === process.pid) return true
  try {
    process.kill(record.pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
