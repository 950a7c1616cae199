import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentsExample } from '../../examples/agents/index.ts';
import { type ExampleSystem, startExample } from './support.ts';

/** examples/agents from its config alone: every change made with plain pg reaches the API. */
let sys: ExampleSystem;

beforeAll(async () => {
  sys = await startExample(agentsExample);
});
afterAll(async () => {
  await sys?.stop();
});

type Row = { id: string; name: string; status: string; messageCount: number };
const items = (body: Record<string, unknown>) => body.items as Row[];
const names = (body: Record<string, unknown>) => items(body).map((a) => a.name);

describe('the agents example', () => {
  it('serves agents by id and name, the active agents, channels with counts, workflows by status', async () => {
    const byId = (await sys.read('/v1/agents/5')).body;
    expect(byId).toMatchObject({ id: '5', name: 'agent-005', role: 'sales', model: 'large', active: true });
    expect(byId.settings).toEqual({ maxTurns: 10, languages: ['en', 'es'] });
    expect(byId.channels).toHaveLength(3);
    expect((await sys.read('/v1/agents/by-name/agent-005')).body).toEqual(
      expect.objectContaining({ id: '5', settings: byId.settings }),
    );
    const active = (await sys.read('/v1/agents?limit=5')).body;
    expect(names(active)).toEqual(['agent-001', 'agent-002', 'agent-003', 'agent-005', 'agent-006']);
    const channels = items((await sys.read('/v1/channels?limit=200')).body);
    expect(channels).toHaveLength(200);
    expect(channels.every((c) => c.messageCount === 5)).toBe(true); // 3000 messages over 600 channels
    expect((await sys.read('/v1/channels/1')).body).toMatchObject({ agent: { name: 'agent-001' } });
    const running = items((await sys.read('/v1/workflows?status=running&limit=3')).body);
    expect(running.map((w) => w.status)).toEqual(['running', 'running', 'running']);
    expect((await sys.read('/v1/workflows?status=paused')).status).toBe(400);
  });

  it('deactivating an agent removes it from the active list; reactivating one adds it', async () => {
    await sys.cached('/v1/agents?limit=5');
    await sys.writer.query("update agents set active = false where name = 'agent-001'");
    await sys.writer.query("update agents set active = true where name = 'agent-004'");
    await sys.eventually(
      '/v1/agents?limit=5',
      (r) => names(r.body).join() === 'agent-002,agent-003,agent-004,agent-005,agent-006',
      'the active list without agent-001 and with agent-004',
    );
    expect((await sys.read('/v1/agents/1')).body.active).toBe(false);
  });

  it('renaming an agent: the old name 404s, the new one resolves', async () => {
    await sys.cached('/v1/agents/by-name/agent-010');
    await sys.writer.query("update agents set name = 'concierge' where name = 'agent-010'");
    await sys.eventually('/v1/agents/by-name/agent-010', (r) => r.status === 404, 'the old name to 404');
    await sys.eventually('/v1/agents/by-name/concierge', (r) => r.body.id === '10', 'the new name');
  });

  it('a new channel message counts on the channel and in the channel list; a new channel shows on its agent', async () => {
    const before = (await sys.cached('/v1/channels/5')).messageCount as number;
    const listed = items(await sys.cached('/v1/channels?limit=10')).find((c) => c.id === '5')!;
    expect(listed.messageCount).toBe(before);
    await sys.writer.query("insert into channel_messages (channel_id, body) values (5, 'ping')");
    await sys.eventually('/v1/channels/5', (r) => r.body.messageCount === before + 1, 'the channel count');
    await sys.eventually(
      '/v1/channels?limit=10',
      (r) => items(r.body).find((c) => c.id === '5')?.messageCount === before + 1,
      'the count in the channel list',
    );
    await sys.cached('/v1/agents/7');
    await sys.writer.query(
      "insert into channels (agent_id, kind, address) values (7, 'chat', 'new@example.org')",
    );
    await sys.eventually(
      '/v1/agents/7',
      (r) => (r.body.channels as { address: string }[]).some((c) => c.address === 'new@example.org'),
      'the new channel on its agent',
    );
  });

  it('a workflow pending → running → done is fresh after each step, by id, by agent and by status', async () => {
    const { rows } = await sys.writer.query<{ id: string }>(
      "insert into workflows (agent_id, name) values (2, 'fresh') returning id",
    );
    const id = rows[0]!.id;
    await sys.eventually(`/v1/workflows/${id}`, (r) => r.body.status === 'pending', 'the new workflow');
    await sys.eventually(
      '/v1/workflows?status=pending&limit=1',
      (r) => items(r.body)[0]?.id === id,
      'the new workflow first among the pending',
    );
    let from = 'pending';
    for (const status of ['running', 'done']) {
      await sys.cached(`/v1/workflows/${id}`);
      await sys.cached('/v1/agents/2/workflows?limit=1');
      await sys.cached(`/v1/workflows?status=${from}&limit=1`);
      await sys.cached(`/v1/workflows?status=${status}&limit=1`);
      await sys.writer.query('update workflows set status = $1 where id = $2', [status, id]);
      await sys.eventually(`/v1/workflows/${id}`, (r) => r.body.status === status, `the workflow ${status}`);
      await sys.eventually(
        '/v1/agents/2/workflows?limit=1',
        (r) => items(r.body)[0]?.status === status,
        `the agent's workflow ${status}`,
      );
      await sys.eventually(
        `/v1/workflows?status=${from}&limit=1`,
        (r) => items(r.body)[0]?.id !== id,
        `the workflow to leave ${from}`,
      );
      await sys.eventually(
        `/v1/workflows?status=${status}&limit=1`,
        (r) => items(r.body)[0]?.id === id,
        `the workflow to join ${status}`,
      );
      from = status;
    }
  });
});
