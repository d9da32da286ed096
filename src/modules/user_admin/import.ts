import { randomUUID } from 'node:crypto'
import { json } from 'node:stream/consumers'
import type { Logger } from 'pino'
import type { Principal } from '../../platform/auth/principal.js'
import type { BlobStore } from '../../platform/blob/types.js'
import { type Database, type Executor, transaction } from '../../platform/db/client.js'
import { AppError, NotFoundError } from '../../platform/errors.js'
import { pageRequest, pageResult } from '../../platform/http/pagination.js'
import type { Ranked } from '../auth/rank.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import * as crud from './crud.js'
import { type ImportRowError, type ImportUser, isRowError, type PreparedRow, prepareRows } from './import-rows.js'

export const USER_IMPORT_WORKFLOW = 'user_admin.importUsers'
export const USER_IMPORT_RESOURCE = 'user_import'
/** Rows per batch: one activity, one transaction, one multi-row insert each. */
export const IMPORT_BATCH_SIZE = 1_000
/** Refused rows the run's result lists in full; the rest are paged from GET /ai/admin/users/import/{id}/errors. */
export const IMPORT_RESULT_ERRORS = 100

/** The workflow's input: a reference to the staged rows, never the rows themselves. */
export interface ImportRef {
  importId: string
  tenantId: string
  rows: number
  batches: number
  /** The importer's rank when the import was accepted: rows above it are refused. */
  importer?: Ranked
  /** Runs started before `importer` existed: whether the importer could grant super_admin. */
  maySuperAdmin?: boolean
}

/** The importer of a run; a run from before `importer` was recorded keeps the rule it started with. */
function importerOf(ref: ImportRef): Ranked {
  return ref.importer ?? { role: ref.maySuperAdmin ? 'super_admin' : 'admin', isSuperuser: false }
}

export interface ImportResult {
  importId: string
  rows: number
  created: number
  failed: number
  /** Refused rows per error code. */
  failedByCode: Record<string, number>
  /** The first IMPORT_RESULT_ERRORS refused rows, in row order. */
  errors: ImportRowError[]
  /** More rows were refused than `errors` lists: page through `errorReport` for all of them. */
  errorsTruncated: boolean
  errorReport: string
}

export interface UserImportDeps {
  db: Database
  blob: Pick<BlobStore, 'put' | 'get' | 'delete'>
  log: Logger
  mode: 'embedded' | 'keycloak'
  workflows: Pick<WorkflowService, 'start' | 'get'>
}

const stagedRowsKey = (ref: Pick<ImportRef, 'tenantId' | 'importId'>) => `user-imports/${ref.tenantId}/${ref.importId}/rows.json`
const preparedBatchKey = (ref: Pick<ImportRef, 'tenantId' | 'importId'>, batch: number) =>
  `user-imports/${ref.tenantId}/${ref.importId}/batch-${String(batch).padStart(6, '0')}.json`

/**
 * An import grows a tenant faster than autovacuum notices (it looks once a minute). Plans made on
 * the old statistics take the tenant for a few hundred users: the duplicate check of each batch
 * then hashed all of the tenant's users instead of probing the email index (a second import of
 * 100,000 rows took twice as long as the first). So the users table is analysed after batches 1,
 * 2, 4, 8, … of an import: at most twice the size the planner last saw, seven times in 100 batches.
 */
function refreshesStatistics(batch: number): boolean {
  const done = batch + 1
  return (done & (done - 1)) === 0
}

export const errorReportPath = (workflowId: string) => `/ai/admin/users/import/${workflowId}/errors`

/**
 * Bulk user import. The request stages the rows once as a blob and starts a workflow that carries
 * only a reference: a first activity checks every row and writes the batches, one activity per
 * batch inserts its valid rows with one statement and records the outcome in the batch ledger in
 * the same transaction (so a batch that runs again inserts nothing and answers the same outcome),
 * and a last one totals the ledger into the run's result and deletes the staged files.
 */
