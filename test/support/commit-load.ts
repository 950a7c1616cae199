/**
 * A writer in its own process, as a team's other services would be: plain `pg`, knowing
 * nothing of walcache, committing single-row UPDATEs at a steady rate until stdin closes
 * (its parent ended it, or died). Prints `COMMITS <n>` when it stops.
 *
 *   node --import tsx test/support/commit-load.ts <database url> <commits/s> <first id> <last id>
 */
import pg from 'pg';

const [url, rateText, firstText, lastText] = process.argv.slice(2);
const rate = Number(rateText);
const first = Number(firstText);
const last = Number(lastText);
if (!url || !(rate > 0) || !(last >= first)) {
  process.stderr.write('usage: commit-load.ts <database url> <commits/s> <first id> <last id>\n');
  process.exit(2);
}

const CLIENTS = 4;
let stopping = false;
let commits = 0;
process.stdin.on('end', () => {
  stopping = true;
});
process.stdin.resume();

const clients = await Promise.all(
  Array.from({ length: CLIENTS }, async () => {
    const client = new pg.Client({ connectionString: url, application_name: 'walcache-test-commit-load' });
    await client.connect();
    // Postgres' default (test servers turn it off): each commit is flushed before it returns.
    await client.query('set synchronous_commit = on');
    return client;
  }),
);
const started = performance.now();
await Promise.all(
  clients.map(async (client, k) => {
    // Each client owns every CLIENTS-th slot of the schedule: together they commit `rate` a second.
    for (let n = k; !stopping; n += CLIENTS) {
      const due = started + (n * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const id = first + (n % (last - first + 1));
      await client.query('update articles set body = $1 where id = $2', [`load ${n}`, id]);
      commits += 1;
    }
  }),
);
await Promise.all(clients.map((c) => c.end()));
process.stdout.write(
  `COMMITS ${commits} ${((commits * 1000) / (performance.now() - started)).toFixed(0)}/s\n`,
);
