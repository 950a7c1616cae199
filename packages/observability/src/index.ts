import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

export { redactSecrets } from '@walcache/config';
export type { Logger } from 'pino';
export { Counter, Gauge, Histogram, Registry } from 'prom-client';
export { createLogger, logFields, silentLogger } from './logger.ts';

/** A registry with the process metrics of prom-client, all names prefixed `walcache_`. */
export function createRegistry(app: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  collectDefaultMetrics({ register: registry, prefix: 'walcache_' });
  return registry;
}

/**
 * The read-your-writes watermark as a WAL byte position, read at scrape time from what the
 * process last saw (the invalidator advances it, an API reads it): one definition for both.
 */
export function registerWatermarkGauge(registry: Registry, read: () => bigint | undefined): void {
  new Gauge({
    name: 'walcache_watermark_lsn_bytes',
    help: 'The read-your-writes watermark as a WAL byte position: every commit ending at or before it is invalidated',
    registers: [registry],
    collect() {
      const value = read();
      if (value !== undefined) this.set(Number(value));
    },
  });
}

export { type MetricsServer, startMetricsServer } from './server.ts';
export { isMain, onShutdown } from './shutdown.ts';
export { listenWhileStarting, STARTING_PROBLEM_TYPE, type StartingServer } from './starting.ts';
export { startOrExit } from './startup.ts';
