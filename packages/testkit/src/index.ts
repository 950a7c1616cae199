export { freePort, waitFor } from './ports.ts';
export { type PostgresServer, type StartPostgresOptions, startPostgres } from './postgres.ts';
export {
  findRedisServer,
  REDIS_INSTALL_HINT,
  type RedisServer,
  type StartRedisOptions,
  startRedis,
} from './redis.ts';
export { generateCertificates, type TestCertificates } from './tls.ts';
export { type DebianToolOptions, ensureDebianTool } from './tools.ts';
