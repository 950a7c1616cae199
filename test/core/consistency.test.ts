import { describeConsistency } from './consistency-suite.ts';

// On one Redis (the one startServers starts), cache and queue together.
describeConsistency('one Redis', 200, async () => undefined);
