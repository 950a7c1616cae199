import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { Hono, type MiddlewareHandler } from 'hono';
import { acceptsGzip, ifNoneMatchMatches } from './http-cache.ts';

/**
 * `/docs`: the Scalar API reference, with its script served from node_modules
 * (`@scalar/api-reference`'s standalone bundle) rather than a CDN, so the page works on a
 * machine without internet access. Default web fonts are off for the same reason (the
 * bundle would fetch them from Scalar's font host); the page uses system fonts.
 * Checked by hand with headless Chromium on a machine without internet: the page renders
 * every route and model (docs/api.md).
 */
export function createDocsApp(openApiPath: string): Hono {
  const app = new Hono();
  const bundle = lazyBundle();

  const config = {
    url: openApiPath,
    cdn: '/docs/scalar.js',
    pageTitle: 'walcache read API',
    withDefaultFonts: false,
    // No calls to Scalar's hosted services from an operator's browser: no telemetry, no
    // hosted AI agent or MCP generator, no developer toolbar. (`showToolbar` is newer than
    // the integration's types, hence a plain object rather than a checked literal.)
    telemetry: false,
    agent: { disabled: true },
    mcp: { disabled: true },
    showDeveloperTools: 'never' as const,
    showToolbar: 'never',
  };
  // The page's integration loads on the first visit, not with the API: at rest the API
  // serves /v1, and most deployments never open /docs.
  let page: Promise<MiddlewareHandler> | undefined;
  app.get('/', async (c, next) => {
    if (!page) {
      page = import('@scalar/hono-api-reference').then(({ Scalar }) => Scalar(config));
      // A failed load must not stick: the next visit tries again (and fails loudly in onError).
      page.catch(() => {
        page = undefined;
      });
    }
    return (await page)(c, next);
  });
  app.get('/scalar.js', async (c) => {
    const { raw, compressed, etag } = await bundle();
    const headers: Record<string, string> = {
      'content-type': 'text/javascript; charset=utf-8',
      etag,
      // The bundle changes only with the package version (in the ETag): a day, then revalidate.
      'cache-control': 'public, max-age=86400',
      vary: 'Accept-Encoding',
    };
    if (ifNoneMatchMatches(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
    if (acceptsGzip(c.req.header('accept-encoding'))) {
      return c.body(compressed as Uint8Array<ArrayBuffer>, 200, { ...headers, 'content-encoding': 'gzip' });
    }
    return c.body(raw as Uint8Array<ArrayBuffer>, 200, headers);
  });
  return app;
}

const gzipAsync = promisify(gzip);

interface Bundle {
  raw: Buffer;
  compressed: Buffer;
  etag: string;
}

/** Reads (and compresses) the 4 MB bundle once, on the first request for it, not at startup. */
function lazyBundle(): () => Promise<Bundle> {
  let loading: Promise<Bundle> | undefined;
  return () => {
    loading ??= (async () => {
      const entry = createRequire(import.meta.url).resolve('@scalar/api-reference');
      // entry is <pkg>/dist/index.js; the browser bundle sits beside it.
      const dist = dirname(entry);
      const raw = await readFile(join(dist, 'browser', 'standalone.js'));
      const pkg = JSON.parse(await readFile(join(dist, '..', 'package.json'), 'utf8')) as {
        version?: string;
      };
      // Async: 4 MB take ~0.2 s to compress, which must not stall the event loop (and every hit) once.
      return { raw, compressed: await gzipAsync(raw), etag: `"scalar-${pkg.version ?? 'unknown'}"` };
    })();
    // A failed read must not stick: the next request tries again (and fails loudly in onError).
    loading.catch(() => {
      loading = undefined;
    });
    return loading;
  };
}
