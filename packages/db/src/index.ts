export {
  assertCanRead,
  currentRole,
  probePostgres,
  type Queryable,
  quoteIdent,
  TABLE_TAG_NAME_SQL,
  verifyPostgres,
} from './access.ts';
export {
  type AnyDb,
  createDb,
  createPool,
  guardConnectionErrors,
  type PoolOptions,
  pgConnectionConfig,
  preparedStatement,
} from './pool.ts';
