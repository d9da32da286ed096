import { parentPort, workerData } from 'node:worker_threads'
import pino from 'pino'
import { openDatabase } from '../../../platform/db/client.js'
import { startTaskHub, type TaskHub } from './index.js'
import type { HubThreadData, HubThreadReply, HubThreadRequest } from './thread.js'

/**
 * The entry of the hub's worker thread (see thread.ts): opens a pool of its own on the same
 * PostgreSQL database, runs the hub, and answers the parent's quiesce and stop. Its log lines go to
 * the parent, which writes them through the app's logger (same destination, same redaction).
 */
const port = parentPort!
const data = workerData as HubThreadData

function send(message: HubThreadReply): void {
  port.postMessage(message)
}

const log = pino(
  { level: data.level, base: null, timestamp: false },
  { write: (line: string) => send({ type: 'log', line }) },
)

async function main(): Promise<void> {
  const database = await openDatabase({
    url: data.url,
    dataDir: '',
    poolMax: data.poolMax,
    log,
    applicationName: 'modelplane-workflow-hub',
  })
  let hub: TaskHub
  try {
    hub = await startTaskHub({
      database,
      log,
      name: data.name,
      tuning: data.tuning,
      token: data.token,
      ...(data.port ? { port: data.port } : {}),
    })
  } catch (err) {
    await database.close().catch(() => undefined)
    send({ type: 'failed', message: err instanceof Error ? err.message : String(err) })
    port.close()
    return
  }
  send({ type: 'started', port: hub.port })

  port.on('message', (request: HubThreadRequest) => {
    // In a worker, process.exit ends this thread only: what a fatal error in the hub would do.
    if (request.type === 'crash') process.exit(70)
    const work = request.type === 'quiesce' ? hub.quiesce() : hub.stop().then(() => database.close())
    work.then(
      () => {
        send({ type: 'done', id: request.id })
        // Stopped: nothing is left for this thread to do; closing the port lets it end.
        if (request.type === 'stop') port.close()
      },
      (err: unknown) => send({ type: 'done', id: request.id, error: err instanceof Error ? err.message : String(err) }),
    )
  })
}

await main()
