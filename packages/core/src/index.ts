export { getMany, type LoadMany, loadManyFresh } from './batch.ts';
export { type BreakerOptions, type BreakerState, CircuitBreaker } from './breaker.ts';
export {
  type CacheEvents,
  type CacheOptions,
  type CacheResult,
  type CacheStatus,
  execPipeline,
  type FillHooks,
  type FillRefusal,
  jitteredTtlMs,
  loggedGenerationEvents,
  ReadThroughCache,
  type RefreshResult,
} from './cache.ts';
export {
  bodyOf,
  CorruptEntryError,
  decodeEntry,
  decodeEntryHead,
  ENTRY_MAGIC,
  type Entry,
  type EntryHead,
  encodeEntry,
  etagOf,
  isNullBody,
  NULL_BODY,
} from './codec.ts';
export {
  createRedisClient,
  isCluster,
  mastersOf,
  probeRedis,
  probeRedisTarget,
  quitRedis,
  type RedisClient,
  type RedisClientOptions,
} from './connect.ts';
export { timings } from './constants.ts';
export { InvalidJobError, isSourceUnavailable, SourceUnavailableError, WalcacheError } from './errors.ts';
export { flushNamespace, unlinkMatching } from './flush.ts';
export { type InvalidateOptions, type InvalidationResult, invalidateTags } from './invalidate.ts';
export {
  INVALIDATE_JOB_NAME,
  type InvalidationJob,
  invalidationJobSchema,
  jobIdForCommit,
  type SourceIdentity,
  sourceKey,
} from './job.ts';
export { isValueOrLease, type Keyspace, keyspace, resourceKeyOf } from './keys.ts';
export { bigIntToLsn, compareLsn, lsnToBigInt, normalizeLsn } from './lsn.ts';
export {
  awaitQueueReplica,
  invalidationJobOptions,
  QUEUE_PREFIX,
  QueueNotReplicatedError,
} from './queue.ts';
export { ValueReads } from './reads.ts';
export {
  checkRedisMemoryPolicies,
  memoryConfigProblem,
  RedisConfigError,
  type RedisMemoryConfig,
  type RedisRole,
  readMemoryConfig,
} from './redis-policy.ts';
export {
  type AnyResource,
  byWatchedColumn,
  defineResource,
  type RefreshPolicy,
  type Resource,
  watchedColumnsOf,
} from './resource.ts';
export { type WalcacheRedis, withCommands } from './scripts.ts';
export { type SweepOptions, type SweepProgress, sweepTagIndex } from './sweep.ts';
export {
  colTag,
  epochTag,
  rowsTag,
  rowTag,
  type TableMembership,
  type Tag,
  tableOfTag,
  tableTag,
  tableTagName,
  type WatchedColumn,
  withEpochTags,
} from './tags.ts';
export { withTimeout } from './timeout.ts';
export {
  countInvisibleXids,
  VISIBILITY_HORIZON_MAX_AGE_MS,
  VisibilityHorizon,
  type XidQueryable,
} from './visibility.ts';
export {
  coverInterval,
  parseLsnToken,
  raiseWatermark,
  readWatermark,
  WatermarkReader,
  type WatermarkReaderOptions,
  watermarkLsn,
} from './watermark.ts';
