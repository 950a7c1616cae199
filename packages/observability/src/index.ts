import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';

export type { Logger } from 'pino';
export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * One logger per process, with the same field names in every app: `app`, `err`, `lsn`,
 * `jobId`, `key`, `tags`, `reqId`. Connection strings never reach a log line: the paths
 * below are redacted wherever they appear.
 */
export function createLogger(app: string, options: { level?: string; destination?: DestinationStream } = {}) {
  const config: LoggerOptions = {
    name: app,
    level: options.level ?? 'info',
    base: { app, pid: process.pid },
    redact: {
      paths: [
        '*.DATABASE_URL',
        '*.REDIS_URL',
        '*.QUEUE_REDIS_URL',
        '*.OPS_TOKEN',
        '*.password',
        'req.headers.authorization',
      ],
      censor: '***',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** A registry with the process metrics of prom-client, all names prefixed `walcache_`. */
export function createRegistry(app: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  collectDefaultMetrics({ register: registry, prefix: 'walcache_' });
  return registry;
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
export { type MetricsServer, startMetricsServer } from './server.ts';
export { isMain, onShutdown } from './shutdown.ts';
