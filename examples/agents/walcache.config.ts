import { defineConfig } from '@walcache/config';

const agent = ['id', 'name', 'role', 'model', 'active', 'settings'];

/**
 * Agents (examples/agents): an agent by id and by its unique name, the active agents,
 * channels with their message counts, and workflows with their status.
 */
export default defineConfig({
  $schema: '../../packages/config/walcache.config.schema.json',
  resources: {
    agent: {
      table: 'agents',
      by: 'id',
      route: '/v1/agents/{id}',
      columns: agent,
      embed: { channels: { many: 'channels', columns: ['id', 'kind', 'address'] } },
      // The active agents are what a deploy's first users open: cached before they arrive.
      warm: { where: { active: true } },
    },
    'agent-by-name': { table: 'agents', by: 'name', route: '/v1/agents/by-name/{name}', columns: agent },
    'active-agents': {
      table: 'agents',
      route: '/v1/agents',
      list: { filter: { active: true }, order: ['name'], pageSize: { default: 50, max: 200 } },
      columns: ['id', 'name', 'role'],
      warm: true,
    },
    channel: {
      table: 'channels',
      by: 'id',
      route: '/v1/channels/{id}',
      columns: ['id', 'kind', 'address'],
      embed: {
        agent: { one: 'agents', columns: ['id', 'name'] },
        messageCount: { count: 'channel_messages' },
      },
    },
    channels: {
      table: 'channels',
      route: '/v1/channels',
      list: { order: ['id'], pageSize: { default: 50, max: 200 } },
      columns: ['id', 'kind'],
      embed: { messageCount: { count: 'channel_messages' } },
    },
    workflow: { table: 'workflows', by: 'id', route: '/v1/workflows/{id}' },
    // GET /v1/workflows?status=running: the workflows in one status, newest first.
    workflows: {
      table: 'workflows',
      route: '/v1/workflows',
      list: { filter: { status: { param: 'status' } }, order: ['-id'] },
      columns: ['id', 'name', 'status', 'agent_id'],
    },
    'agent-workflows': {
      table: 'workflows',
      route: '/v1/agents/{id}/workflows',
      list: { parent: { table: 'agents', param: 'id' }, order: ['-created_at', '-id'] },
      columns: ['id', 'name', 'status'],
    },
  },
  openapi: { title: 'Agents read API' },
});
