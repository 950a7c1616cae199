export {
  type Catalog,
  type ColumnInfo,
  canonicalTableName,
  type Queryable,
  readCatalog,
  splitTableName,
  type TableInfo,
  tagTableName,
} from './catalog.ts';
export {
  type BatchLookup,
  type CompiledConfig,
  type CompiledResource,
  compileConfig,
  compileWithCatalog,
  type Db,
  encodeCursor,
  type Params,
  type RouteParam,
  type Value,
  type WarmSpec,
} from './compile.ts';
export {
  type ConfigChoice,
  chosenConfigPath,
  DEFAULT_EXAMPLE,
  exampleConfigPath,
  loadCompiledConfig,
} from './load.ts';
export { ConfigMismatchError, type Membership, planConfig, suggest, tablesOfConfig } from './plan.ts';
export { isParamType } from './types.ts';
export { type WarmOptions, type WarmProgress, type WarmReport, warmCache } from './warm.ts';
