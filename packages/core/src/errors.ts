/** Errors of the cache engine, each with a stable code; the API maps them once, in onError. */
export class WalcacheError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The database could not answer a miss (down, timeout): the API answers 503. */
export class SourceUnavailableError extends WalcacheError {
  constructor(cause: unknown) {
    super('WALCACHE_SOURCE_UNAVAILABLE', 'the database is unavailable', { cause });
  }
}

/** A job payload that does not match the schema: the job fails with this reason, never retried. */
export class InvalidJobError extends WalcacheError {
  constructor(message: string, cause?: unknown) {
    super('WALCACHE_INVALID_JOB', message, { cause });
  }
}

/** Node socket errors that mean "cannot reach the database", not "the query is wrong". */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);

/**
 * Whether a load failed because the database is unavailable (down, restarting, overloaded,
 * too slow) rather than because of a bug in the query. Only the former is a 503: a broken
 * query answered as "unavailable" would hide the bug behind retries.
 * SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57P operator
 * intervention (shutdown, crash recovery, "cannot connect now"), 57014 statement timeout.
 */
export function isSourceUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (UNREACHABLE_CODES.has(code)) return true;
    if (/^(08|53|57P)/.test(code) || code === '57014') return true;
  }
  // pg and pg-pool report these without a code.
  if (
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      error.message,
    )
  )
    return true;
  return error.cause !== undefined && error.cause !== error && isSourceUnavailable(error.cause);
}

/** ioredis rejects with a `ReplyError` when Redis answered with an error (its type is `any`). */
export function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError';
}
