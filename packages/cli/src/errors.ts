/**
 * Exit codes of `walcache`, stable for scripts. 69 and 78 follow sysexits.h (EX_UNAVAILABLE,
 * EX_CONFIG), like the apps' own config failure.
 */
export const exitCodes = {
  ok: 0,
  /** The operation itself failed (an unexpected error from Redis or Postgres). */
  failed: 1,
  /** Bad command line: unknown command or option, bad parameter. */
  usage: 2,
  /** Refused: confirmation declined or missing, or unsafe now (e.g. the slot is in use). */
  refused: 3,
  /** What was asked for does not exist (e.g. the key is not cached). */
  notFound: 4,
  /** Redis or Postgres could not be reached. */
  unavailable: 69,
  /** The environment is invalid (a variable is missing or malformed). */
  config: 78,
} as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/** An error the CLI reports as one clear message (no stack) with a stable exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

export const usageError = (message: string) => new CliError(message, exitCodes.usage);
