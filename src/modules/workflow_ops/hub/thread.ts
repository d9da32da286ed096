import { randomBytes } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import pino, { type Logger } from 'pino'
import type { HubTuning, TaskHub } from './index.js'

/**
 * The hub on PostgreSQL runs in a worker thread of its own, with its own pool: its gRPC server,
 * protobuf coding and database driver are about half of the CPU a workflow costs, and on the main
 * thread they competed with the SDK's worker and with every HTTP request. A thread uses a second
 * core. (PGlite lives in the main thread's memory and cannot be shared, so there the hub stays
 * in-process: see runtime.ts.)
 *
 * If the thread dies, it is started again on the same port with the same token, so the SDK's
 * worker reconnects on its own; the state is in the database and leases make the restart safe.
 */
export interface TaskHubThreadOptions {
  /** The PostgreSQL connection string (the thread opens a pool of its own). */
  url: string
  /** Connections of the thread's pool. */
  poolMax: number
  name?: string
  tuning?: Partial<HubTuning>
  log: Logger
  /** After the thread was started again (the SDK's worker may need to connect anew). */
  onRestarted?: () => void
}

/** What the thread is started with (worker.ts reads it). */
export interface HubThreadData {
  url: string
  poolMax: number
  name: string
  tuning: Partial<HubTuning>
  token: string
  port?: number
  level: string
}

/** The hub as the main thread sees it. */
export interface TaskHubThread extends TaskHub {
  /** Ends the thread as a crash would (it is started again): for drills and tests. */
  crash(): Promise<void>
}

export type HubThreadRequest = { type: 'quiesce' | 'stop'; id: number } | { type: 'crash' }

export type HubThreadReply =
  | { type: 'started'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'log'; line: string }
  | { type: 'done'; id: number; error?: string }

const RESTART_FIRST_MS = 500
const RESTART_MAX_MS = 30_000
/** A thread that ran this long before dying starts again at once: it was not a crash loop. */
const HEALTHY_AFTER_MS = 60_000
const EXIT_TIMEOUT_MS = 5_000

const FROM_SOURCE = import.meta.url.endsWith('.ts')

/**
 * From dist/ the thread runs worker.js. From source (tests, `npm run dev`, benchmarks) Node cannot
 * load TypeScript by itself, so the thread registers tsx (a dev dependency) before importing worker.ts.
 */
