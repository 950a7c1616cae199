import { z } from '@hono/zod-openapi';
import { problemTypes } from './problem.ts';

/**
 * The parts of the HTTP contract that no resource declares: the problem body. The answers'
 * schemas are derived from the config (packages/resources) and the catalog's types.
 */

export const ProblemSchema = z
  .object({
    type: z.enum(Object.values(problemTypes) as [string, ...string[]]).openapi({
      description: 'Stable URI naming the kind of problem: switch on this, never on `title` or `detail`.',
    }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().openapi({ description: 'the request path' }),
    errors: z
      .array(
        z.object({
          parameter: z.string().openapi({ example: 'id' }),
          in: z.enum(['path', 'query']),
          message: z.string(),
        }),
      )
      .optional()
      .openapi({ description: '400 only: one entry per invalid parameter' }),
  })
  .openapi('Problem', { description: 'RFC 9457 problem details (application/problem+json).' });

export type ProblemBody = z.infer<typeof ProblemSchema>;
