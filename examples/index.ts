import type { Kysely } from 'kysely';
import { agentsExample } from './agents/index.ts';
import { blogExample } from './blog/index.ts';
import { messagingExample } from './messaging/index.ts';
import { personalitiesExample } from './personalities/index.ts';

/** An example system: its config file, and its schema and data for a database handed to it. */
export interface Example {
  name: string;
  configPath: string;
  setup<DB>(db: Kysely<DB>, size?: false): Promise<{ applied: string[]; seeded: boolean }>;
}

/** The bundled examples, by the name `npm start -- --example NAME` takes. */
export const examples: Record<string, Example> = {
  agents: agentsExample,
  blog: blogExample,
  messaging: messagingExample,
  personalities: personalitiesExample,
};
