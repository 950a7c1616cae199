-- The messaging example: conversations on a channel, and their messages.
create type channel_type as enum ('sms', 'email', 'whatsapp', 'chat');
create type conversation_status as enum ('open', 'snoozed', 'closed');
create type message_direction as enum ('inbound', 'outbound');
create type message_status as enum ('pending', 'sent', 'delivered', 'failed');

create table conversations (
  id bigint generated always as identity primary key,
  participants text[] not null,
  channel channel_type not null,
  status conversation_status not null default 'open',
  title text,
  message_count int not null default 0,
  unread_count int not null default 0,
  last_message_at timestamptz,
  created_at timestamptz not null default now()
);
create table messages (
  id bigint generated always as identity primary key,
  conversation_id bigint not null references conversations (id) on delete cascade,
  provider text not null,
  direction message_direction not null,
  status message_status not null default 'pending',
  from_address text not null,
  to_address text not null,
  body text not null,
  attachments jsonb not null default '[]',
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  delivered_at timestamptz,
  updated_at timestamptz not null default now()
);
-- A conversation's page, newest first, is read by this index.
create index messages_conversation_page on messages (conversation_id, created_at desc, id desc);

-- The embeds and the page watch messages.conversation_id: a message moved to another
-- conversation must invalidate both, and the old value is only in the WAL with FULL.
alter table messages replica identity full;