function newWorker(data: HubThreadData): Worker {
  const entry = new URL(FROM_SOURCE ? './worker.ts' : './worker.js', import.meta.url)
  if (!FROM_SOURCE) return new Worker(entry, { workerData: data })
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}) })`
  return new Worker(boot, { eval: true, workerData: data })
}

interface Thread {
  worker: Worker
  port: number
  startedAt: number
  alive: boolean
  exited: Promise<void>
}

export async function startTaskHubThread(options: TaskHubThreadOptions): Promise<TaskHubThread> {
  const name = options.name ?? 'default'
  const token = randomBytes(24).toString('base64url')
  const log = options.log.child({ component: 'workflow-hub', hub: name })
  const calls = new Map<number, (error?: string) => void>()
  let nextCall = 1
  let state: 'running' | 'stopping' = 'running'
  let restarts = 0
  let restartTimer: NodeJS.Timeout | undefined

  /** The thread's log lines, written through the app's logger. */
  function relog(line: string): void {
    let entry: Record<string, unknown>
    try {
      entry = JSON.parse(line) as Record<string, unknown>
    } catch {
      return
    }
    const { level, msg, ...fields } = entry
    const label = pino.levels.labels[Number(level)] ?? 'info'
    const write = options.log[label as pino.Level]
    if (typeof write === 'function') write.call(options.log, fields, typeof msg === 'string' ? msg : '')
  }

  function spawn(port?: number): Promise<Thread> {
    return new Promise((resolve, reject) => {
      const worker = newWorker({
        url: options.url,
        poolMax: options.poolMax,
        name,
        tuning: options.tuning ?? {},
        token,
        ...(port ? { port } : {}),
        level: options.log.level,
      })
      let thread: Thread | undefined
      let failure: string | undefined
      let exited!: () => void
      const exitedPromise = new Promise<void>((done) => (exited = done))
      worker.on('message', (message: HubThreadReply) => {
        switch (message.type) {
          case 'log':
            return relog(message.line)
          case 'started':
            thread = { worker, port: message.port, startedAt: Date.now(), alive: true, exited: exitedPromise }
            return resolve(thread)
          case 'failed':
            failure = message.message
            return
          case 'done': {
            const settle = calls.get(message.id)
            calls.delete(message.id)
            return settle?.(message.error)
          }
        }
      })
      worker.on('error', (err) => {
        failure ??= err.message
        log.error({ err }, 'workflow hub thread failed')
      })
      worker.on('exit', (code) => {
        exited()
        if (!thread) return reject(new Error(`the workflow hub thread did not start: ${failure ?? `exit code ${code}`}`))
        thread.alive = false
        // Whatever was asked of it is over: a quiesce or stop of a thread that ended has nothing left to wait for.
        for (const settle of calls.values()) settle()
        calls.clear()
        if (thread === current && state === 'running') scheduleRestart(thread, code)
      })
    })
  }

  function scheduleRestart(dead: Thread, code: number): void {
    if (Date.now() - dead.startedAt > HEALTHY_AFTER_MS) restarts = 0
    const delay = restarts === 0 ? 0 : Math.min(RESTART_FIRST_MS * 2 ** (restarts - 1), RESTART_MAX_MS)
    restarts++
    log.error({ code, restartInMs: delay }, 'workflow hub thread ended unexpectedly; starting it again')
    restartTimer = setTimeout(() => {
      restartTimer = undefined
      if (state !== 'running') return
      spawn(dead.port).then(
        (thread) => {
          current = thread
          log.info({ port: thread.port }, 'workflow hub thread started again')
          options.onRestarted?.()
        },
        (err: unknown) => {
          log.error({ err }, 'the workflow hub thread could not start again')
          if (state === 'running') scheduleRestart(dead, -1)
        },
      )
    }, delay)
  }

  function ask(type: 'quiesce' | 'stop'): Promise<void> {
    const thread = current
    if (!thread.alive) return Promise.resolve()
    const id = nextCall++
    return new Promise((resolve, reject) => {
      calls.set(id, (error) => (error ? reject(new Error(error)) : resolve()))
      thread.worker.postMessage({ type, id } satisfies HubThreadRequest)
    })
  }

  let current = await spawn()

  let quiesced: Promise<void> | undefined
  let stopped: Promise<void> | undefined

  /** From here on a thread that dies stays dead: the hub is being stopped. */
  function quiesce(): Promise<void> {
    state = 'stopping'
    clearTimeout(restartTimer)
    return ask('quiesce')
  }

  async function shutDown(): Promise<void> {
    await (quiesced ??= quiesce())
    const thread = current
    await ask('stop')
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), EXIT_TIMEOUT_MS).unref())
    if ((await Promise.race([thread.exited, timeout])) === 'timeout') {
      log.warn('the workflow hub thread did not end after stopping; terminating it')
      await thread.worker.terminate()
    }
  }

  return {
    name,
    host: '127.0.0.1',
    port: current.port,
    token,
    quiesce: () => (quiesced ??= quiesce()),
    stop: () => (stopped ??= shutDown()),
    // The thread ends itself, as a fatal error inside it would. worker.terminate() from outside
    // once took the whole test process down with it (a loader-hook thread of tsx's was mid-work).
    crash: async () => {
      const thread = current
      thread.worker.postMessage({ type: 'crash' } satisfies HubThreadRequest)
      await thread.exited
    },
  }
}
