import pg from 'pg'
import type { Logger } from 'pino'
import type { DatabaseHandle } from '../../../platform/db/client.js'
import * as crud from './crud.js'

export interface Listener {
  close(): Promise<void>
}

const RECONNECT_MAX_MS = 30_000

/**
 * A dedicated connection that LISTENs on the hub's channel and reconnects on its own with backoff;
 * until it is back, the hub's fallback poll keeps work moving, only slower. `onConnect` is called
 * after every (re)connect, for whatever committed while nobody listened.
 */
async function listenOnPostgres(
  pool: pg.Pool,
  onNotify: (payload: string) => void,
  onConnect: () => void,
  log: Logger,
): Promise<Listener> {
  let closed = false
  let current: pg.Client | undefined
  let connecting: Promise<void> | undefined
  let reconnectTimer: NodeJS.Timeout | undefined
  let delayMs = 500

  const connect = async (): Promise<void> => {
    const client = new pg.Client({ ...pool.options, application_name: 'modelplane-workflow-listener' })
    let lost = false
    const onLost = (err?: Error) => {
      if (lost) return
      lost = true
      if (current === client) current = undefined
      client.end().catch(() => undefined)
      if (closed) return
      log.warn({ err: err && { message: err.message }, retryInMs: delayMs }, 'workflow listener lost its connection')
      reconnectTimer = setTimeout(() => {
        connecting = connect()
      }, delayMs)
      reconnectTimer.unref()
      delayMs = Math.min(delayMs * 2, RECONNECT_MAX_MS)
    }
    client.on('notification', (message) => onNotify(message.payload ?? ''))
    client.on('error', onLost)
    client.on('end', () => onLost())
    try {
      await client.connect()
      await crud.listenForWorkflowEvents(client)
    } catch (err) {
      onLost(err as Error)
      return
    }
    if (closed) {
      lost = true
      await client.end().catch(() => undefined)
      return
    }
    current = client
    delayMs = 500
    onConnect()
  }

  connecting = connect()
  await connecting
  return {
    async close() {
      closed = true
      clearTimeout(reconnectTimer)
      await connecting
      const client = current
      current = undefined
      if (client) {
        client.removeAllListeners('end')
        await client.end().catch(() => undefined)
      }
    },
  }
}

export async function openListener(
  database: DatabaseHandle,
  onNotify: (payload: string) => void,
  onConnect: () => void,
  log: Logger,
): Promise<Listener> {
  if (database.pglite) {
    const unlisten = await crud.listenForWorkflowEventsOnPglite(database.pglite, onNotify)
    return { close: () => unlisten() }
  }
  if (database.pool) return listenOnPostgres(database.pool, onNotify, onConnect, log)
  return { close: async () => undefined }
}
