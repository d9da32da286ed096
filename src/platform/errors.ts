/**
 * Every failure the API reports is an AppError: a stable SCREAMING_SNAKE code, an HTTP status,
 * a message safe to show a caller, and optional structured details.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly details?: unknown,
  ) {
    super(message)
    this.name = 'AppError'
  }
}

export interface FieldProblem {
  field: string
  message: string
}

export class ValidationError extends AppError {
  constructor(message: string, problems: FieldProblem[] = []) {
    super('VALIDATION_ERROR', 400, message, problems.length > 0 ? problems : undefined)
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'resource not found', code = 'NOT_FOUND') {
    super(code, 404, message)
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
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

/** A dependency the request needs cannot be reached now: the caller should retry, not change anything. */
export class UnavailableError extends AppError {
  constructor(code: string, message: string) {
    super(code, 503, message)
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
