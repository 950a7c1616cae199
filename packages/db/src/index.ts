export {
  assertCanRead,
  currentRole,
  probePostgres,
  type Queryable,
  quoteIdent,
  verifyPostgres,
} from './access.ts';
export { MigrationError, migrateToLatest } from './migrate.ts';
export {
  createDb,
  createPool,
  guardConnectionErrors,
  type PoolOptions,
  pgConnectionConfig,
} from './pool.ts';
export type {
  ArticlesTable,
  ArticleTagsTable,
  CommentsTable,
  Database,
  TableName,
  TagsTable,
  UsersTable,
} from './schema.ts';
export { defaultSeedSize, type SeedSize, seedIfEmpty } from './seed.ts';
