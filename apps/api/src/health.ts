import type { RedisClient } from '@walcache/core';
import { withTimeout } from '@walcache/core';
import type { Db } from '@walcache/resources';
import { sql } from 'kysely';
import { limits } from './limits.ts';

export type CdcLag =
  | { status: 'ok' | 'lagging'; lagBytes: number; active: boolean; thresholdBytes: number }
  | { status: 'no-slot' }
  | { status: 'unknown'; error: string };

export interface Readiness {
  ready: boolean;
  status: 'ready' | 'unavailable' | 'draining';
  checks: { postgres: string; redis: string; cdc: CdcLag };
}

/**
 * /readyz: ready when Postgres and Redis answer. The CDC slot's lag is reported (`lagging`
 * above `limits.cdcLagWarnBytes`) but never fails readiness: the API still answers
 * correctly, invalidations are only late, and taking every API instance out of rotation
 * for a slow CDC would turn late invalidation into an outage.
 */
export async function checkReadiness(deps: {
  db: Db;
  redis: RedisClient;
  slotName?: string;
  draining: boolean;
  lagWarnBytes?: number;
}): Promise<Readiness> {
  const lagWarnBytes = deps.lagWarnBytes ?? limits.cdcLagWarnBytes;
  const [postgres, redis, cdc] = await Promise.all([
    withTimeout(sql`select 1`.execute(deps.db), limits.readinessCheckMs).then(() => 'ok', errorText),
    withTimeout(deps.redis.ping(), limits.readinessCheckMs).then(() => 'ok', errorText),
    deps.slotName
      ? withTimeout(slotLag(deps.db, deps.slotName, lagWarnBytes), limits.readinessCheckMs).catch(
          (error: unknown): CdcLag => ({ status: 'unknown', error: errorText(error) }),
        )
      : Promise.resolve<CdcLag>({ status: 'no-slot' }),
  ]);
  const reachable = postgres === 'ok' && redis === 'ok';
  return {
    ready: reachable && !deps.draining,
    status: deps.draining ? 'draining' : reachable ? 'ready' : 'unavailable',
    checks: { postgres, redis, cdc },
  };
}

/**
 * WAL bytes between the server's current position and what the CDC acknowledged: one row
 * of pg_replication_slots, no scan of the WAL.
 */
async function slotLag(db: Db, slotName: string, warnBytes: number): Promise<CdcLag> {
  const { rows } = await sql<{ lag_bytes: string | null; active: boolean }>`
    select (pg_current_wal_lsn() - confirmed_flush_lsn)::text as lag_bytes, active
    from pg_replication_slots where slot_name = ${slotName}`.execute(db);
  const row = rows[0];
  if (!row || row.lag_bytes === null) return { status: 'no-slot' };
  const lagBytes = Number(row.lag_bytes);
  return {
    status: lagBytes > warnBytes ? 'lagging' : 'ok',
    lagBytes,
    active: row.active,
    thresholdBytes: warnBytes,
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
