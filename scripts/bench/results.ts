import type { MachineInfo } from './sys.ts';

/** One closed-loop HTTP run, and its ratio to the ceiling measured in the same bench run. */
export interface HttpRow {
  id: string;
  scenario: string;
  label: string;
  route: string;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  /** The row this one is compared with (same run, same machine). */
  ceilingId?: string;
  /** rps over the ceiling's: the median of the rounds' ratios, each within one round. */
  ratio?: number;
  /** Each round's ratio to the ceiling measured just before it. */
  roundRatios?: number[];
  /** CPU per process during the measured run, % of one core. */
  cpu: Record<string, number>;
  /** CPU time of the answering process per request, µs: its cost, whatever the machine's load. */
  serverUsPerRequest: number;
  /** Cache hit share seen by the API during the run (walcache rows only). */
  hitRatio?: number;
}

export interface Quantiles {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface MixedResult {
  target: string;
  reads: HttpRow;
  writes: number;
  writeRate: number;
  writeShare: number;
  hitRatio?: number;
  staleChecks: number;
  /** Checks not counted: Postgres itself held an older title (two writes to one row committed out of issue order). */
  reorderedChecks: number;
  staleReads: number;
  staleBoundMs: number;
  /** Stale reads followed until the new value showed, how many never did within 10 s, and the slowest that did. */
  staleFollowed: number;
  staleStill: number;
  staleFreshAfterMaxMs?: number;
  staleExamples: string[];
}

export interface RateStep {
  targetCommitsPerS: number;
  rowsPerCommit: number;
  achievedCommitsPerS: number;
  achievedChangesPerS: number;
  /** Replication lag (marker written to the WAL → its LSN acknowledged by the CDC). */
  lag: Quantiles & { unresolved: number };
  /** Commit → the cached key deleted, from probe writes to cached articles. */
  invalidation: Quantiles & { skipped: number };
  sustained: boolean;
  why?: string;
  cpu: Record<string, number>;
  /** Where a job's time went during the step, from the completed jobs' own records. */
  stages?: JobStages;
}

/**
 * The pipeline's stages for the jobs of one step (quantiles in ms): commit → the CDC began
 * storing its job (WAL sent, decoded, waited behind the in-flight store), stored → a worker
 * picked it up (the add's round trip, the wait for a free worker), then the attempt's own
 * parts (processor.ts `ms`).
 */
export interface JobStages {
  jobs: number;
  jobsPerS: number;
  commitsPerJob: number;
  tagsPerJob: number;
  toStore: Quantiles;
  toPickup: Quantiles;
  visible: Quantiles;
  invalidate: Quantiles;
  watermark: Quantiles;
  /** Picked up → finished (BullMQ's finishedOn, set before the completion script runs). */
  attempt: Quantiles;
  /** The CDC's stores over the step (`walcache_cdc_enqueue_duration_seconds`): count and mean ms. */
  stores: number;
  storeMeanMs: number;
  /**
   * Redis commands over the step (INFO commandstats; a Lua script counts as one, plus the
   * commands it runs): calls and Redis CPU µs per commit, and the busiest commands.
   */
  redis?: {
    callsPerCommit: number;
    usPerCommit: number;
    top: { command: string; calls: number; us: number }[];
  };
}

export interface InvalidationResult {
  commitSteps: RateStep[];
  changeSteps: RateStep[];
  maxSustainedCommitsPerS?: number;
  maxSustainedChangesPerS?: number;
}

export interface FanoutResult {
  keys: number;
  cachedBefore: number;
  /** Commit of the rename → first / last of its keys deleted. */
  firstMs: number;
  lastMs: number;
  remainingAfter: number;
  /** The rename's invalidation job, in ms after the commit (durations: in ms). */
  job?: FanoutJob;
  /** Reading the N articles through the API beforehand: N misses, and the CPU each cost. */
  fill?: {
    misses: number;
    seconds: number;
    apiUsPerMiss: number;
    postgresUsPerMiss: number;
    redisUsPerMiss: number;
  };
}

export interface FanoutJob {
  tags: number;
  addedMs: number;
  startedMs: number;
  /** Step 0 (the visibility check), then the invalidation itself: durations. */
  visibleMs: number;
  invalidateMs: number;
  finishedMs: number;
}

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  share: number;
  /** The most common chain of non-internal callers. */
  via: string;
}

