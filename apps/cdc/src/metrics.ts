import type { CdcEvents } from '@walcache/cdc';
import { Counter, Gauge, Histogram, type Registry } from '@walcache/observability';

export function createCdcMetrics(registry: Registry) {
  const r = [registry];
  const commits = new Counter({
    name: 'walcache_cdc_transactions_total',
    help: 'Committed transactions decoded',
    registers: r,
  });
  const changes = new Counter({
    name: 'walcache_cdc_changes_total',
    help: 'Row changes decoded',
    registers: r,
  });
  const tags = new Counter({
    name: 'walcache_cdc_tags_total',
    help: 'Dependency tags emitted (before batching)',
    registers: r,
  });
  const jobs = new Counter({
    name: 'walcache_cdc_jobs_enqueued_total',
    help: 'Invalidation jobs stored in the queue',
    registers: r,
  });
  const batchTransactions = new Histogram({
    name: 'walcache_cdc_batch_transactions',
    help: 'Transactions merged into one job',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000],
    registers: r,
  });
  const batchTags = new Histogram({
    name: 'walcache_cdc_batch_tags',
    help: 'Tags in one job',
    buckets: [1, 5, 10, 50, 100, 500, 1000, 5000, 10000],
    registers: r,
  });
  const enqueueSeconds = new Histogram({
    name: 'walcache_cdc_enqueue_duration_seconds',
    help: 'Time to store one job in Redis',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: r,
  });
  const connected = new Gauge({
    name: 'walcache_cdc_connected',
    help: '1 while streaming from the slot',
    registers: r,
  });
  const reconnects = new Counter({
    name: 'walcache_cdc_reconnects_total',
    help: 'Stream failures followed by a reconnect',
    registers: r,
  });
  const slotRecreations = new Counter({
    name: 'walcache_cdc_slot_recreations_total',
    help: 'Replication slots (re)created, each followed by a full cache flush',
    labelNames: ['reason'] as const,
    registers: r,
  });
  const heartbeatLag = new Gauge({
    name: 'walcache_cdc_replication_lag_seconds',
    help: 'End-to-end lag of the last heartbeat message: written to the WAL → decoded by the CDC',
    registers: r,
  });
  const lastAckedLsn = new Gauge({
    name: 'walcache_cdc_last_acked_lsn',
    help: 'Last acknowledged LSN (as a number)',
    registers: r,
  });
  const lastStoredLsn = new Gauge({
    name: 'walcache_cdc_last_stored_lsn',
    help: 'Last LSN whose job is stored',
    registers: r,
  });
  const lsnNumber = (lsn: string) => {
    const [hi, lo] = lsn.split('/');
    return Number.parseInt(hi ?? '0', 16) * 2 ** 32 + Number.parseInt(lo ?? '0', 16);
  };
  const events: CdcEvents = {
    connected: () => connected.set(1),
    disconnected: () => {
      connected.set(0);
      reconnects.inc();
    },
    transaction: (n, t) => {
      commits.inc();
      changes.inc(n);
      tags.inc(t);
    },
    stored: (batch, ms) => {
      jobs.inc();
      batchTransactions.observe(batch.transactions);
      batchTags.observe(batch.tags.length);
      enqueueSeconds.observe(ms / 1000);
      lastStoredLsn.set(lsnNumber(batch.lsnTo));
    },
    acknowledged: (lsn) => lastAckedLsn.set(lsnNumber(lsn)),
    heartbeat: (lagMs) => heartbeatLag.set(Math.max(0, lagMs) / 1000),
    slotRecreated: (reason) => slotRecreations.inc({ reason }),
  };
  return { events, slotRecreations, connected };
}
