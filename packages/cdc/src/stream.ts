import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionConfigError, permanentConnectionFailure } from '@walcache/config';
import {
  bigIntToLsn,
  compareLsn,
  lsnToBigInt,
  normalizeLsn,
  type SourceIdentity,
  sourceKey,
  withTimeout,
} from '@walcache/core';
import { pgConnectionConfig } from '@walcache/db';
import type { Logger } from '@walcache/observability';
import { LogicalReplicationService, type Pgoutput } from 'pg-logical-replication';
import { type Batch, Batcher, type TagLimit, TxTags } from './batcher.ts';
import { type BootstrapOptions, bootstrapReplication, CdcSetupError, type SqlClient } from './bootstrap.ts';
import type { TagMapper } from './changes.ts';
import { pgoutputWithTextValues } from './text-values.ts';

export const HEARTBEAT_PREFIX = 'walcache.heartbeat';

/**
 * Why the cache is flushed before streaming:
 * - `created`: a new slot (first start, or nothing proved the cache was in sync with a slot),
 * - `dropped`: the slot the cache was in sync with is gone (dropped by hand, a failover),
 * - `invalidated`: Postgres removed WAL the slot still needed (`max_slot_wal_keep_size`),
 * - `unverified`: the slot exists but the cache never recorded being in sync with it (a
 *   crash between creating a slot and finishing its flush, or the marker was evicted),
 * - `moved`: the cache was in sync with another database history: another cluster (a
 *   re-initdb, a restore elsewhere) or another timeline (a failover, a PITR). Commits the
 *   cache saw may not exist here, and this history's commits were never streamed to it.
 */
export type SlotResetReason = 'created' | 'dropped' | 'invalidated' | 'unverified' | 'moved';

export interface CdcEvents {
  connected?(slot: string): void;
  disconnected?(reason: string): void;
  state?(state: CdcState): void;
  transaction?(changes: number, tags: number): void;
  stored?(batch: Batch, ms: number): void;
  acknowledged?(lsn: string): void;
  /** Decode lag of a heartbeat message: written to the WAL → decoded here. */
  heartbeat?(lagMs: number): void;
  /** WAL the slot still holds (bytes) and the age of the oldest unacknowledged heartbeat (s). */
  slotLag?(bytes: number, seconds: number): void;
  slotRecreated?(reason: SlotResetReason): void;
  cacheFlushed?(reason: SlotResetReason): void;
  tableCollapsed?(table: string): void;
}

/**
 * Remembers, next to the cache, that the cache is in sync with the current slot, and with
 * which database history (`sourceKey`: system identifier and timeline). Cleared before a
 * slot is (re)created and set only after the flush that follows, so a crash in between makes
 * the next start flush again instead of trusting a cache that missed changes.
 */
export interface SlotSyncMarker {
  /** The recorded source key, or null when the cache never recorded being in sync. */
  get(): Promise<string | null>;
  set(source: string): Promise<void>;
  clear(): Promise<void>;
}

