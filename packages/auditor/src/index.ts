export {
  Auditor,
  type AuditorDeps,
  type AuditorMetrics,
  type AuditorOptions,
  type CheckResult,
  createAuditorMetrics,
} from './auditor.ts';
export { type OpsCollectorDeps, registerOpsCollectors } from './collectors.ts';
export { type KeyTarget, type ResourceForKey, targetOfKey } from './params.ts';
export { pipelinePassed } from './pipeline.ts';
export {
  type FailedJobSummary,
  invalidationLatency,
  type LatencySummary,
  PENDING_STATES,
  QUEUE_STATES,
  type QueueCounts,
  type QueueState,
  quantile,
  readQueueCounts,
  recentFailedJobs,
} from './queue.ts';
export { currentInsertLsn, readSlot, type SlotInfo } from './slot.ts';
export {
  type AuditOutcome,
  type AuditorTotals,
  auditorStatsKey,
  readAuditorTotals,
  recordAudit,
} from './stats.ts';
export {
  type CacheStats,
  cacheStatsFrom,
  collectStatus,
  isError,
  type Section,
  type StatusDeps,
  type StatusDocument,
} from './status.ts';
