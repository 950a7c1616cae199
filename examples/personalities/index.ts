import { sqlExample } from '../sql-example.ts';

/** Personalities by unique name and by id: schema.sql, seed.sql, walcache.config.ts. */
export const personalitiesExample = sqlExample(
  'personalities',
  new URL('./', import.meta.url),
  'personalities',
);
