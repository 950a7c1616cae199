import { Validator } from '@seriousme/openapi-schema-validator';

/**
 * Validates a document against the official OpenAPI 3.1 JSON Schema (a validator library,
 * not our own reading of the spec). Returns the problems, empty when valid.
 */
export async function openApiProblems(document: unknown): Promise<string[]> {
  const validator = new Validator();
  const result = await validator.validate(document as Record<string, unknown>);
  if (result.valid) return [];
  const errors = Array.isArray(result.errors) ? result.errors : [result.errors];
  return errors.map((e) => JSON.stringify(e));
}
