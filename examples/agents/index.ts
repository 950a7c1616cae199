import { sqlExample } from '../sql-example.ts';

/** Agents, their channels and workflows: schema.sql, seed.sql, walcache.config.ts. */
export const agentsExample = sqlExample('agents', new URL('./', import.meta.url), 'agents');
