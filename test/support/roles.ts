import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';

const operationsDoc = resolve(import.meta.dirname, '../../docs/operations.md');

/** The code block that follows `<!-- marker -->` in docs/operations.md: tests run what the docs say. */
export function docsBlock(marker: string): string {
  const text = readFileSync(operationsDoc, 'utf8');
  const match = new RegExp(`<!-- ${marker} -->\\s*\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\``).exec(text);
  if (!match?.[1]) throw new Error(`docs/operations.md has no code block after <!-- ${marker} -->`);
  return match[1];
}

/** psql's `:"name"` (identifier) and `:'name'` (literal) variables, substituted as psql would. */
export function withPsqlVariables(sql: string, vars: Record<string, string>): string {
  return sql.replace(/:(["'])([a-z_]+)\1/g, (whole, quote: string, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`no value for psql variable ${name} in ${whole}`);
    return quote === '"' ? `"${value.replaceAll('"', '""')}"` : `'${value.replaceAll("'", "''")}'`;
  });
}

export interface LeastPrivilegeRole {
  role: string;
  password: string;
  /** DATABASE_URL for the role: the superuser URL with its user and password replaced. */
  url: string;
}

/**
 * Runs the least-privilege SQL of docs/operations.md as the superuser of `adminUrl`: the
 * documented role, and the publication created ahead of time by the tables' owner.
 */
export async function createLeastPrivilegeRole(
  adminUrl: string,
  options: { role: string; password: string; publication: string },
): Promise<LeastPrivilegeRole> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ db: string }>('select current_database() as db');
    const sql = withPsqlVariables(docsBlock('least-privilege-sql'), {
      role: options.role,
      password: options.password,
      publication: options.publication,
      database: rows[0]?.db ?? 'walcache',
    });
    await admin.query(sql);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.username = options.role;
  url.password = options.password;
  return { role: options.role, password: options.password, url: url.toString() };
}
