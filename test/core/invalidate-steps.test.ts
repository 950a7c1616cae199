/**
 * On one server an invalidation sends its steps back to back (the INCR with the first markers,
 * then the cleanup script that reads the tag sets): a job of more than one marker batch (500 tags) must
 * still raise every marker to its sequence and delete a value registered under a tag of a
 * later batch, whether or not a test seam splits the steps apart; and the markers must still
 * be written before the tag sets are read when Redis has forgotten walcache's scripts.
 */
import { invalidateTags, ReadThroughCache, rowTag } from '@walcache/core';
import { createDb, createPool } from '@walcache/db';
import type { Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';

let servers: Servers;
let redis: Redis;
let db: Db;

beforeAll(async () => {
  servers = await startServers({ users: 10, articles: 5, tags: 2, commentsPerArticle: 1 });
  redis = new Redis(servers.redis.url);
  db = createDb(createPool({ connectionString: servers.pg.url, max: 2 }));
});
afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
  await servers?.stop();
});

it.each([
  ['sent back to back', {}],
  ['split by a test seam', { afterVersions: () => undefined }],
])('a job of 1 201 tags (%s): every marker raised, the value under tag 1 101 deleted', async (_, seams) => {
  const cache = new ReadThroughCache({ redis, db, prefix: `steps${Object.keys(seams).length}` });
  await cache.get(userProfile, { id: '7' });
  expect(await redis.exists(cache.keys.value('user:7'))).toBe(1);
  const tags = Array.from({ length: 1_200 }, (_, i) => rowTag('nowhere', i));
  tags.splice(1_100, 0, rowTag('users', 7));

  const { seq, keys } = await invalidateTags(redis, cache.keys, tags, seams);

  expect(keys).toEqual(['user:7']);
  expect(await redis.exists(cache.keys.value('user:7'))).toBe(0);
  const markers = cache.keys.markerKeys(false);
  const versions = await redis.mget(tags.map((t) => markers.version(t)));
  expect(new Set(versions)).toEqual(new Set([String(seq)]));
  // The next fill caches the value again, under its own sequence.
  await cache.get(userProfile, { id: '7' });
  expect(await redis.exists(cache.keys.value('user:7'))).toBe(1);
});

it('after SCRIPT FLUSH, the sequence and the markers are written before the tag sets are read', async () => {
  const cache = new ReadThroughCache({ redis, db, prefix: 'steps-flushed' });
  await cache.get(userProfile, { id: '8' });
  // The connection has sent the scripts once; then Redis forgets them (an operator's SCRIPT
  // FLUSH): a defined command's EVALSHA would be answered NOSCRIPT and re-sent behind the reads.
  await invalidateTags(redis, cache.keys, [rowTag('users', 8)]);
  await redis.script('FLUSH');
  await cache.get(userProfile, { id: '8' });

  const watcher = await redis.monitor();
  const executed: string[] = [];
  watcher.on('monitor', (_time: string, args: string[], source: string) =>
    executed.push(`${source === 'lua' ? 'lua ' : ''}${String(args[0]).toLowerCase()}`),
  );
  try {
    await invalidateTags(redis, cache.keys, [rowTag('users', 8)]);
    await waitFor(() => executed.includes('lua smembers'), { what: 'the cleanup script in MONITOR' });
  } finally {
    watcher.disconnect();
  }
  const incremented = executed.indexOf('lua incr');
  expect(incremented).toBeGreaterThanOrEqual(0);
  expect(executed.indexOf('lua smembers')).toBeGreaterThan(incremented);
  expect(await redis.exists(cache.keys.value('user:8'))).toBe(0);
});
