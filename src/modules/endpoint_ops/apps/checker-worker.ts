import { createRequire } from 'node:module'
import path from 'node:path'
import { parentPort, workerData } from 'node:worker_threads'
import { loadPyodide } from 'pyodide'
import { CHECKER_PY } from './checker-py.js'
import type { CheckerData, CheckerReply, CheckerRequest } from './checker-thread.js'

/**
 * The thread that holds CPython (pyodide) and judges one file per request. Parsing a 100 KB file
 * takes about a tenth of a second, which must not happen on the thread that answers HTTP.
 *
 * Everything comes from the pyodide package on disk (the runtime and the standard library zip);
 * no package is ever loaded, so nothing is fetched from the network.
 */
const port = parentPort!
const data = workerData as CheckerData
const interrupt = new Uint8Array(data.interrupt)

function send(reply: CheckerReply): void {
  port.postMessage(reply)
}

/** Bytes of the WebAssembly memory: it grows and never shrinks, so the host recycles a large thread. */
function heapBytes(py: object): number {
  const heap = (py as { _module?: { HEAPU8?: Uint8Array } })._module?.HEAPU8
  return heap?.byteLength ?? 0
}

function isFatal(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { pyodide_fatal_error?: boolean }).pyodide_fatal_error === true
}

async function main(): Promise<void> {
  // Named explicitly: pyodide guesses its folder from a stack trace, which fails in a thread started from text.
  const indexURL = path.dirname(createRequire(import.meta.url).resolve('pyodide/package.json')) + path.sep
  const py = await loadPyodide({ indexURL, stdout: () => {}, stderr: () => {}, jsglobals: {}, env: { HOME: '/tmp' } })
  py.setInterruptBuffer(interrupt)
  py.runPython(CHECKER_PY)
  const check = py.globals.get('check') as (json: string) => string
  const stdlib = JSON.parse((py.globals.get('stdlib_modules') as () => string)()) as string[]
  send({ type: 'ready', stdlib })

  port.on('message', (request: CheckerRequest) => {
    if (request.type === 'exit') process.exit(0)
    try {
      const problems = JSON.parse(check(JSON.stringify(request.file)))
      send({ type: 'result', id: request.id, problems, heapBytes: heapBytes(py) })
    } catch (err) {
      if (isFatal(err)) {
        // The interpreter cannot be used again (a stack overflow inside the parser, say): report
        // and end; the host starts a new thread for the next file.
        send({ type: 'failed', id: request.id, reason: 'fatal', message: String((err as Error).message).split('\n')[0] ?? '' })
        process.exit(1)
      }
      const message = err instanceof Error ? err.message : String(err)
      const reason = /KeyboardInterrupt/.test(message) ? 'interrupted' : 'error'
      send({ type: 'failed', id: request.id, reason, message: message.split('\n').filter(Boolean).at(-1) ?? '' })
    } finally {
      interrupt[0] = 0
    }
  })
}

main().catch((err: unknown) => {
  send({ type: 'start-failed', message: err instanceof Error ? err.message : String(err) })
  process.exit(1)
})
