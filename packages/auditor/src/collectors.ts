import { withTimeout } from '@walcache/core';
import { Counter, Gauge, type Logger, type Registry } from '@walcache/observability';
import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import { QUEUE_STATES, type QueueCounts, readQueueCounts } from './queue.ts';
import { readSlot, type SlotInfo } from './slot.ts';

export interface OpsCollectorDeps<DB> {
  queue: Queue;
  /** Reads pg_replication_slots; omit it to export only the queue gauges. */
  db?: Kysely<DB>;
  slotName: string;
  logger: Logger;
}

/**
 * Why 2 s: Prometheus' default scrape timeout is 10 s; a dead Redis or Postgres must cost a
 * scrape at most this, and every other metric of the process is still reported.
 */
const COLLECT_TIMEOUT_MS = 2_000;

/**
 * Gauges read at scrape time from the queue Redis (BullMQ job counts, oldest pending job)
 * and from Postgres (the replication slot's lag and retained WAL). Registered by the
 * invalidator; any number may run, so dashboards use max() over instances.
 */
export function registerOpsCollectors<DB>(registry: Registry, deps: OpsCollectorDeps<DB>): void {
  const registers = [registry];
  const errors = new Counter({
    name: 'walcache_ops_collect_errors_total',
    help: 'Scrape-time reads of the queue or the slot that failed (the gauges are left empty)',
    labelNames: ['source'] as const,
    registers,
  });
  const queueName = deps.queue.name;
  const queueSnapshot = shared(async () => withTimeout(readQueueCounts(deps.queue), COLLECT_TIMEOUT_MS));
  const slotSnapshot = shared(async () =>
    deps.db ? withTimeout(readSlot(deps.db, deps.slotName), COLLECT_TIMEOUT_MS) : undefined,
  );

  const fromQueue =
    <L extends string>(gauge: Gauge<L>, set: (q: QueueCounts) => void) =>
    async () => {
      gauge.reset();
      try {
        set(await queueSnapshot());
      } catch (error) {
        errors.inc({ source: 'queue' });
        deps.logger.warn({ err: error, queue: queueName }, 'could not read the queue for /metrics');
      }
    };
  const fromSlot =
    <L extends string>(gauge: Gauge<L>, set: (s: SlotInfo) => void) =>
    async () => {
      gauge.reset();
      try {
        const slot = await slotSnapshot();
        if (slot) set(slot);
      } catch (error) {
        errors.inc({ source: 'slot' });
        deps.logger.warn(
          { err: error, slot: deps.slotName },
          'could not read the replication slot for /metrics',
        );
      }
    };

  const jobs = new Gauge({
    name: 'walcache_queue_jobs',
    help: 'Invalidation jobs in the BullMQ queue by state',
    labelNames: ['queue', 'state'] as const,
    registers,
  });
  bindCollect(
    jobs,
    fromQueue(jobs, (q) => {
      for (const state of QUEUE_STATES) jobs.set({ queue: queueName, state }, q.counts[state]);
    }),
  );
  const oldest = new Gauge({
    name: 'walcache_queue_oldest_pending_age_seconds',
    help: 'Age of the oldest job waiting for a worker (0 when none waits)',
    labelNames: ['queue'] as const,
    registers,
  });
  bindCollect(
    oldest,
    fromQueue(oldest, (q) => oldest.set({ queue: queueName }, q.oldestPendingAgeSeconds ?? 0)),
  );

  if (!deps.db) return;
  const slotGauge = (name: string, help: string, value: (s: SlotInfo) => number | null) => {
    const gauge = new Gauge({ name, help, labelNames: ['slot'] as const, registers });
    bindCollect(
      gauge,
      fromSlot(gauge, (s) => {
        const v = value(s);
        if (v !== null) gauge.set({ slot: deps.slotName }, v);
      }),
    );
  };
  slotGauge('walcache_replication_slot_exists', '1 when the replication slot exists', (s) =>
    s.exists ? 1 : 0,
  );
  slotGauge('walcache_replication_slot_active', '1 while a CDC process streams from the slot', (s) =>
    s.active ? 1 : 0,
  );
  slotGauge(
    'walcache_replication_slot_lag_bytes',
    'WAL bytes written after the last acknowledged LSN (not yet turned into stored jobs)',
    (s) => s.lagBytes,
  );
  slotGauge(
    'walcache_replication_slot_retained_wal_bytes',
    'WAL bytes Postgres keeps on disk for the slot (from its restart_lsn)',
    (s) => s.retainedWalBytes,
  );
}

function bindCollect<L extends string>(gauge: Gauge<L>, collect: () => Promise<void>): void {
  // prom-client calls `collect` with the gauge as `this` before each scrape.
  (gauge as unknown as { collect: () => Promise<void> }).collect = collect;
}

/**
 * Shares one read between the gauges of one scrape: prom-client calls every collect() in the
 * same tick, so they all join the read in flight. Nothing is kept once it settles, so each
 * scrape sees fresh numbers.
 */
function shared<T>(read: () => Promise<T>): () => Promise<T> {
  let inflight: Promise<T> | undefined;
  return () => {
    inflight ??= read().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };
}
