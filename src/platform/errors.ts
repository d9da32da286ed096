export interface FieldProblem {
  field: string
  message: string
}

/**
 * `details` of every error envelope has this one shape, so a client reads it the same way for a
 * 400, a 409 or a 412: `fields` is always there (empty when no input is at fault), and any other
 * key is context named by the error code (`{status}` of a finished run, `{retryAfterSeconds}`, …).
 */
export interface ErrorDetails {
  fields: FieldProblem[]
  [context: string]: unknown
}

/**
 * Every failure the API reports is an AppError: a stable SCREAMING_SNAKE code, an HTTP status,
 * a message safe to show a caller, and structured details (docs/api-style.md, Errors).
 */
export class AppError extends Error {
  readonly details: ErrorDetails

  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    details: Partial<ErrorDetails> = {},
  ) {
    super(message)
    this.name = 'AppError'
    this.details = { ...details, fields: details.fields ?? [] }
  }
}

export class ValidationError extends AppError {
  constructor(message: string, problems: FieldProblem[] = []) {
    super('VALIDATION_ERROR', 400, message, { fields: problems })
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'resource not found', code = 'NOT_FOUND') {
    super(code, 404, message)
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string, details?: Partial<ErrorDetails>) {
    super(code, 409, message, details)
  }
}

export class PreconditionFailedError extends AppError {
  constructor(message = 'the resource changed since it was read; fetch it again and retry') {
    super('PRECONDITION_FAILED', 412, message)
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'authentication required') {
    super('UNAUTHENTICATED', 401, message)
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'not allowed') {
    super('FORBIDDEN', 403, message)
  }
}

/**
 * A dependency the request needs cannot be reached now: the caller should retry, not change
 * anything. `retryAfterSeconds` (in `details`) becomes the answer's `Retry-After` header.
 */
export class UnavailableError extends AppError {
  constructor(code: string, message: string, retryAfterSeconds?: number) {
    super(code, 503, message, retryAfterSeconds === undefined ? {} : { retryAfterSeconds })
  }
}

export class DependencyError extends AppError {
  constructor(code: string, message: string) {
    super(code, 502, message)
  }
}

/** The request (or an upload's bytes) did not arrive in time; the connection is closed after the answer. */
export class RequestTimeoutError extends AppError {
  constructor(message = 'the request did not arrive in time') {
    super('REQUEST_TIMEOUT', 408, message)
  }
}
