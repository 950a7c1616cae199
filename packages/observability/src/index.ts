import { collectDefaultMetrics, Registry } from 'prom-client';

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

export { type MetricsServer, startMetricsServer } from './server.ts';
export { isMain, onShutdown } from './shutdown.ts';
export { startOrExit } from './startup.ts';
