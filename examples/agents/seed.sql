-- Deterministic: 200 agents (every fourth inactive), 600 channels, 3000 channel messages and
-- 1000 workflows, the same on every run.
insert into agents (name, role, model, active, settings, created_at)
  select 'agent-' || lpad(i::text, 3, '0'),
         (array['support', 'sales', 'triage', 'billing'])[1 + i % 4],
         (array['small', 'medium', 'large'])[1 + i % 3],
         i % 4 <> 0,
         jsonb_build_object('maxTurns', 5 + i % 10, 'languages', jsonb_build_array('en', (array['fr', 'de', 'es'])[1 + i % 3])),
         timestamptz '2025-01-01' + (i || ' hours')::interval
  from generate_series(1, 200) i;
insert into channels (agent_id, kind, address, created_at)
  select 1 + (i - 1) % 200, (array['email', 'sms', 'chat'])[1 + i % 3], 'channel-' || i || '@example.org',
         timestamptz '2025-02-01' + (i || ' minutes')::interval
  from generate_series(1, 600) i;
insert into channel_messages (channel_id, body, created_at)
  select 1 + (i * 7) % 600, 'Message ' || i, timestamptz '2025-03-01' + (i || ' minutes')::interval
  from generate_series(1, 3000) i;
insert into workflows (agent_id, name, status, started_at, finished_at, created_at)
  select 1 + (i * 3) % 200, 'workflow-' || i,
         (array['pending', 'running', 'done', 'cancelled']::workflow_status[])[1 + i % 4],
         case when i % 4 in (1, 2) then timestamptz '2025-04-01' + (i || ' minutes')::interval end,
         case when i % 4 = 2 then timestamptz '2025-04-02' + (i || ' minutes')::interval end,
         timestamptz '2025-04-01' + (i || ' minutes')::interval
  from generate_series(1, 1000) i;
