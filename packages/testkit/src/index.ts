export { freePort, portIsFree, portWasTaken, retryWhilePortTaken, waitFor } from './ports.ts';
export {
  type PostgresServer,
  packagedBinaries,
  postgresUser,
  runnableBinaries,
  type StartPostgresOptions,
  startPostgres,
  traversableByPostgres,
} from './postgres.ts';
export { armReaper, type Reaper } from './reaper.ts';
export {
  findRedisServer,
  REDIS_INSTALL_HINT,
  type RedisServer,
  type StartRedisOptions,
  startRedis,
} from './redis.ts';
export {
  type RedisCluster,
  type RedisClusterNode,
  type StartRedisClusterOptions,
  startRedisCluster,
} from './redis-cluster.ts';
export { generateCertificates, type TestCertificates } from './tls.ts';
export { type DebianToolOptions, ensureDebianPackage, ensureDebianTool } from './tools.ts';
