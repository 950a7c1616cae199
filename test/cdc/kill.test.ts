import { startServers, testEnv } from '../support/stack.ts';
import { describeCdcKill } from './kill-run.ts';

// The CDC kill suite (test/cdc/kill-run.ts) on one Redis for the cache and the queue, 10 kills.
describeCdcKill({
  where: 'one Redis',
  cycles: 10,
  start: async () => {
    const servers = await startServers();
    return { env: testEnv(servers), stop: () => servers.stop() };
  },
});
