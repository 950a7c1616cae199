import { setTimeout as sleep } from 'node:timers/promises';
import { bigIntToLsn, lsnToBigInt } from '@walcache/core';
import type { Logger } from '@walcache/observability';
import pg from 'pg';
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import { type Batch, Batcher } from './batcher.ts';
import { type BootstrapOptions, bootstrapReplication, CdcSetupError } from './bootstrap.ts';
import type { TagMapper } from './changes.ts';

export const HEARTBEAT_PREFIX = 'walcache.heartbeat';

export interface CdcEvents {
  connected?(slot: string): void;
  disconnected?(reason: string): void;
  transaction?(changes: number, tags: number): void;
  stored?(batch: Batch, ms: number): void;
  acknowledged?(lsn: string): void;
  heartbeat?(lagMs: number): void;
  slotRecreated?(reason: string): void;
}

export interface CdcStreamOptions extends BootstrapOptions {
  connectionString: string;
  mapper: TagMapper;
  /** Stores one batch as a job; must throw unless the job is durably in Redis. */
  store(batch: Batch): Promise<void>;
  /** Deletes every cached value: run before streaming from a new slot (changes may be lost). */
  flushCache(reason: string): Promise<void>;
  logger: Logger;
  events?: CdcEvents;
  /** How often to write a heartbeat message into the WAL (lag measurement, WAL release). */
  heartbeatIntervalMs?: number;
  maxTagsPerTable?: number | ((table: string) => number);
  /** Reconnect backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export type CdcState = 'starting' | 'streaming' | 'standby' | 'reconnecting' | 'stopped';

/**
 * The WAL reader. Owns the reconnect loop: on any failure (Postgres restart, network drop,
 * Redis outage making a store fail) it stops streaming, waits with backoff and resumes
 * from the slot. Only LSNs whose job is stored are ever acknowledged, so a restart replays
 * and never skips.
 */
export class CdcStream {
  state: CdcState = 'starting';
  lastStoredLsn: string | null = null;
  lastReceivedLsn: string | null = null;
  private stopping = false;
  private service: LogicalReplicationService | undefined;
  private batcher: Batcher | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(private readonly options: CdcStreamOptions) {
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
  }

  /** Runs until stop(); never throws for a recoverable failure, only for a setup error. */
  async run(): Promise<void> {
    let backoff = this.options.minBackoffMs ?? 200;
    const log = this.options.logger;
    try {
      while (!this.stopping) {
        const startedAt = Date.now();
        try {
          await this.streamOnce();
        } catch (error) {
          if (error instanceof CdcSetupError) throw error;
          if (this.stopping) break;
          const message = error instanceof Error ? error.message : String(error);
          if (/replication slot .* is active/i.test(message)) {
            if (this.state !== 'standby')
              log.info(
                { slot: this.options.slotName },
                'slot is in use by another CDC process; waiting as standby',
              );
            this.state = 'standby';
          } else {
            this.state = 'reconnecting';
            log.warn({ err: error }, 'replication stream failed; reconnecting');
          }
          this.options.events?.disconnected?.(message);
        }
        if (this.stopping) break;
        if (Date.now() - startedAt > 30_000) backoff = this.options.minBackoffMs ?? 200;
        await this.sleep(backoff);
        // Why capped at 5 s: a standby should take over within seconds of the active CDC dying.
        backoff = Math.min(backoff * 2, this.options.maxBackoffMs ?? 5_000);
      }
    } finally {
      this.state = 'stopped';
      this.resolveDone();
    }
  }

