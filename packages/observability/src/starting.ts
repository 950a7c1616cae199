import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';

/**
 * The HTTP port of a process that is still starting. A program's entry (apps/<app>/src/bin.ts)
 * takes its port first, before it loads the npm packages and connects, which is most of a
 * start; until the app hands its own request handler over, every request is answered 503
 * `starting` with `Retry-After`, so a prober (a load balancer, a container runtime, a
 * Prometheus scrape) learns at once that the process is there and not ready, instead of
 * waiting on a refused connection. Only node:http here: this module is what loads before
 * the port is taken.
 */
export interface StartingServer {
  /** The listening server; the app keeps it (and closes it when it stops). */
  readonly server: Server;
  /** Every request from now on goes to `listener`: the start-up answers end. */
  serve(listener: RequestListener): Server;
}

/** Where the CDC's and the invalidator's metrics port listens: every interface (a scraper's). */
export const METRICS_HOST = '0.0.0.0';

/** RFC 9457 `type` of the start-up answer (docs/api.md, "Errors"); never rename it. */
export const STARTING_PROBLEM_TYPE = 'https://walcache.dev/problems/starting';

/**
 * Why 1 s: from its bundle an app is ready well under a second after it took its port
 * (BENCHMARKS.md, start-up); a client retrying sooner would only get this answer again.
 */
const RETRY_AFTER_S = 1;

/**
 * Listens on `port` (0: any free port) and `host`, answering 503 until `serve` is called.
 * Undefined when the port cannot be taken (in use, a host that is not this machine's): the
 * app then listens by itself once started, and fails there as it always did, with the same
 * error at the same point.
 */
export async function listenWhileStarting(
  app: string,
  port: number,
  host: string,
): Promise<StartingServer | undefined> {
  let current: RequestListener = (req, res) => answerStarting(app, req, res);
  const server = createServer((req, res) => current(req, res));
  const listening = await new Promise<boolean>((resolve) => {
    const failed = () => resolve(false);
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve(true);
    });
  });
  if (!listening) return undefined;
  return {
    server,
    serve(listener) {
      current = listener;
      return server;
    },
  };
}

function answerStarting(app: string, req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({
    type: STARTING_PROBLEM_TYPE,
    title: 'Starting',
    status: 503,
    detail: `the ${app} is starting; retry shortly`,
    instance: (req.url ?? '/').split('?')[0],
  });
  res.writeHead(503, {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'retry-after': String(RETRY_AFTER_S),
    // A connection opened while starting ends with its answer: the next request, on a new
    // connection, meets the app with the app's own timeouts (the API sets its keep-alive).
    connection: 'close',
  });
  res.end(body);
}
