import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * `/metrics` and `/healthz` for the processes that have no HTTP API of their own (CDC,
 * invalidator). `health` reports the process's own view (e.g. "streaming").
 */
export async function startMetricsServer(
  registry: Registry,
  port: number,
  health: () => Record<string, unknown> = () => ({ status: 'ok' }),
  host = '0.0.0.0',
): Promise<MetricsServer> {
  const server: Server = createServer(async (req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(await registry.metrics());
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(health()));
    } else {
      res.writeHead(404, { 'content-type': 'application/problem+json' });
      res.end(
        JSON.stringify({ type: 'https://walcache.dev/problems/not-found', title: 'Not found', status: 404 }),
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
