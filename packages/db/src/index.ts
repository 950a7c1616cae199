export {
  assertCanRead,
  currentRole,
  probePostgres,
  type Queryable,
  quoteIdent,
  verifyPostgres,
} from './access.ts';
export {
  type AnyDb,
  createDb,
  createPool,
  guardConnectionErrors,
  type PoolOptions,
  pgConnectionConfig,
} from './pool.ts';
