import { Worker } from 'node:worker_threads'

/**
 * The host side of the Python checker: one worker thread holding pyodide, started on first use
 * and kept warm, judging one file at a time.
 *
 * What protects the process:
 * - the parse runs off the main thread (a 100 KB file costs ~100 ms of CPU);
 * - a file that runs past its time is interrupted (KeyboardInterrupt through pyodide's interrupt
 *   buffer) and, if the thread does not answer within a grace period, the thread is terminated;
 * - the thread has a large stack (CPython's parser accepts some expressions nested 50,000 deep,
 *   which overflow the default 4 MB stack) and a bounded JavaScript heap; when the interpreter
 *   dies all the same (pyodide calls that a fatal error), the file is reported as too complex and
 *   a fresh thread serves the next one;
 * - the WebAssembly memory only grows: past a cap the thread is replaced after its answer;
 * - requests queue one after another; past a queue limit, or after waiting too long, the caller
 *   is told to come back.
 */

/** What the checker is asked about one file (the Python side reads these names). */
export interface CheckerFile {
  path: string
  source: string
  /** The entry file must create `app = FastAPI(...)` at module level. */
  entry: boolean
  allowed: readonly string[]
  /** Top-level module names of the user's own files: importing them is always allowed. */
  local: readonly string[]
}

export interface RawProblem {
  line: number
  column: number
  rule: string
  message: string
}

export interface CheckerData {
  interrupt: SharedArrayBuffer
}

export type CheckerRequest = { type: 'check'; id: number; file: CheckerFile } | { type: 'exit' }

export type CheckerReply =
  | { type: 'ready'; stdlib: string[] }
  | { type: 'result'; id: number; problems: RawProblem[]; heapBytes: number }
  | { type: 'failed'; id: number; reason: 'fatal' | 'interrupted' | 'error'; message: string }
  | { type: 'start-failed'; message: string }

export type CheckOutcome =
  | { kind: 'problems'; problems: RawProblem[] }
  /** The interpreter gave up on the file (nesting past what the parser's stack holds). */
  | { kind: 'too-complex' }
  | { kind: 'timeout' }

/** An outcome and the time the thread spent on the file: waiting in the queue is not counted. */
export type CheckResult = CheckOutcome & { checkedMs: number }

export interface CheckerOptions {
  /** How long starting pyodide may take (about 2 s on an idle core). */
  startTimeoutMs?: number
  /** After an interrupt, how long the thread has to answer before it is terminated. */
  interruptGraceMs?: number
  /** The WebAssembly memory past which the thread is replaced. */
  maxHeapBytes?: number
  /** Files waiting for the thread past which `check` refuses at once. */
  maxQueued?: number
  /** How long a file may wait for the thread before the caller is told to come back instead. */
  maxQueueWaitMs?: number
  /** The thread's JavaScript heap (the parser's own memory is WebAssembly memory, capped above). */
  maxOldGenerationSizeMb?: number
  stackSizeMb?: number
}

export interface PythonChecker {
  /** Top-level module names of the standard library of the checker's Python. */
  stdlib(): Promise<ReadonlySet<string>>
  /** Queued behind the files before it; `timeoutMs` runs from when the thread takes the file. */
  check(file: CheckerFile, timeoutMs: number): Promise<CheckResult>
  /** Starts the thread now instead of on first use. */
  warm(): Promise<void>
  close(): Promise<void>
}

export class CheckerBusyError extends Error {
  constructor() {
    super('the Python checker has too many files waiting')
  }
}

export class CheckerUnavailableError extends Error {}

const SIGINT = 2
const FROM_SOURCE = import.meta.url.endsWith('.ts')

/**
 * From dist/ the thread runs checker-worker.js. From source (tests, `npm run dev`) Node cannot load
 * TypeScript itself, so the thread registers tsx first (the same way the workflow hub's thread does).
 */
