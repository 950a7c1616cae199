import { createServer, type RequestListener, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { METRICS_HOST, type StartingServer } from './starting.ts';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * `/metrics` and `/healthz` for the processes that have no HTTP API of their own (CDC,
 * invalidator). `health` reports the process's own view (e.g. "streaming"). `port` is a port
 * to listen on, or the port the program's entry already took (listenWhileStarting), which
 * answered 503 `starting` until now.
 */
export async function startMetricsServer(
  registry: Registry,
  port: number | StartingServer,
  health: () => Record<string, unknown> = () => ({ status: 'ok' }),
  host = METRICS_HOST,
): Promise<MetricsServer> {
  const handler: RequestListener = async (req, res) => {
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
  };
  let server: Server;
  if (typeof port === 'object') server = port.serve(handler);
  else {
    const s = createServer(handler);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => resolve());
    });
    server = s;
  }
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : typeof port === 'number' ? port : 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
