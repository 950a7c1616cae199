-- The personalities example: one table, looked up by its unique name and by its id.
create table personalities (
  id bigint generated always as identity primary key,
  name text not null unique,
  archetype text not null,
  traits jsonb not null default '{}',
  config jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
-- The lookup by name watches personalities.name: a rename must invalidate the old name too,
-- and the old value is only in the WAL with REPLICA IDENTITY FULL.
alter table personalities replica identity full;
