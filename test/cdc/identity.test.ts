/**
 * Issue 11, item 9: the in-sync marker and the job ids carry the database's identity
 * (system_identifier and timeline). A real point-in-time recovery: Postgres is restored from
 * a cold copy of its data directory and promoted, a new timeline on which a commit the cache
 * already saw never happened. The CDC must notice it streams another history and flush the
 * cache before streaming, and the jobs of the new timeline carry its number.
 */
import { execFileSync } from 'node:child_process';
import { appendFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '@walcache/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Pipeline, startPipeline } from '../core/pipeline.ts';
import { userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';

let servers: Servers;
let p: Pipeline;
let backup: string;

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 5, tags: 2, commentsPerArticle: 1 });
  // No auditor: it would find and delete the stale value itself, hiding what this test checks.
  p = await startPipeline(servers, { sentinelUser: '10', invalidator: { auditor: false } });
  backup = `${servers.pg.dataDir}-backup`;
});

afterAll(async () => {
  await p?.stop();
  await servers?.stop();
  if (backup) await rm(backup, { recursive: true, force: true });
});

/** `cp -a`: the server may run as another user (`postgres` when we are root), who must keep owning its files. */
function copyDir(from: string, to: string): void {
  execFileSync('cp', ['-a', from, to]);
}

const timeline = async () => {
  const { rows } = await p.writer.query<{ f: string }>('select pg_walfile_name(pg_current_wal_lsn()) as f');
  return Number.parseInt(rows[0]!.f.slice(0, 8), 16);
};

it('after a PITR to a new timeline the cache is flushed, and new jobs name the timeline', async () => {
  await p.cache.get(userProfile, { id: '3' });
  await p.drain();
  // A cold backup, taken while the CDC is in sync.
  await p.writer.end();
  await servers.pg.stopServer();
  copyDir(servers.pg.dataDir, backup);
  await servers.pg.startServer();
  await p.reconnectWriter();
  await waitFor(() => p.cdc.stream.state === 'streaming', {
    timeoutMs: 30_000,
    what: 'the CDC to stream again',
  });

  // A commit after the backup: the cache follows it (refresh policy: the new name is cached).
  await p.writer.query("update users set name = 'after the backup' where id = 3");
  await p.drain();
  await p.cache.get(userProfile, { id: '3' });
  expect(JSON.parse((await p.cached('user:3'))!).name).toBe('after the backup');
  const before = await timeline();

  // Restore: the backup, through archive recovery (no archive, no target: it replays the WAL
  // it has and ends recovery on a new timeline, as a PITR does).
  await p.writer.end();
  await servers.pg.stopServer();
  await rm(servers.pg.dataDir, { recursive: true, force: true });
  copyDir(backup, servers.pg.dataDir);
  await writeFile(join(servers.pg.dataDir, 'recovery.signal'), '');
  await appendFile(join(servers.pg.dataDir, 'postgresql.auto.conf'), "\nrestore_command = 'false'\n");
  await servers.pg.startServer();
  await p.reconnectWriter();
  await waitFor(
    async () =>
      (await p.writer.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r === false,
    { timeoutMs: 30_000, what: 'the restored server to be promoted' },
  );
  expect(await timeline()).toBeGreaterThan(before);
  await waitFor(() => p.cdc.stream.state === 'streaming', {
    timeoutMs: 30_000,
    what: 'the CDC to stream again',
  });
  await p.drain();

  // The commit the cache saw is gone from this history: nothing cached may still show it.
  const fresh = JSON.stringify(await userProfile.load(p.db, { id: '3' }));
  expect(JSON.parse(fresh).name).not.toBe('after the backup');
  const held = await p.cached('user:3');
  expect(held === null || held === fresh).toBe(true);

  // Jobs of the new timeline carry it in their id.
  await p.writer.query("update users set name = 'on the new timeline' where id = 4");
  await p.drain();
  const jobs = await p.invalidator.queue.getJobs(['completed'], 0, 50);
  const tl = await timeline();
  expect(jobs.some((j) => j.id?.includes(`-${tl}-`))).toBe(true);
});
