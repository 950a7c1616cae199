import { z } from 'zod';

/** The parts of an OpenAPI 3.1 document the contract tests read. */
export const openApiDocument = z.object({
  openapi: z.string(),
  paths: z.record(
    z.string(),
    z.record(
      z.string(),
      z.object({
        operationId: z.string(),
        parameters: z
          .array(z.object({ name: z.string(), in: z.string(), required: z.boolean().optional() }))
          .optional(),
        responses: z.record(
          z.string(),
          z.object({
            content: z
              .record(z.string(), z.object({ schema: z.object({ $ref: z.string().optional() }) }))
              .optional(),
            headers: z.record(z.string(), z.unknown()).optional(),
          }),
        ),
      }),
    ),
  ),
  components: z.object({ schemas: z.record(z.string(), z.record(z.string(), z.unknown())) }),
});
export type OpenApiDocument = z.infer<typeof openApiDocument>;

/**
 * Validators built from the served document's JSON (not from the zod objects that generated
 * it): if generation lost a `null`, a format or a required field, the answers stop matching.
 * zod 4's JSON Schema importer does the validation, so no second validator library is needed.
 * Every object is closed (`additionalProperties: false`): an answer with a field the document
 * does not list is a contract change too.
 */
export function documentValidators(doc: OpenApiDocument): (componentName: string) => z.ZodType {
  const defs = closeObjects(
    JSON.parse(JSON.stringify(doc.components.schemas).replaceAll('#/components/schemas/', '#/$defs/')),
  );
  return (name) => {
    if (!(name in doc.components.schemas)) throw new Error(`the document has no schema ${name}`);
    return z.fromJSONSchema({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $defs: defs,
      $ref: `#/$defs/${name}`,
    } as Parameters<typeof z.fromJSONSchema>[0]);
  };
}

function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = closeObjects(v);
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined)
    out.additionalProperties = false;
  return out;
}

/** The component a route's answer refers to, e.g. `ArticleDetail` for GET /v1/articles/{id} 200. */
export function responseComponent(
  doc: OpenApiDocument,
  path: string,
  status: string,
  mediaType: string,
): string {
  const ref = doc.paths[path]?.get?.responses[status]?.content?.[mediaType]?.schema.$ref;
  if (!ref) throw new Error(`the document has no ${status} ${mediaType} answer for GET ${path}`);
  return ref.replace('#/components/schemas/', '');
}
