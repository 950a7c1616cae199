import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messagingExample } from '../../examples/messaging/index.ts';
import { type ExampleSystem, startExample } from './support.ts';

/** examples/messaging from its config alone: every change made with plain pg reaches the API. */
let sys: ExampleSystem;

beforeAll(async () => {
  sys = await startExample(messagingExample);
});
afterAll(async () => {
  await sys?.stop();
});

type Msg = { id: string; status: string; body: string; createdAt: string };
const items = (body: Record<string, unknown>) => body.items as Msg[];

describe('the messaging example', () => {
  it('serves a conversation with its latest messages, and its messages newest first by page', async () => {
    const conv = (await sys.read('/v1/conversations/3')).body;
    expect(conv).toMatchObject({
      id: '3',
      participants: ['+15550000003', 'agent-3'],
      channel: 'chat',
      status: 'open',
      title: 'Conversation 3',
      messageCount: 8,
      storedMessages: 8,
    });
    const latest = conv.latestMessages as Msg[];
    expect(latest).toHaveLength(5);
    expect(latest[0]!.body).toBe('Message 8 of conversation 3');

    const whole = items((await sys.read('/v1/conversations/3/messages?limit=8')).body);
    expect(whole.map((m) => m.body)).toEqual(
      [8, 7, 6, 5, 4, 3, 2, 1].map((k) => `Message ${k} of conversation 3`),
    );
    const first = (await sys.read('/v1/conversations/3/messages?limit=5')).body;
    const second = (await sys.read(`/v1/conversations/3/messages?limit=5&cursor=${String(first.nextCursor)}`))
      .body;
    expect([...items(first), ...items(second)]).toEqual(whole);
    expect(second.nextCursor).toBeNull();

    const msg = (await sys.read(`/v1/messages/${whole[5]!.id}`)).body;
    expect(msg).toMatchObject({
      conversationId: '3',
      provider: 'internal',
      attachments: [{ name: 'file3.pdf', bytes: 3000 }],
    });
    expect((await sys.read('/v1/conversations/9999/messages')).status).toBe(404);
  });

  it('a new message shows in its conversation page, latest messages and counts', async () => {
    await sys.cached('/v1/conversations/3');
    await sys.cached('/v1/conversations/3/messages?limit=5');
    // What an application does: the message and the conversation's counters in one transaction.
    await sys.writer.query('begin');
    const { rows } = await sys.writer.query<{ id: string }>(
      `insert into messages (conversation_id, provider, direction, from_address, to_address, body)
       values (3, 'twilio', 'outbound', '+15550000003', 'agent-3', 'Hello again') returning id`,
    );
    await sys.writer.query(
      'update conversations set message_count = message_count + 1, unread_count = unread_count + 1, last_message_at = now() where id = 3',
    );
    await sys.writer.query('commit');
    const id = rows[0]!.id;
    await sys.eventually(
      '/v1/conversations/3/messages?limit=5',
      (r) => items(r.body)[0]?.id === id,
      'the new message first in the page',
    );
    await sys.eventually(
      '/v1/conversations/3',
      (r) =>
        r.body.messageCount === 9 &&
        r.body.storedMessages === 9 &&
        (r.body.latestMessages as Msg[])[0]?.id === id,
      'the conversation counts and latest messages',
    );
  });

  it('a message pending → sent → delivered is fresh after each step, also where embedded', async () => {
    const { rows } = await sys.writer.query<{ id: string }>(
      `insert into messages (conversation_id, provider, direction, from_address, to_address, body)
       values (7, 'meta', 'outbound', 'a', 'b', 'Status walk') returning id`,
    );
    const id = rows[0]!.id;
    await sys.eventually(`/v1/messages/${id}`, (r) => r.status === 200, 'the new message');
    expect((await sys.cached(`/v1/messages/${id}`)).status).toBe('pending');
    for (const [status, stamp] of [
      ['sent', 'sent_at'],
      ['delivered', 'delivered_at'],
    ] as const) {
      await sys.cached(`/v1/messages/${id}`);
      await sys.cached('/v1/conversations/7');
      await sys.writer.query(
        `update messages set status = $1, ${stamp} = now(), updated_at = now() where id = $2`,
        [status, id],
      );
      await sys.eventually(
        `/v1/messages/${id}`,
        (r) => r.body.status === status,
        `the message to be ${status}`,
      );
      await sys.eventually(
        '/v1/conversations/7',
        (r) => (r.body.latestMessages as Msg[]).find((m) => m.id === id)?.status === status,
        `the embedded message to be ${status}`,
      );
    }
    expect((await sys.read(`/v1/messages/${id}`)).body.deliveredAt).toEqual(expect.any(String));
  });

  it('a message moved to another conversation leaves one page and joins the other; DELETE 404s', async () => {
    const moved = items(await sys.cached('/v1/conversations/10/messages'))[0]!;
    await sys.cached('/v1/conversations/11/messages');
    await sys.writer.query('update messages set conversation_id = 11 where id = $1', [moved.id]);
    await sys.eventually(
      '/v1/conversations/10/messages',
      (r) => !items(r.body).some((m) => m.id === moved.id),
      'the message to leave its old conversation',
    );
    await sys.eventually(
      '/v1/conversations/11/messages',
      (r) => items(r.body).some((m) => m.id === moved.id),
      'the message to join the new one',
    );
    await sys.cached(`/v1/messages/${moved.id}`);
    await sys.writer.query('delete from messages where id = $1', [moved.id]);
    await sys.eventually(`/v1/messages/${moved.id}`, (r) => r.status === 404, 'the deleted message');
  });
});
