import type { SeedSize } from '../../examples/blog/index.ts';

/**
 * Every duration, rate and size of the benchmark, with the reason for its value. The two
 * profiles differ only in how long they measure and how far they ramp, never in what.
 */
export interface BenchProfile {
  name: 'quick' | 'full';
  /**
   * The sample blog, larger than the default seed: the hit scenarios spread over thousands
   * of ids and the fan-out needs thousands of articles to move under one author.
   */
  seed: SeedSize;
  /** Discarded load before each measured run: JIT tiers, pools and sockets warm up in it. */
  warmupS: number;
  /** Measured load per HTTP run. */
  runS: number;
  /**
   * The read scenarios run this many times, interleaved, and each keeps its best run: on a
   * shared machine a neighbour's burst lowers one run, never raises one. Its ratio to its
   * ceiling is the median of the rounds' ratios, each within one round (scenarios/reads.ts).
   */
  rounds: number;
  /**
   * Concurrent HTTP connections of the load generator. Enough to keep one Node event loop
   * busy without pipelining, few enough that p99 is not only queueing behind 100s of sockets.
   */
  connections: number;
  /** How many article ids the hit scenarios spread over (all of them cached first). */
  hitIds: number;
  /** How many list pages (limit 20, walked with real cursors) the list scenarios spread over. */
  listPages: number;
  /** Measured length of the mixed read/write run. */
  mixedS: number;
  /** Share of writes in the mixed scenario (the issue asks for 95 % reads / 5 % writes). */
  writeShare: number;
  /**
   * A read of a written row this long after its commit must see the new value. One second:
   * far above the invalidation latency measured below at the same load, so a stale answer
   * after it is a consistency bug, not slowness.
   */
  staleBoundMs: number;
  invalidation: {
    /** Measured length of one rate step. */
    stepS: number;
    /** Commit rates (single-row transactions) tried in order; the ramp stops at the first one not sustained. */
    commitRates: number[];
    /**
     * Run a step that was not sustained once more before ending the ramp (full runs: a
     * neighbour's burst on a shared machine must not decide the figure; quick runs skip it).
     */
    retryFailedStep: boolean;
    /** Rows updated per transaction when ramping the change rate (the CDC decodes each row). */
    rowsPerCommit: number;
    /** Commit rates of `rowsPerCommit`-row transactions tried in order for the change-rate ramp. */
    changeCommitRates: number[];
    /**
     * Commits per second that probe a cached key (GET through the API, then UPDATE): enough
     * samples for a p99 per step while their cache misses stay a small load on the API.
     */
    probeRate: number;
  };
  /** Articles moved under one author, cached, then invalidated by one rename. */
  fanout: number;
  /** Writes of the precision scenario, each waited for and every value it deleted read again. */
  precisionWrites: number;
  /** Length of the profiled hit run (`--cpu-prof`); long enough for ~10k samples. */
  profileS: number;
  /** Starts of each app from its bundle and from its sources (after one discarded round). */
  startupRounds: number;
}

const seed: SeedSize = { users: 1000, articles: 10_000, tags: 40, commentsPerArticle: 3 };

export const profiles: Record<'quick' | 'full', BenchProfile> = {
  // Quick: a smoke run that shows every scenario in under two minutes; figures are indicative.
  quick: {
    name: 'quick',
    seed,
    warmupS: 1,
    runS: 3,
    rounds: 1,
    connections: 32,
    // 1 000 ids: still far more keys than connections, and their fill keeps quick under 2 minutes.
    hitIds: 1000,
    listPages: 50,
    mixedS: 4,
    writeShare: 0.05,
    staleBoundMs: 1000,
    invalidation: {
      stepS: 3,
      commitRates: [100, 1000, 2500],
      retryFailedStep: false,
      rowsPerCommit: 10,
      changeCommitRates: [300, 800],
      probeRate: 25,
    },
    fanout: 2000,
    precisionWrites: 30,
    profileS: 3,
    startupRounds: 1,
  },
  // Full: runs long enough that a p99 rests on thousands of samples (≥10 s per run).
  full: {
    name: 'full',
    seed,
    warmupS: 2,
    runS: 10,
    // Three: the median of three paired ratios is not moved by one disturbed round.
    rounds: 3,
    connections: 32,
    hitIds: 9000,
    listPages: 400,
    mixedS: 15,
    writeShare: 0.05,
    staleBoundMs: 1000,
    invalidation: {
      stepS: 10,
      commitRates: [100, 1000, 2000, 3000, 4500, 6000, 8000],
      retryFailedStep: true,
      rowsPerCommit: 10,
      changeCommitRates: [200, 400, 700, 1000, 1500, 2000, 3000],
      probeRate: 25,
    },
    fanout: 10_000,
    precisionWrites: 200,
    profileS: 10,
    // Medians of 4 pairs: start-up on a shared machine varies by tens of percent run to run.
    startupRounds: 4,
  },
};

/** Replication lag (WAL written → CDC stored the job and acknowledged) a rate must stay under. */
export const LAG_LIMIT_MS = 1000;
/** A step is sustained only if the writer reached this share of the target rate. */
export const ACHIEVED_SHARE = 0.95;
/**
 * How often the lag probe writes a marker into the WAL: 5 per second gives a max-lag figure
 * to ±200 ms, at a WAL cost nobody notices.
 */
export const LAG_PROBE_INTERVAL_MS = 200;
/** After a step, how long the pipeline may take to drain before the ramp gives up on it. */
export const DRAIN_TIMEOUT_MS = 30_000;