export function createUserImport(deps: UserImportDeps) {
  const { db, blob, log, mode, workflows } = deps

  async function stage(tenantId: string, rows: readonly unknown[], importer: Ranked): Promise<ImportRef> {
    const ref: ImportRef = {
      importId: randomUUID(),
      tenantId,
      rows: rows.length,
      batches: Math.ceil(rows.length / IMPORT_BATCH_SIZE),
      importer: { role: importer.role, isSuperuser: importer.isSuperuser },
    }
    await blob.put(stagedRowsKey(ref), JSON.stringify(rows), { contentType: 'application/json' })
    return ref
  }

  /** The ledger totalled into the run's bounded result: counts, the first refused rows, the report's path. */
  async function totals(ref: ImportRef, workflowId: string): Promise<ImportResult> {
    const { created, failedByCode } = await crud.importTotals(db, ref.importId)
    const failed = Object.values(failedByCode).reduce((sum, n) => sum + n, 0)
    const errors = await crud.listImportErrors(db, ref.importId, { limit: IMPORT_RESULT_ERRORS, offset: 0 })
    return {
      importId: ref.importId,
      rows: ref.rows,
      created,
      failed,
      failedByCode,
      errors,
      errorsTruncated: failed > errors.length,
      errorReport: errorReportPath(workflowId),
    }
  }

  async function discardStaged(ref: ImportRef): Promise<void> {
    const keys = [stagedRowsKey(ref)]
    for (let batch = 0; batch < ref.batches; batch++) keys.push(preparedBatchKey(ref, batch))
    for (const key of keys) await blob.delete(key)
  }

  async function readJson<T>(key: string): Promise<T> {
    return (await json(await blob.get(key))) as T
  }

  return {
    /**
     * Stages the rows and starts the import; answers its workflow id. With an idempotency key seen
     * before, answers the first import's run and drops what it just staged.
     */
    async accept(principal: Principal, rows: readonly unknown[], idempotencyKey?: string): Promise<{ workflowId: string; rows: number }> {
      if (mode === 'keycloak') {
        throw new AppError(
          'IMPORT_UNAVAILABLE',
          409,
          'bulk import is not available when users live in Keycloak: import them into the realm with Keycloak\'s own tools; they appear here on first sign-in',
        )
      }
      const ref = await stage(principal.tenantId, rows, principal)
      let started: { workflowId: string; deduplicated: boolean }
      try {
        started = await workflows.start({
          type: USER_IMPORT_WORKFLOW,
          tenantId: principal.tenantId,
          resource: { kind: USER_IMPORT_RESOURCE, id: ref.importId },
          startedBy: principal.id,
          input: { ...ref },
          inputSummary: `${ref.rows} rows in ${ref.batches} batches`,
          // The rows, not the input: the input names this request's freshly staged copy.
          ...(idempotencyKey ? { idempotencyKey, fingerprintOf: rows } : {}),
        })
      } catch (err) {
        await discardStaged(ref).catch(() => undefined)
        throw err
      }
      if (started.deduplicated) {
        await discardStaged(ref)
        return { workflowId: started.workflowId, rows: rows.length }
      }
      log.info({ workflowId: started.workflowId, importId: ref.importId, tenantId: ref.tenantId, rows: ref.rows }, 'user import started')
      return { workflowId: started.workflowId, rows: ref.rows }
    },

    /** Activity: checks every row and writes the prepared batches. Deterministic, so a re-run rewrites the same files. */
    async prepare(ref: ImportRef): Promise<{ valid: number; invalid: number }> {
      const rows = await readJson<unknown[]>(stagedRowsKey(ref))
      const prepared = prepareRows(rows, { importer: importerOf(ref), defaultStatus: 'invited' })
      for (let batch = 0; batch < ref.batches; batch++) {
        const slice = prepared.slice(batch * IMPORT_BATCH_SIZE, (batch + 1) * IMPORT_BATCH_SIZE)
        await blob.put(preparedBatchKey(ref, batch), JSON.stringify(slice), { contentType: 'application/json' })
      }
      const invalid = prepared.filter(isRowError).length
      return { valid: prepared.length - invalid, invalid }
    },

    /**
     * Activity: inserts one batch's valid rows and records its outcome, in one transaction. A batch
     * already in the ledger (this activity ran before, or runs concurrently elsewhere) inserts
     * nothing and answers the recorded outcome.
     */
    async insertBatch(ref: ImportRef, batch: number): Promise<{ created: number; failed: number }> {
      const key = { importId: ref.importId, batch }
      const done = await crud.findImportBatch(db, key)
      if (done) return done
      const prepared = await readJson<PreparedRow[]>(preparedBatchKey(ref, batch))
      const users = prepared.filter((row): row is ImportUser => !isRowError(row))
      const outcome = await transaction(db, async (tx) => {
        if (!(await crud.claimImportBatch(tx, { ...key, tenantId: ref.tenantId }))) return undefined
        const inserted = await crud.insertImportedUsers(tx, ref.tenantId, users)
        const skipped = users.filter((u) => !inserted.has(u.email))
        const taken = await crud.liveEmailsAmong(tx, ref.tenantId, skipped.map((u) => u.email))
        const refusedUsers = new Map<number, ImportRowError>(
          skipped.map((u) => [
            u.row,
            taken.has(u.email)
              ? { row: u.row, email: u.email, code: 'DUPLICATE_EMAIL', message: 'a user with this email already exists in the tenant' }
              : { row: u.row, email: u.email, code: 'DUPLICATE_TAG', message: 'a user with this tag already exists in the tenant' },
          ]),
        )
        const errors = prepared.flatMap((row) => (isRowError(row) ? [row] : (refusedUsers.get(row.row) ?? [])))
        await crud.recordImportBatch(tx, key, { created: inserted.size, errors })
        return { created: inserted.size, failed: errors.length }
      })
      if (!outcome) return (await crud.findImportBatch(db, key))!
      if (refreshesStatistics(batch)) {
        await crud.analyzeUsers(db).catch((err: unknown) =>
          log.warn({ err, importId: ref.importId, batch }, 'could not refresh the statistics of users during an import'),
        )
      }
      return outcome
    },

    /** Activity: totals the ledger into the run's bounded result, then deletes the staged files. */
    async report(ref: ImportRef, workflowId: string): Promise<ImportResult> {
      const result = await totals(ref, workflowId)
      await discardStaged(ref)
      log.info({ workflowId, importId: ref.importId, tenantId: ref.tenantId, created: result.created, failed: result.failed }, 'user import finished')
      return result
    },

    /**
     * Compensation of a cancelled import: the users it created stay (the cancel stops the import,
     * it does not undo it). The ledger is closed first, so a batch still in flight finishes or
     * never starts, and then totalled into what the cancelled run reports: created and refused
     * before the cancel, and the rows never reached.
     */
    async reportCancelled(ref: ImportRef, workflowId: string): Promise<ImportResult & { cancelled: true; notProcessed: number }> {
      await crud.closeImportLedger(db, ref)
      const result = await totals(ref, workflowId)
      await discardStaged(ref).catch((err: unknown) =>
        log.warn({ err, importId: ref.importId }, 'the staged files of a cancelled import could not all be deleted'),
      )
      log.info({ workflowId, importId: ref.importId, tenantId: ref.tenantId, created: result.created, failed: result.failed }, 'user import cancelled')
      return { ...result, cancelled: true, notProcessed: Math.max(0, ref.rows - result.created - result.failed) }
    },

    /** Every refused row of an import run of the caller's tenant, in row order, a page at a time. */
    async errors(principal: Principal, workflowId: string, query: { page?: number; limit?: number }) {
      const { run } = await workflows.get(principal, workflowId)
      if (run.type !== USER_IMPORT_WORKFLOW) throw new NotFoundError('user import not found', 'IMPORT_NOT_FOUND')
      const importId = run.resource.id
      const page = pageRequest(query)
      const [{ failedByCode }, items] = await Promise.all([
        crud.importTotals(db, importId),
        crud.listImportErrors(db, importId, { limit: page.limit, offset: page.offset }),
      ])
      const total = Object.values(failedByCode).reduce((sum, n) => sum + n, 0)
      return pageResult(items, total, page)
    },

    /**
     * The import's last run is being purged: its ledger goes in the same transaction, and the
     * staged files a failed import leaves behind (a completed one deleted them) are removed.
     */
    async forget(tx: Executor, ref: ImportRef): Promise<void> {
      await crud.deleteImportBatches(tx, ref.tenantId, ref.importId)
      await discardStaged(ref).catch((err: unknown) =>
        log.warn({ err, importId: ref.importId }, 'the staged files of a purged import could not all be deleted'),
      )
    },

    /** For tests: stages rows without starting a run. */
    stage,
  }
}

export type UserImport = ReturnType<typeof createUserImport>
