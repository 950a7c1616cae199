/**
 * The CDC program (`node dist/cdc.mjs`, `npm start`, the image). It takes its metrics port
 * first: the shared environment is checked (a bad variable exits with EX_CONFIG before any
 * port is taken; the CDC's own CDC_* settings are checked by main.ts, right after),
 * CDC_METRICS_PORT is listened on with a bare node:http handler answering 503 `starting` +
 * Retry-After (/healthz included), and only then are the app's modules (most of a start: the
 * npm packages) loaded and the servers connected; /healthz and /metrics then answer on that
 * port. main.ts is the app itself (what the tests import), and still runs as a program
 * without this early port.
 */
import { loadEnvOrExit } from '@walcache/config';
import { listenWhileStarting, METRICS_HOST } from '@walcache/observability/starting';

const env = loadEnvOrExit();
const server = await listenWhileStarting('cdc', env.CDC_METRICS_PORT, METRICS_HOST);
const { runCdc } = await import('./main.ts');
await runCdc(env, server);
