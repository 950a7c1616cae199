export {
  type Batch,
  Batcher,
  type BatcherOptions,
  type CommittedTx,
  DEFAULT_MAX_TAGS_PER_JOB,
  DEFAULT_MAX_TAGS_PER_TABLE,
  limitOf,
  type TagLimit,
  TxTags,
} from './batcher.ts';
export {
  type BootstrapOptions,
  type BootstrapResult,
  bootstrapReplication,
  CdcSetupError,
  type SqlClient,
  sourceIdentity,
} from './bootstrap.ts';
export { type ChangeKind, type RelationInfo, TagMapper } from './changes.ts';
export { type CdcEnv, cdcEnvSchema, parseCdcEnv } from './env.ts';
export { parseTagLimits, type TagLimits } from './limits.ts';
export {
  type CdcEvents,
  type CdcState,
  CdcStream,
  type CdcStreamOptions,
  HEARTBEAT_PREFIX,
  type SlotResetReason,
  type SlotSyncMarker,
  streamTimings,
} from './stream.ts';
