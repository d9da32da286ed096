import pg from 'pg'
import type { Logger } from 'pino'
import type { DatabaseHandle } from './client.js'

export interface Listener {
  close(): Promise<void>
}

export interface ListenOptions {
  /** The NOTIFY channel; notifications sent inside a transaction arrive only if it commits. */
  channel: string
  /** Names the connection (application_name) and the log lines. */
  name: string
  onNotify(payload: string): void
  /** After every (re)connect (on PGlite, once): for whatever committed while nobody listened. */
  onConnect?(): void
  /** PostgreSQL only, when the connection is lost: notifications may be missed until onConnect. */
  onDisconnect?(): void
  log: Logger
}

const RECONNECT_FIRST_MS = 500
const RECONNECT_MAX_MS = 30_000

/**
 * LISTENs on a channel of the process's database. On PostgreSQL that takes a dedicated connection
 * (a pooled one would be handed to other queries), which reconnects on its own with backoff;
 * callers keep a fallback poll for the time it is down. PGlite, one in-process connection, calls
 * back on commit the same way.
 */
export async function listen(database: DatabaseHandle, options: ListenOptions): Promise<Listener> {
  if (database.pglite) {
    const unlisten = await database.pglite.listen(options.channel, options.onNotify)
    options.onConnect?.()
    return { close: () => unlisten() }
  }
  if (database.pool) return listenOnPostgres(database.pool, options)
  return { close: async () => undefined }
}

async function listenOnPostgres(pool: pg.Pool, options: ListenOptions): Promise<Listener> {
  const { channel, name, log } = options
  let closed = false
  let current: pg.Client | undefined
  let connecting: Promise<void> | undefined
  let reconnectTimer: NodeJS.Timeout | undefined
  let delayMs = RECONNECT_FIRST_MS

  const connect = async (): Promise<void> => {
    const client = new pg.Client({ ...pool.options, application_name: `modelplane-${name}` })
    let lost = false
    const onLost = (err?: Error) => {
      if (lost) return
      lost = true
      if (current === client) current = undefined
      options.onDisconnect?.()
      client.end().catch(() => undefined)
      if (closed) return
      log.warn({ err: err && { message: err.message }, retryInMs: delayMs }, `${name} lost its connection`)
      reconnectTimer = setTimeout(() => {
        connecting = connect()
      }, delayMs)
      reconnectTimer.unref()
      delayMs = Math.min(delayMs * 2, RECONNECT_MAX_MS)
    }
    client.on('notification', (message) => options.onNotify(message.payload ?? ''))
    client.on('error', onLost)
    client.on('end', () => onLost())
    try {
      await client.connect()
      await client.query(`listen ${client.escapeIdentifier(channel)}`)
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
    delayMs = RECONNECT_FIRST_MS
    options.onConnect?.()
  }

  // The first attempt is awaited, so that what is published right after start-up is heard; its
  // failure is not fatal (connect retries on its own).
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
