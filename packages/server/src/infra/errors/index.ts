/**
 * One typed error for the whole server. Services throw `AppError`; the HTTP error handler turns it into
 * `{"error":{"code","message","details"}}` with the status from `httpStatusOf`. Anything else becomes
 * `internal` and its cause stays in the log, never in the response.
 */
export const errorCodes = {
  bad_request: 400,
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  unprocessable: 422,
  rate_limited: 429,
  internal: 500,
  /** A device answered, but not as it must (a malformed or oversized diagnostics report). */
  bad_gateway: 502,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details;
  }
}

export function httpStatusOf(code: ErrorCode): number {
  return errorCodes[code];
}

/** A resource that does not exist and one the principal may not see answer the same. */
export function notFound(what: string): AppError {
  return new AppError('not_found', `${what} not found`);
}

export function forbidden(message = 'your role does not allow this'): AppError {
  return new AppError('forbidden', message);
}

export function conflict(message: string, details?: unknown): AppError {
  return new AppError('conflict', message, { details });
}

/** Refused for now; the HTTP layer sends `Retry-After` from `details.retryAfterSeconds` (see `retryAfterHeader`). */
export function rateLimited(message: string, waitMs: number): AppError {
  return new AppError('rate_limited', message, {
    details: { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
  });
}

/** The `Retry-After` header of an error answer: present on `rate_limited` answers that say when to retry. */
export function retryAfterHeader(code: ErrorCode, details: unknown): Record<string, string> {
  const seconds = (details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
  return code === 'rate_limited' && typeof seconds === 'number' ? { 'Retry-After': String(seconds) } : {};
}

export function badRequest(message: string, details?: unknown): AppError {
  return new AppError('bad_request', message, { details });
}