export interface CdcStreamOptions extends BootstrapOptions {
  /**
   * The replication connection (a dedicated `replication=database` connection is opened
   * from it), with the same TLS settings as the pools (pgConnectionConfig).
   */
  connectionString: string;
  /**
   * Ordinary queries: bootstrap, heartbeats, lag. A small pg.Pool built in main.ts: it
   * reconnects by itself after a Postgres restart.
   */
  db: SqlClient;
  mapper: TagMapper;
  /** Stores one batch as a job; must throw unless the job is durably in Redis. */
  store(batch: Batch, source: SourceIdentity): Promise<void>;
  /** Deletes every cached value: run before streaming from a new slot (changes may be lost). */
  flushCache(reason: SlotResetReason): Promise<void>;
  slotMarker?: SlotSyncMarker;
  logger: Logger;
  events?: CdcEvents;
  /** How often to write a heartbeat message into the WAL (lag measurement, WAL release); 0 = off. */
  heartbeatIntervalMs?: number;
  /** How often to read the slot's lag in bytes from Postgres; 0 = off. */
  lagIntervalMs?: number;
  maxTagsPerTable?: TagLimit;
  maxTagsPerJob?: number;
  /** Coalescing of commits into jobs (Batcher's minStoreIntervalMs). */
  minStoreIntervalMs?: number;
  /** streamTimings.ackIntervalMs; 0 acknowledges every stored job at once. */
  ackIntervalMs?: number;
  /** A store that takes longer fails (not acked, replayed after a reconnect). */
  storeTimeoutMs?: number;
  /** No message at all (data or keepalive) for this long: the connection is presumed dead. */
  idleTimeoutMs?: number;
  /** Graceful stop: how long the in-flight enqueue may take before it is abandoned (not acked). */
  stopFlushMs?: number;
  /** Reconnect backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Test seam: awaited before each store, to hold a batch while a test inspects the slot. */
  beforeStore?(batch: Batch): Promise<void> | void;
  /**
   * Read-your-writes (core watermark.ts): every commit in `(after, to]` needs no
   * invalidation beyond the jobs already stored before `after` (empty transactions,
   * heartbeats, keepalive positions). Called in LSN order; may be coalesced by the callee.
   */
  progressed?(after: string, to: string): void;
  /**
   * Once per connection, before streaming: the slot position it streams from, and whether
   * the cache was just flushed (then every commit up to it is reflected by any later fill).
   */
  streamingFrom?(position: string, flushed: boolean): Promise<void>;
}

export type CdcState = 'starting' | 'streaming' | 'standby' | 'reconnecting' | 'stopped';

/** Named timings of the stream, each with the reason for its value. */
export const streamTimings = {
  /** 10 s: lag resolution an operator can alert on, one tiny WAL record per beat. */
  heartbeatIntervalMs: 10_000,
  /** 5 s: a Prometheus scrape interval; the query is a single catalog read. */
  lagIntervalMs: 5_000,
  /**
   * 15 s: far above a healthy enqueue (a millisecond) and above ioredis' reconnect of a
   * restarting Redis, yet a Redis that accepts the connection but never answers cannot hold
   * the stream, or a shutdown, forever. A timed-out batch is not acked and is replayed.
   */
  storeTimeoutMs: 15_000,
  /**
   * 90 s: Postgres asks for a reply every wal_sender_timeout/2 (30 s by default) and our own
   * heartbeat writes a message every 10 s, so silence this long means a dead connection
   * without a TCP error (a network partition).
   */
  idleTimeoutMs: 90_000,
  /** 200 ms first retry: a Postgres restart is usually back within a second. */
  minBackoffMs: 200,
  /** 5 s cap: a standby should take over within seconds of the active CDC dying. */
  maxBackoffMs: 5_000,
  /** A connection that streamed this long was healthy: the next failure starts backoff over. */
  healthyAfterMs: 30_000,
  /** Graceful stop: how long the in-flight enqueue may take before it is abandoned (not acked);
   * with closeConnectionMs it stays inside onShutdown's 15 s deadline. */
  stopFlushMs: 8_000,
  /** Closing the replication connection; a dead socket must not hang the exit. */
  closeConnectionMs: 5_000,
  /** Heartbeats remembered for the lag-in-seconds gauge (the oldest are what matter). */
  maxPendingBeats: 1_000,
  /**
   * 20 ms between two acknowledgements of stored jobs, at most: each one is a write on the
   * replication socket and a wake-up of the walsender, a fixed cost per store that was 4 % of
   * the CDC's CPU at 100–2 500 commits/s (docs/benchmarks.md). The slot's position is only
   * read back by Postgres (WAL it may recycle) and by a restart (where to resume), so a later
   * ack costs nothing but a few more commits replayed, and deduplicated, after a crash. A
   * reply Postgres asks for, and the last ack of a graceful stop, go at once.
   */
  ackIntervalMs: 20,
} as const;

interface Session {
  service: LogicalReplicationService;
  batcher: Batcher;
  tx: TxTags | undefined;
  /** The open transaction's xid, from its Begin message. */
  xid: number | undefined;
  lastMessageMs: number;
  /** Sends the acknowledgement a coalescing timer still holds back (graceful stop). */
  flushAck(): void;
}

