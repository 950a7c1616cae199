/**
 * The invalidator program (`node dist/invalidator.mjs`, `npm start`, the image). It takes its
 * metrics port first: the environment is checked (a bad variable exits with EX_CONFIG before
 * any port is taken), INVALIDATOR_METRICS_PORT is listened on with a bare node:http handler
 * answering 503 `starting` + Retry-After (/healthz included), and only then are the app's
 * modules (most of a start: the npm packages) loaded and the servers connected; /healthz and
 * /metrics then answer on that port. main.ts is the app itself (what the tests import), and
 * still runs as a program without this early port.
 */
import { loadEnvOrExit } from '@walcache/config';
import { listenWhileStarting, METRICS_HOST } from '@walcache/observability/starting';

const env = loadEnvOrExit();
const server = await listenWhileStarting('invalidator', env.INVALIDATOR_METRICS_PORT, METRICS_HOST);
const { runInvalidator } = await import('./main.ts');
await runInvalidator(env, server);
