/**
 * The API program (`node dist/api.mjs`, `npm start`, the image). It takes its port first:
 * the environment is checked (a bad variable exits with EX_CONFIG before any port is taken),
 * PORT is listened on with a bare node:http handler answering 503 `starting` + Retry-After,
 * and only then are the app's modules (most of a start: the npm packages) loaded and the
 * servers connected; the app then answers on that port. main.ts is the app itself (what the
 * tests import), and still runs as a program without this early port.
 */
import { loadEnvOrExit } from '@walcache/config';
import { listenWhileStarting } from '@walcache/observability/starting';

const env = loadEnvOrExit();
const server = await listenWhileStarting('api', env.PORT, env.HOST);
const { runApi } = await import('./main.ts');
await runApi(env, server);
