import type { Logger } from 'pino'
import { isAllowListEntry } from './allowlist.js'
import {
  CheckerBusyError,
  CheckerUnavailableError,
  createPythonChecker,
  type CheckerOptions,
  type PythonChecker,
} from './checker-thread.js'
import { CodeInvalidError, validatorBusy, validatorUnavailable } from './errors.js'
import {
  ENTRY_FILE,
  RUNNER_PACKAGES,
  checkFileSet,
  moduleShadowProblems,
  type AppFile,
  type AppProblem,
} from './files.js'

export type { AppFile, AppProblem, AppRule } from './files.js'
export { APP_FILE_EXTENSIONS, APP_FILE_LIMITS, ENTRY_FILE, entryModule } from './files.js'
export { DEFAULT_ALLOWED_IMPORTS, isAllowListEntry } from './allowlist.js'
export { CodeInvalidError } from './errors.js'

export type AppValidation =
  | { ok: true; /** The path of the file the runner imports. */ entry: string; files: AppFile[] }
  | { ok: false; problems: AppProblem[] }

export interface AppValidatorOptions {
  /** Time for one Python file (a 100 KB file takes about 0.1 s). */
  fileTimeoutMs?: number
  /** Time for all files of one app together. */
  totalTimeoutMs?: number
  checker?: CheckerOptions
  log?: Pick<Logger, 'warn' | 'error'>
}

export interface AppValidator {
  /**
   * Judges an app's files against the rules of docs/apps.md: every problem at once, never a throw
   * for bad code. Throws 503 errors when the checker is overloaded or cannot start.
   */
  validate(files: readonly AppFile[], allowedImports: readonly string[]): Promise<AppValidation>
  /** Starts the Python checker now rather than on the first validation (about 2 s). */
  warm(): Promise<void>
  close(): Promise<void>
}

/** Problems listed at most; past it a last problem says there were more. */
const MAX_PROBLEMS = 200

/** The files of an app sent as a single `code` text. */
export function appFilesFromCode(code: string): AppFile[] {
  return [{ path: ENTRY_FILE, content: code }]
}

/** The validation's files when it passed; the 400 `CODE_INVALID` with every problem when not. */
export function requireValidApp(validation: AppValidation, field = 'body.files'): { entry: string; files: AppFile[] } {
  if (!validation.ok) throw new CodeInvalidError(validation.problems, field)
  return { entry: validation.entry, files: validation.files }
}

/**
 * One validator per process: its Python checker (a worker thread with pyodide) starts on first use
 * and stays warm.
 */
export function createAppValidator(options: AppValidatorOptions = {}): AppValidator {
  const checker: PythonChecker = createPythonChecker(options.checker)
  const fileTimeoutMs = options.fileTimeoutMs ?? 5_000
  const totalTimeoutMs = options.totalTimeoutMs ?? 30_000

  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (err instanceof CheckerBusyError) throw validatorBusy()
      if (err instanceof CheckerUnavailableError) {
        options.log?.error({ err }, 'the Python checker is unavailable')
        throw validatorUnavailable()
      }
      throw err
    }
  }

  async function validate(files: readonly AppFile[], allowedImports: readonly string[]): Promise<AppValidation> {
    const wrongEntry = allowedImports.find((entry) => !isAllowListEntry(entry))
    if (wrongEntry !== undefined) throw new Error(`not an allow-list entry: ${JSON.stringify(wrongEntry)}`)

    const set = checkFileSet(files)
    if (set.overLimits) return { ok: false, problems: set.problems }

    const reserved = new Set([...(await checker.stdlib()), ...RUNNER_PACKAGES])
    const problems = [...set.problems, ...moduleShadowProblems(set.python, reserved)]
    // The app's time is what the thread spends on its files: time queued behind other apps' files
    // is not the code's fault, so a busy checker never turns valid code into a timeout.
    let spentMs = 0
    for (const file of set.python) {
      const left = totalTimeoutMs - spentMs
      const outcome =
        left <= 0
          ? ({ kind: 'timeout' } as const)
          : await checker.check(
              { path: file.path, source: file.content, entry: file.path === set.entry, allowed: allowedImports, local: set.localModules },
              Math.min(fileTimeoutMs, left),
            )
      if ('checkedMs' in outcome) spentMs += outcome.checkedMs
      if (outcome.kind === 'problems') {
        problems.push(...outcome.problems.map((p) => ({ file: file.path, ...p }) as AppProblem))
      } else if (outcome.kind === 'too-complex') {
        problems.push({ file: file.path, line: 0, column: 0, rule: 'too-complex', message: 'the file is nested too deeply for the Python parser' })
      } else {
        options.log?.warn({ file: file.path, bytes: Buffer.byteLength(file.content) }, 'checking an app file ran out of time')
        problems.push({ file: file.path, line: 0, column: 0, rule: 'timeout', message: 'checking this file took too long' })
      }
    }

    if (problems.length === 0 && set.entry) return { ok: true, entry: set.entry, files: [...files] }
    if (problems.length > MAX_PROBLEMS) {
      const more = problems.length - MAX_PROBLEMS
      problems.length = MAX_PROBLEMS
      problems.push({ file: '', line: 0, column: 0, rule: 'limit', message: `${more} more problems are not listed` })
    }
    return { ok: false, problems }
  }

  return {
    validate: (files, allowedImports) => guarded(() => validate(files, allowedImports)),
    warm: () => guarded(() => checker.warm()),
    close: () => checker.close(),
  }
}