export interface ProfileSummary {
  file: string;
  /** What was read (article detail, list page); absent in runs from before list profiles. */
  kind?: string;
  rps: number;
  totalMs: number;
  idleShare: number;
  top: ProfileEntry[];
  byArea: { area: string; share: number }[];
}

export interface Spread {
  p50: number;
  min: number;
  max: number;
}

/** One app started from one form (or, for `bundle / sources`, their ratios pair by pair). */
export interface StartupRow {
  app: string;
  from: 'bundle' | 'sources' | 'bundle / sources';
  /**
   * Spawn → the first answer of its HTTP port (any status): the entry's 503 `starting` since
   * each program takes its port before it loads the rest (apps/<app>/src/bin.ts).
   */
  listeningMs: Spread;
  /** Spawn → its /healthz answers 2xx (the CDC: streaming). Absent in results from before. */
  readyMs?: Spread;
  /** Once ready (the CDC streaming) and idle for settleMs. */
  rssMiB: Spread;
}

export interface StartupResult {
  rounds: number;
  settleMs: number;
  rows: StartupRow[];
}

/** Read-your-writes token reads under one background commit rate (scenario 8). */
export interface RywStep {
  targetCommitsPerS: number;
  achievedCommitsPerS: number;
  tokenRead: Quantiles;
  /** The same article read right after without a token (a hit): the reference. */
  plainRead: Quantiles;
  addedP50Ms: number;
  addedP99Ms: number;
  /** Token reads answered from the cache (HIT/MISS), not from Postgres (BYPASS). */
  fromCacheShare: number;
  outcomes: Record<string, number>;
  /** Token reads that did not show the writer's own title (must be 0). */
  older: number;
}

export interface RywResult {
  steps: RywStep[];
  /**
   * Step 0 during these runs (issue 11 item 1): `jobs` queried, `meanMs` what it added to each;
   * `known` jobs an earlier check's snapshot covered, which ran no query.
   */
  visibilityCheck: { jobs: number; known?: number; meanMs?: number };
}

export interface PrecisionResult {
  writes: number;
  cachedValues: number;
  /** Cached values the writes' invalidations deleted. */
  invalidated: number;
  /** Of those, values whose reload was byte-identical to what was deleted. */
  needless: number;
  needlessShare: number;
  byResource: Record<string, { invalidated: number; needless: number }>;
  byWrite: Record<string, { writes: number; invalidated: number; needless: number }>;
  /** UPDATEs the CDC skipped for changing no column a resource reads (whole run, its counter). */
  skippedUpdates: number;
}

export interface ClusterHitRow {
  label: string;
  apis: number;
  /** Summed over the APIs. */
  rps: number;
  /** The worst of the APIs' load runs. */
  p50Ms: number;
  p99Ms: number;
  errors: number;
  cpu: Record<string, number>;
}

export interface ClusterResult {
  masters: number;
  replicasPerMaster: number;
  hits: ClusterHitRow[];
  /** The one-server API's article hits in this run (scenario 2), if it ran. */
  oneServerHitRps?: number;
  invalidation: Quantiles & { missing: number };
  oneServerInvalidation?: Quantiles & { skipped: number };
}

export interface BenchResults {
  date: string;
  command: string;
  profile: 'quick' | 'full';
  /** Interleaved rounds of the read scenarios; each read row is the best of them. */
  readRounds: number;
  machine: MachineInfo;
  notes: string[];
  durationS: number;
  http: HttpRow[];
  mixed: MixedResult[];
  invalidation?: InvalidationResult;
  fanout?: FanoutResult;
  ryw?: RywResult;
  precision?: PrecisionResult;
  cluster?: ClusterResult;
  /** MiB: after start-up, the max during the mixed walcache run, and after every scenario ran. */
  memory: {
    atRest: Record<string, number>;
    underMixedLoad: Record<string, number>;
    atEnd: Record<string, number>;
  };
  cpuProfile?: ProfileSummary;
  /** The same profile under the list-page hit load. */
  cpuProfileList?: ProfileSummary;
  startup?: StartupResult;
}
