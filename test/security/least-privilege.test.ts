import { randomBytes } from 'node:crypto';
import { CdcSetupError } from '@walcache/cdc';
import { ConnectionConfigError } from '@walcache/config';
import { silentLogger } from '@walcache/observability';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../../apps/api/src/main.ts';
import { startInvalidator } from '../../apps/invalidator/src/main.ts';
import { createLeastPrivilegeRole, type LeastPrivilegeRole } from '../support/roles.ts';
import { type Servers, startServers, testEnv } from '../support/stack.ts';
import { cdcFailure } from './support.ts';

// The end-to-end suite (test/e2e) runs as the documented role; here each missing privilege
// is taken away from it in turn and every process must stop with the statement that fixes it.

let servers: Servers;
let admin: pg.Client;

beforeAll(async () => {
  servers = await startServers();
  admin = new pg.Client({ connectionString: servers.pg.url });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  await servers?.stop();
});

async function documentedRole(): Promise<{ role: LeastPrivilegeRole; env: ReturnType<typeof testEnv> }> {
  const id = randomBytes(4).toString('hex');
  const publication = `walcache_lp_${id}`;
  const role = await createLeastPrivilegeRole(servers.pg.url, {
    role: `walcache_app_${id}`,
    password: randomBytes(12).toString('hex'),
    publication,
  });
  return { role, env: testEnv(servers, { DATABASE_URL: role.url, PUBLICATION_NAME: publication }) };
}

describe('the documented role', () => {
  it('is no superuser, has REPLICATION and can emit the heartbeat message', async () => {
    const { role } = await documentedRole();
    const client = new pg.Client({ connectionString: role.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        'select rolsuper, rolreplication from pg_roles where rolname = current_user',
      );
      expect(rows[0]).toEqual({ rolsuper: false, rolreplication: true });
      await client.query("select pg_logical_emit_message(false, 'walcache.test', 'x')");
    } finally {
      await client.end();
    }
  });
});

describe('a missing privilege stops the process with the statement that fixes it', () => {
  it('REPLICATION: the CDC names ALTER ROLE … REPLICATION', async () => {
    const { role, env } = await documentedRole();
    await admin.query(`alter role ${role.role} noreplication`);
    const error = await cdcFailure(env);
    expect(error).toBeInstanceOf(CdcSetupError);
    expect(error.message).toContain(`role ${role.role} lacks the REPLICATION attribute`);
    expect(error.message).toContain(`ALTER ROLE ${role.role} REPLICATION;`);
  });

  it('SELECT on a published table: the api, the invalidator and the CDC name the GRANT', async () => {
    const { role, env } = await documentedRole();
    await admin.query(`revoke select on comments from ${role.role}`);
    const fix = `GRANT SELECT ON public.comments TO ${role.role};`;
    await expect(startApi(env, silentLogger())).rejects.toThrow(ConnectionConfigError);
    await expect(startApi(env, silentLogger())).rejects.toThrow(fix);
    await expect(startInvalidator(env, silentLogger())).rejects.toThrow(fix);
    const error = await cdcFailure(env);
    expect(error).toBeInstanceOf(ConnectionConfigError);
    expect(error.message).toContain(`role ${role.role} lacks SELECT on public.comments`);
    expect(error.message).toContain(fix);
  });

  it('no publication and no right to create one: the CDC names the CREATE PUBLICATION for the owner', async () => {
    const { role, env } = await documentedRole();
    await admin.query(`drop publication ${env.PUBLICATION_NAME}`);
    const error = await cdcFailure(env);
    expect(error).toBeInstanceOf(CdcSetupError);
    expect(error.message).toContain(
      `publication ${env.PUBLICATION_NAME} does not exist and role ${role.role} cannot create it`,
    );
    expect(error.message).toMatch(
      /it lacks CREATE on database walcache and ownership of public\.article_tags/,
    );
    expect(error.message).toContain(
      `as the tables' owner, create it ahead of time: CREATE PUBLICATION ${env.PUBLICATION_NAME} FOR TABLE`,
    );
  });

  it('CREATE on the database alone is not enough: the tables must be owned, the message says so', async () => {
    const { role, env } = await documentedRole();
    await admin.query(`drop publication ${env.PUBLICATION_NAME}`);
    await admin.query(`grant create on database walcache to ${role.role}`);
    const error = await cdcFailure(env);
    expect(error.message).toContain('it lacks ownership of public.article_tags');
    expect(error.message).not.toContain('CREATE on database');
  });

  it('a table missing from the pre-created publication: the CDC names the ALTER PUBLICATION', async () => {
    const { role, env } = await documentedRole();
    await admin.query(`alter publication ${env.PUBLICATION_NAME} drop table comments`);
    const error = await cdcFailure(env);
    expect(error).toBeInstanceOf(CdcSetupError);
    expect(error.message).toContain(`role ${role.role} may not add them`);
    expect(error.message).toContain(`ALTER PUBLICATION ${env.PUBLICATION_NAME} ADD TABLE public.comments;`);
  });

  it('CONNECT on the database: every process names the GRANT CONNECT', async () => {
    const { role, env } = await documentedRole();
    await admin.query(`revoke connect on database walcache from public, ${role.role}`);
    try {
      await expect(startApi(env, silentLogger())).rejects.toThrow(
        /DATABASE_URL: the role may not connect to the database .*GRANT CONNECT ON DATABASE/,
      );
      await expect(startInvalidator(env, silentLogger())).rejects.toThrow(/GRANT CONNECT ON DATABASE/);
      const error = await cdcFailure(env);
      expect(error).toBeInstanceOf(ConnectionConfigError);
      expect(error.message).toMatch(/GRANT CONNECT ON DATABASE/);
    } finally {
      await admin.query(`grant connect on database walcache to public`);
    }
  });
});
