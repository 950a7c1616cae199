import { ConfigFileError, ConnectionConfigError } from '@walcache/config';
import type { Logger } from 'pino';

/**
 * For main.ts: runs the app's start; a connection setting that cannot work (wrong password,
 * untrusted certificate, missing privilege), or a server setting that cannot stay correct
 * (an error carrying a `fix`, such as a Redis memory policy), ends the process with that one
 * line and EX_CONFIG, the way a bad environment variable does, instead of a stack trace.
 */
export async function startOrExit<T>(logger: Logger, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (error) {
    if (error instanceof ConnectionConfigError) {
      logger.fatal({ variable: error.variable }, error.message);
      process.exit(78); // EX_CONFIG
    }
    // A config file that is not the format (ConfigFileError) or does not match the database
    // (ConfigMismatchError, from @walcache/resources): the message lists every problem, each
    // naming the field and the fix; a stack trace would only bury it.
    if (error instanceof ConfigFileError || isConfigMismatch(error)) {
      logger.fatal({ code: error.code }, error.message);
      process.exit(78); // EX_CONFIG
    }
    if (error instanceof Error && typeof (error as { fix?: unknown }).fix === 'string') {
      logger.fatal({ code: (error as { code?: unknown }).code }, error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
}

/** By shape: observability sits below the resource compiler and must not import it. */
function isConfigMismatch(error: unknown): error is Error & { code: string } {
  return error instanceof Error && (error as { code?: unknown }).code === 'WALCACHE_CONFIG_MISMATCH';
}
