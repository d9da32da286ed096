import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { InstanceStatus } from '../tables.js'
import { type Raw, statement } from './sql.js'

/**
 * How the hubs on one database tell each other of changes (LISTEN/NOTIFY on WORKFLOW_CHANNEL):
 * - `w:<origin>:<hub>` — work may be due: dispatchers of that hub claim at once instead of at
 *   their next poll;
 * - `i:<status or empty>:<origin>:<hub>/<instance>` — that instance changed (WaitForInstance*
 *   callers in other processes read it again, or not at all when the status cannot be final).
 *
 * `origin` is one hub in one process: a hub ignores its own notifications, having already acted on
 * the change when it committed it.
 *
 * Notifications are sent after the change commits, in batches, never inside the hot statements.
 * PostgreSQL serialises every committing transaction that has notified (a database-wide lock, held
 * through the commit's WAL flush), which made one in every hot transaction the hub's throughput
 * limit: a batch costs one short transaction for many changes, committed without waiting for the
 * flush (it writes nothing to keep). If the process dies between the commit and the batch, the
 * others learn of the change from their polls instead.
 */
export const WORKFLOW_CHANNEL = 'modelplane_workflows'

const NOTIFY = statement(
  'notify_many',
  `with quick as (select set_config('synchronous_commit', 'off', true) as setting)
   select pg_notify('${WORKFLOW_CHANNEL}', p) from quick, unnest($1::text[]) as p`,
)

export type Notification =
  | { kind: 'work' }
  | { kind: 'changed'; instanceId: string; status: InstanceStatus | undefined }

export interface Notifier {
  /** This hub's origin tag. */
  readonly origin: string
  /** Work was committed that another process may take. */
  work(): void
  /** An instance's status changed (`''`: changed, new status not known here). */
  changed(instanceId: string, status: InstanceStatus | ''): void
  /** What a notification means to this hub: undefined for its own, another hub's, or an unknown one. */
  parse(payload: string): Notification | undefined
  /** Resolves when everything queued so far has been sent (or failed to). */
  flushed(): Promise<void>
}

export function createNotifier(options: { raw: Raw; hub: string; log: Logger }): Notifier {
  const { raw, hub, log } = options
  const origin = randomBytes(6).toString('base64url')
  const workPayload = `w:${origin}:${hub}`
  const pending = new Set<string>()
  let sending: Promise<void> | undefined

  function queue(payload: string): void {
    pending.add(payload)
    sending ??= send().finally(() => {
      sending = undefined
    })
  }

  /** One statement per batch; whatever arrives while it runs goes in the next. */
  async function send(): Promise<void> {
    while (pending.size > 0) {
      const payloads = [...pending]
      pending.clear()
      try {
        await raw.query(NOTIFY, [payloads])
      } catch (err) {
        log.warn({ err, count: payloads.length }, 'workflow notifications not sent; other processes will poll')
      }
    }
  }

  function parse(payload: string): Notification | undefined {
    const kind = payload.slice(0, 2)
    if (kind === 'w:') {
      const colon = payload.indexOf(':', 2)
      if (colon < 0 || payload.slice(2, colon) === origin || payload.slice(colon + 1) !== hub) return undefined
      return { kind: 'work' }
    }
    if (kind !== 'i:') return undefined
    const statusEnd = payload.indexOf(':', 2)
    const originEnd = statusEnd < 0 ? -1 : payload.indexOf(':', statusEnd + 1)
    if (originEnd < 0 || payload.slice(statusEnd + 1, originEnd) === origin) return undefined
    const target = payload.slice(originEnd + 1)
    if (!target.startsWith(`${hub}/`)) return undefined
    const status = payload.slice(2, statusEnd)
    return {
      kind: 'changed',
      instanceId: target.slice(hub.length + 1),
      status: status === '' ? undefined : (status as InstanceStatus),
    }
  }

  return {
    origin,
    work: () => queue(workPayload),
    changed: (instanceId, status) => queue(`i:${status}:${origin}:${hub}/${instanceId}`),
    parse,
    flushed: () => sending ?? Promise.resolve(),
  }
}
