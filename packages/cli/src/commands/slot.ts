import { readSlot } from '@walcache/auditor';
import { flushNamespace, keyspace } from '@walcache/core';
import { sql } from 'kysely';
import type { Clients } from '../context.ts';
import { CliError, exitCodes, usageError } from '../errors.ts';
import { confirm, formatBytes, formatSeconds, type Io } from '../io.ts';

const WARNING = [
  'WARNING: without the slot, changes committed in Postgres are not streamed to walcache.',
  'Every cached value may then be stale; the whole cache namespace must be flushed before',
  'the CDC resumes (recreate does that; after a drop, the CDC flushes when it creates a new slot).',
].join('\n');

export async function slotCommand(
  clients: Clients,
  io: Io,
  args: string[],
  options: { yes: boolean; json: boolean },
): Promise<void> {
  const [action = 'show', ...extra] = args;
  if (extra.length > 0 || !['show', 'drop', 'recreate'].includes(action))
    throw usageError('slot takes one of: show, drop, recreate');
  const db = await clients.db();
  const name = clients.env.SLOT_NAME;
  const slot = await readSlot(db, name);
  if (action === 'show') {
    if (options.json) io.out(JSON.stringify(slot, null, 2));
    else if (!slot.exists) io.out(`slot ${name} does not exist (the CDC creates it when it starts)`);
    else
      io.out(
        [
          `slot            ${name} (pgoutput)`,
          `streaming       ${slot.active ? `yes, walsender pid ${slot.activePid}` : 'NO: no CDC is connected'}`,
          `wal_status      ${slot.walStatus ?? 'n/a'}`,
          `last acked      ${slot.confirmedFlushLsn ?? 'n/a'} (current WAL ${slot.currentWalLsn})`,
          `lag             ${formatBytes(slot.lagBytes)} (${formatSeconds(slot.lagSeconds)})`,
          `WAL retained    ${formatBytes(slot.retainedWalBytes)}`,
        ].join('\n'),
      );
    if (!slot.exists) throw new CliError('', exitCodes.notFound);
    return;
  }
  if (slot.active)
    throw new CliError(
      `slot ${name} is in use by walsender pid ${slot.activePid} (the CDC): stop the CDC first, then run this again`,
      exitCodes.refused,
    );
  if (action === 'drop' && !slot.exists)
    throw new CliError(`slot ${name} does not exist`, exitCodes.notFound);
  io.err(WARNING);
  await confirm(io, `${action} replication slot "${name}"`, options.yes);
  if (slot.exists) {
    io.err(`dropping slot ${name}…`);
    await sql`select pg_drop_replication_slot(${name})`.execute(db);
  }
  if (action === 'drop') {
    io.out(options.json ? JSON.stringify({ dropped: name }) : `dropped slot ${name}`);
    return;
  }
  // Create first, then flush: every change after the new slot's start is streamed, and every
  // value cached before the flush is gone (a fill that started earlier loses to the flush marker).
  io.err(`creating slot ${name}…`);
  const { rows } = await sql<{
    lsn: string;
  }>`select lsn::text as lsn from pg_create_logical_replication_slot(${name}, 'pgoutput')`.execute(db);
  io.err('flushing the cache namespace…');
  const deleted = await flushNamespace(await clients.cache(), keyspace(clients.env.CACHE_PREFIX), (n) =>
    io.err(`  … ${n} keys deleted`),
  );
  io.out(
    options.json
      ? JSON.stringify({ recreated: name, lsn: rows[0]?.lsn ?? null, flushedKeys: deleted })
      : `recreated slot ${name} at ${rows[0]?.lsn ?? '?'} and flushed ${deleted} cached keys`,
  );
}
