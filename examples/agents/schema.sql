-- The agents example: agents, their channels and the messages on each, and their workflows.
create type workflow_status as enum ('pending', 'running', 'done', 'cancelled');

create table agents (
  id bigint generated always as identity primary key,
  name text not null unique,
  role text not null,
  model text not null,
  active boolean not null default true,
  settings jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create table channels (
  id bigint generated always as identity primary key,
  agent_id bigint not null references agents (id) on delete cascade,
  kind text not null,
  address text not null,
  created_at timestamptz not null default now()
);
create table channel_messages (
  id bigint generated always as identity primary key,
  channel_id bigint not null references channels (id) on delete cascade,
  body text not null,
  created_at timestamptz not null default now()
);
create table workflows (
  id bigint generated always as identity primary key,
  agent_id bigint not null references agents (id) on delete cascade,
  name text not null,
  status workflow_status not null default 'pending',
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now()
);
create index on channels (agent_id);
create index on channel_messages (channel_id);
create index on workflows (agent_id, created_at desc);
create index on workflows (status, id);

-- Watched columns (agents.name, channels.agent_id, channel_messages.channel_id,
-- workflows.agent_id and workflows.status): their old values are only in the WAL with FULL.
alter table agents replica identity full;
alter table channels replica identity full;
alter table channel_messages replica identity full;
alter table workflows replica identity full;
