import { ConnectionConfigError } from '@walcache/config';
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
    if (error instanceof Error && typeof (error as { fix?: unknown }).fix === 'string') {
      logger.fatal({ code: (error as { code?: unknown }).code }, error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
}
