export { type Batch, Batcher, type BatcherOptions, type CommittedTx } from './batcher.ts';
export {
  type BootstrapOptions,
  type BootstrapResult,
  bootstrapReplication,
  CdcSetupError,
} from './bootstrap.ts';
export { type ChangeKind, type RelationInfo, TagMapper } from './changes.ts';
export {
  type CdcEvents,
  type CdcState,
  CdcStream,
  type CdcStreamOptions,
  HEARTBEAT_PREFIX,
} from './stream.ts';
