import { AppError, UnavailableError } from '../../../platform/errors.js'
import type { AppProblem } from './files.js'

export const AppCodeErrorCode = {
  CODE_INVALID: 'CODE_INVALID',
  VALIDATOR_BUSY: 'APP_VALIDATOR_BUSY',
  VALIDATOR_UNAVAILABLE: 'APP_VALIDATOR_UNAVAILABLE',
} as const

const where = (p: AppProblem) => (p.line ? `${p.file}:${p.line}:${p.column}` : p.file || 'the app')

/**
 * 400 with every problem the validator found, in `details.problems` ({file, line, column, rule,
 * message}); `details.fields` names the request field (`body.code` or `body.files`) once per
 * problem, so a client that reads only `fields` still sees each one.
 */
export class CodeInvalidError extends AppError {
  constructor(problems: readonly AppProblem[], field = 'body.files') {
    const first = problems[0]
    const summary = first ? `${where(first)}: ${first.message}` : 'no details'
    const count = problems.length === 1 ? 'a problem' : `${problems.length} problems`
    super(AppCodeErrorCode.CODE_INVALID, 400, `the app's code has ${count}; the first: ${summary}`, {
      fields: problems.map((p) => ({ field, message: `${where(p)} [${p.rule}] ${p.message}` })),
      problems,
    })
  }
}

/** How long a caller told the checker is busy waits before asking again (the Retry-After header). */
export const VALIDATOR_RETRY_AFTER_SECONDS = 5

export const validatorBusy = () =>
  new UnavailableError(AppCodeErrorCode.VALIDATOR_BUSY, 'too many apps are being checked right now; try again in a few seconds', VALIDATOR_RETRY_AFTER_SECONDS)

export const validatorUnavailable = () =>
  new UnavailableError(AppCodeErrorCode.VALIDATOR_UNAVAILABLE, 'the Python checker could not be started; try again later', 30)
