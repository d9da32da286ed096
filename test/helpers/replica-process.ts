import { TEST_DATABASE_URL, TEST_REDIS_URL, TEST_VAULT_KEYS } from './env.js'
import { tempDir } from './app.js'
import { freePort, type Started, startCommand } from './process.js'
import { waitFor } from './wait.js'

/**
 * The API as a process of its own (test/helpers/replica.ts, built as src/server.ts builds it) on
 * the run's PostgreSQL and Redis, for tests that run several, stop them or kill them. `env` adds
 * to (or overrides) what every such process gets; REPLICA_HUB names its workflow hub.
 */
export interface ReplicaProcess {
  name: string
  base: string
  pid: number
  process: Started
}

export async function startReplicaProcess(name: string, env: Record<string, string>): Promise<ReplicaProcess> {
  const port = await freePort()
  const started = startCommand(process.execPath, ['--import', 'tsx', 'test/helpers/replica.ts'], {
    PORT: String(port),
    LOG_LEVEL: 'warn',
    DATA_DIR: tempDir(`modelplane-${name}-`),
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_POOL_MAX: '5',
    MIGRATE_ON_START: 'false',
    REDIS_URL: TEST_REDIS_URL,
    VAULT_KEYS: TEST_VAULT_KEYS,
    WORKFLOW_HUB_THREAD: 'false',
    WORKFLOW_RETENTION_DAYS: '0',
    RATE_LIMIT_MAX: '0',
    LOGIN_RATE_LIMIT_MAX: '0',
    ...env,
  })
  await waitFor(
    () => started.output().includes('replica ready') || started.child.exitCode !== null,
    60_000,
    `replica ${name} did not start`,
  )
  if (started.child.exitCode !== null) throw new Error(`replica ${name} exited: ${started.output().slice(-2000)}`)
  return { name, base: `http://127.0.0.1:${port}`, pid: started.child.pid!, process: started }
}

/** SIGTERM lets the replica finish and hand back what it holds; SIGKILL is a crash. */
export async function stopReplicaProcess(replica: ReplicaProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!replica) return
  const child = replica.process.child
  if (child.exitCode === null && child.signalCode === null) {
    child.kill(signal)
    await replica.process.exited
  }
}
