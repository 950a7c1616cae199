import { sqlExample } from '../sql-example.ts';

/** Conversations and their messages: schema.sql, seed.sql, walcache.config.ts. */
export const messagingExample = sqlExample('messaging', new URL('./', import.meta.url), 'conversations');