  /** Stops reading, stores the in-flight batch, acknowledges it, and closes the stream. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    clearInterval(this.heartbeatTimer);
    const service = this.service;
    if (service) {
      // Pause reading first, then let the batcher store and ack what was received.
      (
        service as unknown as { _connection?: { stream?: { pause?(): void } } }
      )._connection?.stream?.pause?.();
      await this.batcher
        ?.flush()
        .catch((error) =>
          this.options.logger.warn({ err: error }, 'final store failed; it will be replayed'),
        );
      await service.stop().catch(() => {});
    }
    await this.done;
  }

  private async sleep(ms: number): Promise<void> {
    await Promise.race([sleep(ms), new Promise<void>((r) => (this.wake = r))]);
  }

  private async streamOnce(): Promise<void> {
    const o = this.options;
    const admin = new pg.Client({
      connectionString: o.connectionString,
      application_name: 'walcache-cdc-admin',
    });
    admin.on('error', () => {});
    await admin.connect();
    let confirmed: string | null;
    try {
      confirmed = await this.prepareSlot(admin);
    } finally {
      await admin.end().catch(() => {});
    }
    this.lastStoredLsn = confirmed;

    let failure: unknown;
    const service = new LogicalReplicationService(
      { connectionString: o.connectionString, application_name: 'walcache-cdc' },
      // timeoutSeconds 0: the library's timer would ack the last *received* LSN (#174).
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    const batcher = new Batcher({
      maxTagsPerTable: o.maxTagsPerTable,
      store: async (batch) => {
        if (batch.tags.length === 0) return;
        const started = performance.now();
        await o.store(batch);
        o.events?.stored?.(batch, performance.now() - started);
      },
      stored: (lsn) => {
        this.lastStoredLsn = lsn;
        void service.acknowledge(lsn).then(() => o.events?.acknowledged?.(lsn));
      },
    });
    this.service = service;
    this.batcher = batcher;

    let tx: { tags: Set<string>; changes: number } | undefined;
    service.on('data', async (lsn: string, message: Pgoutput.Message) => {
      this.lastReceivedLsn = lsn;
      switch (message.tag) {
        case 'begin':
          tx = { tags: new Set(), changes: 0 };
          return;
        case 'insert':
        case 'update':
        case 'delete': {
          if (!tx || !o.mapper.isTracked(message.relation)) return;
          const oldRow = message.tag === 'insert' ? null : (message.old ?? message.key);
          const newRow = message.tag === 'delete' ? null : message.new;
          let tags: string[];
          try {
            tags = o.mapper.tagsOf(message.tag, message.relation, oldRow, newRow);
          } catch (error) {
            // A row we cannot map must still invalidate: fall back to the whole table.
            o.logger.warn(
              { err: error, table: message.relation.name },
              'unmappable row change; invalidating the whole table',
            );
            tags = o.mapper.tagsOfTruncate(message.relation);
          }
          for (const tag of tags) tx.tags.add(tag);
          tx.changes += 1;
          return;
        }
        case 'truncate':
          if (!tx) return;
          for (const relation of message.relations) {
            if (o.mapper.isTracked(relation))
              for (const tag of o.mapper.tagsOfTruncate(relation)) tx.tags.add(tag);
          }
          tx.changes += 1;
          return;
        case 'commit': {
          const current = tx ?? { tags: new Set<string>(), changes: 0 };
          tx = undefined;
          o.events?.transaction?.(current.changes, current.tags.size);
          // Empty transactions go through the batcher too: their LSN is acked in order.
          await batcher.add({
            tags: current.tags,
            endLsn: normalizeLsn(message.commitEndLsn ?? lsn),
            // commitTime is a BigInt of microseconds since the Unix epoch.
            commitMs: Number((message.commitTime as bigint) / 1000n),
          });
          return;
        }
        case 'message':
          if (message.prefix === HEARTBEAT_PREFIX && !message.transactional) {
            const sent = Number(Buffer.from(message.content).toString('utf8'));
            if (Number.isFinite(sent)) o.events?.heartbeat?.(Date.now() - sent);
            await batcher.add({
              tags: new Set(),
              endLsn: normalizeLsn(message.messageLsn ?? lsn),
              commitMs: Date.now(),
            });
          }
          return;
        default:
          return;
      }
    });
    service.on('heartbeat', async (_lsn: string, _ts: number, shouldRespond: boolean) => {
      // Answer keepalives with the last *stored* LSN, never the last received one.
      if (shouldRespond && this.lastStoredLsn) await service.acknowledge(this.lastStoredLsn);
    });
    service.on('error', (error: Error) => {
      failure ??= error;
      void service.stop();
    });
    service.on('start', () => {
      this.state = 'streaming';
      o.logger.info({ slot: o.slotName, lsn: confirmed }, 'streaming changes');
      o.events?.connected?.(o.slotName);
    });

    this.startHeartbeat();
    try {
      const plugin = new PgoutputPlugin({
        protoVersion: 1,
        publicationNames: [o.publicationName],
        messages: true,
      });
      await service.subscribe(plugin, o.slotName);
    } finally {
      clearInterval(this.heartbeatTimer);
      this.service = undefined;
    }
    if (!this.stopping) throw failure ?? new Error('replication stream ended');
  }

  /** Creates what is missing; a new or recreated slot means changes may have been missed. */
  private async prepareSlot(admin: pg.Client): Promise<string | null> {
    const o = this.options;
    const { rows } = await admin.query<{ wal_status: string | null; active_pid: number | null }>(
      'select wal_status, active_pid from pg_replication_slots where slot_name = $1',
      [o.slotName],
    );
    if (rows[0]?.wal_status === 'lost') {
      o.logger.error(
        { slot: o.slotName },
        'replication slot was invalidated (WAL removed); recreating it and flushing the cache',
      );
      await admin.query('select pg_drop_replication_slot($1)', [o.slotName]);
      o.events?.slotRecreated?.('invalidated');
    }
    const result = await bootstrapReplication(admin, o);
    o.mapper.setPrimaryKeys(result.primaryKeys);
    if (result.slotCreated) {
      const reason = rows[0] ? 'slot invalidated' : 'slot created';
      if (rows[0])
        o.logger.error(
          { slot: o.slotName },
          'replication slot recreated: flushing the whole cache before streaming',
        );
      else
        o.logger.warn(
          { slot: o.slotName },
          'replication slot created: flushing the cache namespace before streaming',
        );
      await o.flushCache(reason);
    }
    return result.confirmedFlushLsn;
  }

  private startHeartbeat(): void {
    const interval = this.options.heartbeatIntervalMs ?? 10_000;
    if (interval <= 0) return;
    clearInterval(this.heartbeatTimer);
    const beat = async () => {
      const client = new pg.Client({
        connectionString: this.options.connectionString,
        application_name: 'walcache-heartbeat',
      });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('select pg_logical_emit_message(false, $1, $2)', [
          HEARTBEAT_PREFIX,
          String(Date.now()),
        ]);
      } catch (error) {
        this.options.logger.debug({ err: error }, 'heartbeat failed');
      } finally {
        await client.end().catch(() => {});
      }
    };
    this.heartbeatTimer = setInterval(() => void beat(), interval);
    this.heartbeatTimer.unref();
  }
}

/** pgoutput pads LSNs (`00000000/01982E00`); everything else uses Postgres' own `0/1982E00`. */
function normalizeLsn(lsn: string): string {
  return bigIntToLsn(lsnToBigInt(lsn));
}
