import { defineConfig } from '@walcache/config';

const message = {
  id: 'id',
  conversationId: 'conversation_id',
  provider: 'provider',
  direction: 'direction',
  status: 'status',
  from: 'from_address',
  to: 'to_address',
  body: 'body',
  attachments: 'attachments',
  createdAt: 'created_at',
  sentAt: 'sent_at',
  deliveredAt: 'delivered_at',
};

/**
 * Messaging (examples/messaging): a message by id, a conversation with its latest messages,
 * and a conversation's messages newest first, a page at a time.
 */
export default defineConfig({
  $schema: '../../packages/config/walcache.config.schema.json',
  resources: {
    message: { table: 'messages', by: 'id', route: '/v1/messages/{id}', columns: message },
    conversation: {
      table: 'conversations',
      by: 'id',
      route: '/v1/conversations/{id}',
      columns: {
        id: 'id',
        participants: 'participants',
        channel: 'channel',
        status: 'status',
        title: 'title',
        messageCount: 'message_count',
        unreadCount: 'unread_count',
        lastMessageAt: 'last_message_at',
      },
      embed: {
        latestMessages: {
          many: 'messages',
          order: ['-created_at', '-id'],
          limit: 5,
          columns: {
            id: 'id',
            direction: 'direction',
            status: 'status',
            body: 'body',
            createdAt: 'created_at',
          },
        },
        storedMessages: { count: 'messages' },
      },
    },
    'conversation-messages': {
      table: 'messages',
      route: '/v1/conversations/{id}/messages',
      list: {
        parent: { table: 'conversations', param: 'id' },
        order: ['-created_at', '-id'],
        pageSize: { default: 20, max: 100 },
      },
      columns: message,
    },
  },
  openapi: { title: 'Messaging read API' },
});