/**
 * The WAL reader. Owns the reconnect loop: on any failure (Postgres restart, network drop,
 * Redis outage making a store fail) it stops streaming, waits with backoff and resumes
 * from the slot. Only LSNs whose job is stored are ever acknowledged, so a restart replays
 * and never skips.
 */
export class CdcStream {
  state: CdcState = 'starting';
  /** Last LSN whose job is stored (and so acknowledged). */
  lastStoredLsn: string | null = null;
  lastReceivedLsn: string | null = null;
  /** Last slot lag read from Postgres, for /healthz and /ops. */
  lag: { bytes: number; seconds: number } | null = null;
  /** The database history being streamed, read at each connect. */
  source: SourceIdentity | undefined;
  private stopping = false;
  /** Whether this connection's prepareSlot flushed the cache (streamingFrom reports it). */
  private flushedAtConnect = false;
  private session: Session | undefined;
  private timers: NodeJS.Timeout[] = [];
  private wake: (() => void) | undefined;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;
  private pendingBeats: { lsn: bigint; sentMs: number }[] = [];

  constructor(private readonly options: CdcStreamOptions) {
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
  }

  /** Runs until stop(); never throws for a recoverable failure, only for a setup error. */
  async run(): Promise<void> {
    const o = this.options;
    const minBackoff = o.minBackoffMs ?? streamTimings.minBackoffMs;
    let backoff = minBackoff;
    try {
      while (!this.stopping) {
        const startedAt = Date.now();
        try {
          await this.streamOnce();
        } catch (error) {
          if (error instanceof CdcSetupError || error instanceof ConnectionConfigError) throw error;
          if (this.stopping) break;
          // A wrong password or an untrusted certificate does not heal: stop with the reason
          // instead of a reconnect loop that looks like an outage.
          const permanent = permanentConnectionFailure(error, 'DATABASE_URL', 'postgres');
          if (permanent) throw permanent;
          const message = error instanceof Error ? error.message : String(error);
          if (/replication slot .* is active/i.test(message)) {
            if (this.state !== 'standby')
              o.logger.info(
                { slot: o.slotName },
                'slot is in use by another CDC process; waiting as standby',
              );
            this.setState('standby');
          } else {
            this.setState('reconnecting');
            o.logger.warn({ err: error }, 'replication stream failed; reconnecting');
            o.events?.disconnected?.(message);
          }
        }
        if (this.stopping) break;
        if (Date.now() - startedAt > streamTimings.healthyAfterMs) backoff = minBackoff;
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, o.maxBackoffMs ?? streamTimings.maxBackoffMs);
      }
    } finally {
      this.clearTimers();
      this.setState('stopped');
      this.resolveDone();
    }
  }

  /**
   * Stops reading, stores the in-flight batch and acknowledges it, closes the stream. A store
   * that hangs is abandoned after `stopFlushMs` without an ack: it is replayed on the next start.
   */
  async stop(): Promise<void> {
    const o = this.options;
    const log = o.logger;
    this.stopping = true;
    this.wake?.();
    this.clearTimers();
    const session = this.session;
    if (session) {
      // From here the data handler ignores messages: what was received but not committed
      // to the batcher is replayed from the slot by the next start.
      try {
        await withTimeout(session.batcher.flush(), o.stopFlushMs ?? streamTimings.stopFlushMs, 'final store');
      } catch (error) {
        log.warn({ err: error }, 'final store did not finish; it will be replayed from the slot');
      }
      session.flushAck();
      session.batcher.close();
      await this.closeService(session.service);
    }
    try {
      // The loop ends once the connection is closed; bounded so a wedged socket cannot hold the exit.
      await withTimeout(this.done, streamTimings.closeConnectionMs, 'the stream loop to end');
    } catch (error) {
      log.warn({ err: error }, 'the replication loop did not end; exiting anyway');
    }
  }

  private setState(state: CdcState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.events?.state?.(state);
  }

  private clearTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private async closeService(service: LogicalReplicationService): Promise<void> {
    try {
      await withTimeout(
        service.stop(),
        streamTimings.closeConnectionMs,
        'closing the replication connection',
      );
    } catch (error) {
      this.options.logger.warn({ err: error }, 'replication connection did not close cleanly');
    }
  }

  private async sleep(ms: number): Promise<void> {
    const ac = new AbortController();
    await Promise.race([
      // The abort below (after a wake-up) rejects the timer; that is the expected way out.
      sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined),
      new Promise<void>((r) => {
        this.wake = r;
      }),
    ]);
    ac.abort();
  }

  /**
   * Acknowledges exactly `lsn` as flushed. pg-logical-replication reports `lsn + 1`; Postgres
   * resumes decoding at the confirmed LSN and skips a transaction whose commit record starts
   * before it, and the next commit record may start exactly at this commit's end. Reporting
   * `end + 1` would let a crash lose that next transaction, so we pass `lsn - 1`.
   */
  private ack(service: LogicalReplicationService, lsn: string): void {
    const exact = bigIntToLsn(lsnToBigInt(lsn) - 1n);
    void service.acknowledge(exact).then(
      (sent) => {
        if (sent) this.options.events?.acknowledged?.(lsn);
      },
      (error: unknown) => this.options.logger.warn({ err: error, lsn }, 'acknowledgement not sent'),
    );
  }

  private async streamOnce(): Promise<void> {
    const o = this.options;
    const confirmed = await this.prepareSlot();
    if (this.stopping) return;
    if (confirmed && (!this.lastStoredLsn || compareLsn(confirmed, this.lastStoredLsn) > 0))
      this.lastStoredLsn = confirmed;
    // What this connection may acknowledge: the slot's own position, then stored batches.
    let ackable: string | null = confirmed;
    // Where the next job's interval begins: the slot position, then the end of each stored job.
    let lastJobEnd: string | null = confirmed;
    if (confirmed) await o.streamingFrom?.(confirmed, this.flushedAtConnect);

    let failure: unknown;
    const service = new LogicalReplicationService(
      { ...pgConnectionConfig(o.connectionString), application_name: 'walcache-cdc' },
      // timeoutSeconds 0: the library's timer would ack the last *received* LSN (#174).
      // flowControl: a slow handler pauses the socket instead of buffering without bound.
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    const fail = (error: unknown) => {
      if (this.stopping) return;
      failure ??= error;
      void this.closeService(service);
    };
    // Acknowledgements of stored jobs, at most one per ackIntervalMs (streamTimings).
    const ackIntervalMs = o.ackIntervalMs ?? streamTimings.ackIntervalMs;
    let lastAckMs = Number.NEGATIVE_INFINITY;
    let ackTimer: NodeJS.Timeout | undefined;
    const ackNow = () => {
      clearTimeout(ackTimer);
      ackTimer = undefined;
      lastAckMs = performance.now();
      if (ackable) this.ack(service, ackable);
    };
    const ackSoon = () => {
      const wait = lastAckMs + ackIntervalMs - performance.now();
      if (wait <= 0) ackNow();
      else ackTimer ??= setTimeout(ackNow, wait);
    };
    const storeTimeoutMs = o.storeTimeoutMs ?? streamTimings.storeTimeoutMs;
    const batcher = new Batcher({
      maxTagsPerTable: o.maxTagsPerTable,
      maxTagsPerJob: o.maxTagsPerJob,
      minStoreIntervalMs: o.minStoreIntervalMs,
      store: async (batch) => {
        await o.beforeStore?.(batch);
        if (batch.tags.length === 0) return;
        const started = performance.now();
        const source = this.source;
        if (!source) throw new Error('no database identity: the slot was not prepared');
        const covered = lastJobEnd ? { ...batch, after: lastJobEnd } : batch;
        await withTimeout(o.store(covered, source), storeTimeoutMs, 'storing the invalidation job');
        o.events?.stored?.(batch, performance.now() - started);
      },
      stored: (lsn, batch) => {
        if (!this.lastStoredLsn || compareLsn(lsn, this.lastStoredLsn) > 0) this.lastStoredLsn = lsn;
        if (batch.tags.length > 0) lastJobEnd = lsn;
        else if (lastJobEnd) o.progressed?.(lastJobEnd, lsn);
        ackable = lsn;
        ackSoon();
      },
      // A failed store stops this connection at once: its transactions are replayed from the
      // slot, and nothing after them may be acked in the meantime.
      failed: (error) => fail(error),
    });
    const session: Session = {
      service,
      batcher,
      tx: undefined,
      xid: undefined,
      lastMessageMs: Date.now(),
      flushAck: () => {
        if (ackTimer) ackNow();
      },
    };
    this.session = session;

    service.on('data', async (lsn: string, message: Pgoutput.Message) => {
      session.lastMessageMs = Date.now();
      if (this.stopping || failure) return;
      this.lastReceivedLsn = lsn;
      await this.handle(session, message, lsn);
    });
    service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      session.lastMessageMs = Date.now();
      if (this.stopping) return;
      // A keepalive carries the server's sent position. When every message before it has
      // been handled and stored (no open transaction, nothing queued in the library, the
      // batcher idle), everything up to that position is safe and is confirmed — as
      // Postgres' own subscriber does. Without this, WAL of unpublished tables past our last
      // commit is never confirmed, and a fast shutdown of Postgres waits forever for the
      // walsender, which waits for exactly that confirmation.
      const library = service as unknown as { _messageQueue?: unknown[]; _processing?: boolean };
      const caughtUp =
        failure === undefined &&
        session.tx === undefined &&
        !library._processing &&
        (library._messageQueue?.length ?? 0) === 0 &&
        batcher.pendingCount === 0 &&
        !batcher.busy;
      const sent = normalizeLsn(lsn);
      const advance = caughtUp && ackable !== null && compareLsn(sent, ackable) > 0;
      if (advance) {
        ackable = sent;
        if (!this.lastStoredLsn || compareLsn(sent, this.lastStoredLsn) > 0) this.lastStoredLsn = sent;
        if (lastJobEnd) o.progressed?.(lastJobEnd, sent);
      }
      // Reply when asked, or when the position moved (releases WAL of busy unpublished tables
      // without waiting for the next reply request); otherwise the last *stored* LSN.
      if (shouldRespond || advance) ackNow();
    });
    service.on('error', (error: Error) => fail(error));
    service.on('start', () => {
      if (this.stopping) {
        // stop() raced the connect: it found no connection to close, so close it here.
        void this.closeService(service);
        return;
      }
      this.setState('streaming');
      o.logger.info({ slot: o.slotName, lsn: confirmed }, 'streaming changes');
      o.events?.connected?.(o.slotName);
      this.startTimers(session, fail);
    });

    try {
      const plugin = pgoutputWithTextValues({
        protoVersion: 1,
        publicationNames: [o.publicationName],
        messages: true,
      });
      if (this.stopping) return;
      await service.subscribe(plugin, o.slotName);
    } catch (error) {
      failure ??= error;
    } finally {
      this.clearTimers();
      // Nothing more is acked on this connection: what a timer held back is replayed.
      clearTimeout(ackTimer);
      ackTimer = undefined;
      // Let a store still in flight settle (bounded by its timeout) before the next
      // connection starts, so two connections never ack concurrently.
      if (!this.stopping) {
        batcher.close();
        // A store failure here is already this connection's `failure` (reported via `failed`).
        await batcher.flush().catch(() => undefined);
      }
      if (this.session === session) this.session = undefined;
    }
    if (!this.stopping) throw failure ?? new Error('replication stream ended');
  }

  private async handle(session: Session, message: Pgoutput.Message, lsn: string): Promise<void> {
    const o = this.options;
    switch (message.tag) {
      case 'begin':
        session.tx = new TxTags(o.maxTagsPerTable);
        session.xid = message.xid;
        return;
      case 'relation': {
        for (const table of o.mapper.observeRelation(message)) {
          o.logger.warn(
            { table, relation: message.name },
            'schema change on a tracked table; invalidating it',
          );
          session.tx?.collapse(table);
        }
        return;
      }
      case 'insert':
      case 'update':
      case 'delete': {
        const tx = session.tx;
        if (!tx || !o.mapper.isTracked(message.relation)) return;
        const oldRow = message.tag === 'insert' ? null : (message.old ?? message.key);
        const newRow = message.tag === 'delete' ? null : message.new;
        const table = o.mapper.trackedName(message.relation) ?? message.relation.name;
        tx.changes += 1;
        if (tx.collapsedTables.has(table)) return;
        let tags: string[];
        try {
          tags = o.mapper.tagsOf(message.tag, message.relation, oldRow, newRow);
        } catch (error) {
          // A row we cannot map must still invalidate: fall back to the whole table.
          o.logger.warn({ err: error, table }, 'unmappable row change; invalidating the whole table');
          tx.collapse(table);
          return;
        }
        // Every tag of a row change names the table it was mapped for.
        for (const tag of tags) tx.add(tag, table);
        if (tx.collapsedTables.has(table)) o.events?.tableCollapsed?.(table);
        return;
      }
      case 'truncate': {
        const tx = session.tx;
        if (!tx) return;
        for (const relation of message.relations) {
          if (!relation || !o.mapper.isTracked(relation)) continue;
          tx.collapse(o.mapper.trackedName(relation) ?? relation.name);
        }
        tx.changes += 1;
        return;
      }
      case 'commit': {
        const current = session.tx ?? new TxTags(o.maxTagsPerTable);
        const xid = session.xid;
        session.tx = undefined;
        session.xid = undefined;
        o.events?.transaction?.(current.changes, current.size);
        // Empty transactions go through the batcher too: their LSN is acked in order.
        await session.batcher.add({
          tags: current.toSet(),
          endLsn: normalizeLsn(message.commitEndLsn ?? lsn),
          // commitTime is a BigInt of microseconds since the Unix epoch.
          commitMs: Number((message.commitTime as bigint) / 1000n),
          xid,
        });
        return;
      }
      case 'message':
        if (message.prefix === HEARTBEAT_PREFIX && !message.transactional) {
          const sent = Number(Buffer.from(message.content).toString('utf8'));
          if (Number.isFinite(sent)) o.events?.heartbeat?.(Date.now() - sent);
          // Acked in order like a commit: it lets the slot advance while our tables are idle.
          await session.batcher.add({
            tags: new Set(),
            endLsn: normalizeLsn(message.messageLsn ?? lsn),
            commitMs: Number.isFinite(sent) ? sent : Date.now(),
          });
        }
        return;
      default:
        return;
    }
  }

  /** Heartbeats, lag reads and the idle watchdog: only while this connection streams. */
  private startTimers(session: Session, fail: (error: unknown) => void): void {
    const o = this.options;
    const heartbeatMs = o.heartbeatIntervalMs ?? streamTimings.heartbeatIntervalMs;
    if (heartbeatMs > 0) {
      const beat = async () => {
        try {
          const sentMs = Date.now();
          const { rows } = await o.db.query<{ lsn: string }>(
            'select pg_logical_emit_message(false, $1, $2)::text as lsn',
            [HEARTBEAT_PREFIX, String(sentMs)],
          );
          const lsn = rows[0]?.lsn;
          if (lsn && this.pendingBeats.length < streamTimings.maxPendingBeats)
            this.pendingBeats.push({ lsn: lsnToBigInt(lsn), sentMs });
        } catch (error) {
          // Not fatal: a missed beat only delays lag data. The stream's own failure handling
          // notices a dead Postgres.
          o.logger.warn({ err: error }, 'heartbeat failed');
        }
      };
      this.timers.push(setInterval(() => void beat(), heartbeatMs));
      void beat();
    }
    const lagMs = o.lagIntervalMs ?? streamTimings.lagIntervalMs;
    if (lagMs > 0) {
      const read = async () => {
        try {
          const { rows } = await o.db.query<{ bytes: string | null }>(
            `select (pg_current_wal_lsn() - confirmed_flush_lsn)::text as bytes
             from pg_replication_slots where slot_name = $1`,
            [o.slotName],
          );
          const bytes = Math.max(0, Number(rows[0]?.bytes ?? 0));
          const seconds = this.lagSeconds();
          this.lag = { bytes, seconds };
          o.events?.slotLag?.(bytes, seconds);
        } catch (error) {
          o.logger.warn({ err: error }, 'reading the slot lag failed');
        }
      };
      this.timers.push(setInterval(() => void read(), lagMs));
      void read();
    }
    const idleMs = o.idleTimeoutMs ?? streamTimings.idleTimeoutMs;
    if (idleMs > 0) {
      this.timers.push(
        setInterval(
          () => {
            if (Date.now() - session.lastMessageMs > idleMs)
              fail(new Error(`no message from Postgres for ${idleMs} ms; reconnecting`));
          },
          Math.min(idleMs, 5_000),
        ),
      );
    }
    for (const t of this.timers) t.unref();
  }

  /** Age of the oldest heartbeat written but not yet acknowledged: lag in seconds, end to end. */
  private lagSeconds(): number {
    const stored = this.lastStoredLsn ? lsnToBigInt(this.lastStoredLsn) : -1n;
    this.pendingBeats = this.pendingBeats.filter((b) => b.lsn > stored);
    const oldest = this.pendingBeats[0];
    return oldest ? Math.max(0, Date.now() - oldest.sentMs) / 1000 : 0;
  }

  /** Creates what is missing; a new or recreated slot means changes may have been missed. */
  private async prepareSlot(): Promise<string | null> {
    const o = this.options;
    const { rows } = await o.db.query<{ wal_status: string | null }>(
      'select wal_status from pg_replication_slots where slot_name = $1',
      [o.slotName],
    );
    const existing = rows[0];
    const recorded = o.slotMarker ? await o.slotMarker.get() : null;
    let reason: SlotResetReason | undefined;
    if (existing?.wal_status === 'lost') {
      reason = 'invalidated';
      await o.slotMarker?.clear();
      o.logger.error(
        { slot: o.slotName },
        'replication slot was invalidated (WAL removed before it was read); recreating it and flushing the whole cache',
      );
      await o.db.query('select pg_drop_replication_slot($1)', [o.slotName]);
    } else if (!existing) {
      // Cleared before the slot exists: a crash before the flush below makes the next start flush.
      await o.slotMarker?.clear();
    }
    const result = await bootstrapReplication(o.db, o);
    o.mapper.setPrimaryKeys(result.primaryKeys);
    o.mapper.setRelationOids(result.relationOids);
    this.source = result.identity;
    const source = sourceKey(result.identity);
    const inSync = !o.slotMarker || recorded === source;
    if (result.slotCreated) {
      reason ??= o.slotMarker && recorded !== null ? 'dropped' : 'created';
      if (reason === 'created')
        o.logger.warn(
          { slot: o.slotName },
          'replication slot created: flushing the cache namespace before streaming',
        );
      else
        o.logger.error(
          { slot: o.slotName, reason },
          'replication slot was lost and is recreated: changes may have been missed, flushing the whole cache before streaming',
        );
      o.events?.slotRecreated?.(reason);
    } else if (!inSync && recorded === null) {
      reason = 'unverified';
      o.logger.warn(
        { slot: o.slotName },
        'the cache never recorded being in sync with this slot: flushing it before streaming',
      );
    } else if (!inSync) {
      reason = 'moved';
      o.logger.error(
        { slot: o.slotName, was: recorded, now: source },
        'the database is another cluster or timeline than the one the cache was in sync with (re-initdb, PITR, failover): flushing the whole cache before streaming',
      );
    }
    this.flushedAtConnect = reason !== undefined;
    if (reason) {
      await o.flushCache(reason);
      o.events?.cacheFlushed?.(reason);
      await o.slotMarker?.set(source);
    }
    return result.confirmedFlushLsn ? normalizeLsn(result.confirmedFlushLsn) : null;
  }
}
