-- Deterministic: 500 conversations of 8 messages each (4000 messages), the same on every run.
insert into conversations (participants, channel, status, title, created_at)
  select array['+1555' || lpad(i::text, 7, '0'), 'agent-' || (i % 20)],
         (array['sms', 'email', 'whatsapp', 'chat']::channel_type[])[1 + i % 4],
         (array['open', 'snoozed', 'closed']::conversation_status[])[1 + i % 3],
         case when i % 5 = 0 then null else 'Conversation ' || i end,
         timestamptz '2025-01-01' + (i || ' hours')::interval
  from generate_series(1, 500) i;
insert into messages (conversation_id, provider, direction, status, from_address, to_address,
                      body, attachments, created_at, sent_at, delivered_at, updated_at)
  select c, (array['twilio', 'sendgrid', 'meta', 'internal'])[1 + c % 4],
         (array['inbound', 'outbound']::message_direction[])[1 + k % 2],
         (array['delivered', 'delivered', 'sent', 'failed']::message_status[])[1 + (c + k) % 4],
         'from-' || c || '@example.org', 'to-' || c || '@example.org',
         'Message ' || k || ' of conversation ' || c,
         case when k % 3 = 0 then jsonb_build_array(jsonb_build_object('name', 'file' || k || '.pdf', 'bytes', 1000 * k)) else '[]' end,
         timestamptz '2025-01-01' + (c || ' hours')::interval + (k || ' minutes')::interval,
         timestamptz '2025-01-01' + (c || ' hours')::interval + (k || ' minutes')::interval,
         null,
         timestamptz '2025-01-01' + (c || ' hours')::interval + (k || ' minutes')::interval
  from generate_series(1, 500) c, generate_series(1, 8) k;
update conversations c set message_count = m.n, unread_count = m.n % 3, last_message_at = m.last
  from (select conversation_id, count(*)::int n, max(created_at) last from messages group by 1) m
  where m.conversation_id = c.id;
