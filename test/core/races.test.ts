import { createDb, createPool } from '@walcache/db';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startServers } from '../support/stack.ts';
import { describeFillRaces } from './fill-races.ts';

describeFillRaces('one Redis', async () => {
  const servers = await startServers({ users: 20, articles: 40, tags: 5, commentsPerArticle: 1 });
  const pool = createPool({ connectionString: servers.pg.url, max: 4 });
  const db = createDb(pool);
  const redis = new Redis(servers.redis.url);
  const writer = new pg.Client({ connectionString: servers.pg.url });
  await writer.connect();
  return {
    redis,
    db,
    writer,
    async stop() {
      await writer.end();
      redis.disconnect();
      await db.destroy();
      await servers.stop();
    },
  };
});