function newWorker(data: CheckerData, limits: { stackSizeMb: number; maxOldGenerationSizeMb: number }): Worker {
  const entry = new URL(FROM_SOURCE ? './checker-worker.ts' : './checker-worker.js', import.meta.url)
  const options = { workerData: data, resourceLimits: limits }
  if (!FROM_SOURCE) return new Worker(entry, options)
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}) })`
  return new Worker(boot, { ...options, eval: true })
}

interface Thread {
  worker: Worker
  interrupt: Uint8Array
  stdlib: ReadonlySet<string>
  /** Settles the request in flight, if any. */
  pending?: { id: number; settle: (reply: CheckerReply | 'exited') => void }
  exited: Promise<void>
  alive: boolean
}

export function createPythonChecker(options: CheckerOptions = {}): PythonChecker {
  const startTimeoutMs = options.startTimeoutMs ?? 60_000
  const interruptGraceMs = options.interruptGraceMs ?? 2_000
  const maxHeapBytes = options.maxHeapBytes ?? 768 * 1024 * 1024
  const maxQueued = options.maxQueued ?? 200
  const maxQueueWaitMs = options.maxQueueWaitMs ?? 20_000
  const limits = { stackSizeMb: options.stackSizeMb ?? 64, maxOldGenerationSizeMb: options.maxOldGenerationSizeMb ?? 256 }

  let starting: Promise<Thread> | undefined
  let closed = false
  let nextId = 1
  let queued = 0
  let tail: Promise<unknown> = Promise.resolve()

  function start(): Promise<Thread> {
    return new Promise<Thread>((resolve, reject) => {
      const shared = new SharedArrayBuffer(1)
      const worker = newWorker({ interrupt: shared }, limits)
      worker.unref()
      let thread: Thread | undefined
      let exited!: () => void
      const exitedPromise = new Promise<void>((done) => (exited = done))
      const timer = setTimeout(() => {
        reject(new CheckerUnavailableError(`the Python checker did not start within ${startTimeoutMs} ms`))
        void worker.terminate()
      }, startTimeoutMs)

      worker.on('message', (reply: CheckerReply) => {
        if (reply.type === 'ready') {
          clearTimeout(timer)
          thread = { worker, interrupt: new Uint8Array(shared), stdlib: new Set(reply.stdlib), exited: exitedPromise, alive: true }
          return resolve(thread)
        }
        if (reply.type === 'start-failed') {
          clearTimeout(timer)
          return reject(new CheckerUnavailableError(`the Python checker could not start: ${reply.message}`))
        }
        const pending = thread?.pending
        if (pending && 'id' in reply && reply.id === pending.id) {
          thread!.pending = undefined
          pending.settle(reply)
        }
      })
      // An 'error' is followed by 'exit', which settles what is pending.
      let failure = ''
      worker.on('error', (err) => (failure ||= err.message))
      worker.on('exit', () => {
        clearTimeout(timer)
        exited()
        if (!thread) return reject(new CheckerUnavailableError(`the Python checker ended while starting: ${failure || 'no error given'}`))
        thread.alive = false
        const pending = thread.pending
        thread.pending = undefined
        pending?.settle('exited')
      })
    })
  }

  async function thread(): Promise<Thread> {
    if (closed) throw new CheckerUnavailableError('the Python checker was closed')
    const attempt = starting
    const current = attempt ? await attempt.catch(() => undefined) : undefined
    if (current?.alive) return current
    if (starting === attempt) {
      const next = start()
      starting = next
      // A failed start is not kept: the next request tries again.
      next.catch(() => {
        if (starting === next) starting = undefined
      })
    }
    return starting!
  }

  /** Replaces the thread after this answer; the next request starts a new one. */
  function retire(current: Thread): void {
    if (starting && current.alive) {
      current.alive = false
      current.worker.postMessage({ type: 'exit' } satisfies CheckerRequest)
    }
  }

  async function run(file: CheckerFile, timeoutMs: number): Promise<CheckResult> {
    const current = await thread()
    const startedAt = performance.now()
    const outcome = await judge(current, file, timeoutMs)
    return { ...outcome, checkedMs: performance.now() - startedAt }
  }

  async function judge(current: Thread, file: CheckerFile, timeoutMs: number): Promise<CheckOutcome> {
    const id = nextId++
    const reply = await new Promise<CheckerReply | 'exited' | 'stuck'>((resolve) => {
      let grace: NodeJS.Timeout | undefined
      const deadline = setTimeout(() => {
        current.interrupt[0] = SIGINT
        grace = setTimeout(() => {
          current.pending = undefined
          current.alive = false
          void current.worker.terminate()
          resolve('stuck')
        }, interruptGraceMs)
      }, timeoutMs)
      current.pending = {
        id,
        settle: (r) => {
          clearTimeout(deadline)
          clearTimeout(grace)
          resolve(r)
        },
      }
      current.worker.postMessage({ type: 'check', id, file } satisfies CheckerRequest)
    })

    if (reply === 'stuck') return { kind: 'timeout' }
    // The thread died under this file (out of memory, or a fatal error before it could say so).
    if (reply === 'exited') return { kind: 'too-complex' }
    if (reply.type === 'result') {
      if (reply.heapBytes > maxHeapBytes) retire(current)
      return { kind: 'problems', problems: reply.problems }
    }
    if (reply.type === 'failed') {
      if (reply.reason === 'interrupted') return { kind: 'timeout' }
      if (reply.reason === 'fatal') {
        current.alive = false
        return { kind: 'too-complex' }
      }
      if (/RecursionError|MemoryError/.test(reply.message)) return { kind: 'too-complex' }
      throw new Error(`the Python checker failed on ${file.path}: ${reply.message}`)
    }
    throw new Error(`unexpected answer from the Python checker: ${reply.type}`)
  }

  return {
    async stdlib() {
      return (await thread()).stdlib
    },

    check(file, timeoutMs) {
      if (queued >= maxQueued) return Promise.reject(new CheckerBusyError())
      queued++
      // A request is not held open for long behind others: past the wait it is told to come back,
      // and its file is skipped when its turn comes.
      let gaveUp = false
      let timer: NodeJS.Timeout | undefined
      const waited = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          gaveUp = true
          reject(new CheckerBusyError())
        }, maxQueueWaitMs)
      })
      const result = tail.then(() => {
        clearTimeout(timer)
        if (gaveUp) throw new CheckerBusyError()
        return run(file, timeoutMs)
      })
      tail = result.catch(() => undefined).finally(() => queued--)
      return Promise.race([result, waited])
    },

    async warm() {
      await thread()
    },

    async close() {
      closed = true
      const current = await starting?.catch(() => undefined)
      starting = undefined
      if (!current?.alive) return
      current.alive = false
      current.worker.postMessage({ type: 'exit' } satisfies CheckerRequest)
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5_000).unref())
      if ((await Promise.race([current.exited, timeout])) === 'timeout') await current.worker.terminate()
    },
  }
}
