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
