import { ConnectionConfigError } from '@walcache/config';
import type { Logger } from 'pino';

/**
 * For main.ts: runs the app's start; a connection setting that cannot work (wrong password,
 * untrusted certificate, missing privilege) ends the process with that one line and
 * EX_CONFIG, the way a bad environment variable does, instead of a stack trace.
 */
export async function startOrExit<T>(logger: Logger, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (error) {
    if (error instanceof ConnectionConfigError) {
      logger.fatal({ variable: error.variable }, error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
}
