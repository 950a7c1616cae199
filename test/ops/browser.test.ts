import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { INVALIDATE_JOB_NAME, type InvalidationJob } from '@walcache/core';
import { ensureDebianPackage, waitFor } from '@walcache/testkit';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Servers, type Stack, startServers, startStack } from '../support/stack.ts';

// Installed when missing (Debian, as root); skipped only where that is impossible, saying why.
const CHROMIUM = await ensureDebianPackage('chromium', { debianPackage: 'chromium' }).catch(
  (error: unknown) => {
    console.warn(`browser tests skipped: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  },
);

const TOKEN = 'browser-ops-token-5678';
const outDir = join(import.meta.dirname, '..', '..', 'test-output');
let servers: Servers;
let stack: Stack;
let browser: Browser;

describe.skipIf(!CHROMIUM)(`in a real browser (${CHROMIUM})`, () => {
  beforeAll(async () => {
    await mkdir(outDir, { recursive: true });
    servers = await startServers();
    stack = await startStack(servers, { OPS_TOKEN: TOKEN });
    await waitFor(() => stack.cdc.stream.state === 'streaming', { what: 'the CDC to stream' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await servers?.stop();
  });

  it('the queue dashboard asks for the token, then shows the invalidation queue and a failed job', async () => {
    // One failed job (a malformed payload fails at once) and some completed ones.
    await stack.invalidator.queue.add(INVALIDATE_JOB_NAME, { v: 1 } as unknown as InvalidationJob, {
      jobId: 'malformed-browser-test',
      attempts: 1,
    });
    await waitFor(
      async () => (await stack.invalidator.queue.getJobState('malformed-browser-test')) === 'failed',
      {
        what: 'the job to fail',
      },
    );

    // Without credentials the browser gets the Basic challenge (a real one shows its login
    // prompt; headless Chromium fails the navigation, so the request API reads the answer).
    const anonymous = await browser.newContext();
    const denied = await anonymous.request.get(`${stack.api.url}/ops/queues`);
    expect(denied.status()).toBe(401);
    expect(denied.headers()['www-authenticate']).toMatch(/^Basic/);
    await anonymous.close();

    // The operator types any user name and the token as the password.
    const context = await browser.newContext({ httpCredentials: { username: 'operator', password: TOKEN } });
    const page = await context.newPage();
    const queueName = stack.env.QUEUE_NAME;
    const res = await page.goto(`${stack.api.url}/ops/queues`);
    expect(res?.status()).toBe(200);
    await page.getByText(queueName).first().waitFor();
    await page.screenshot({ path: join(outDir, 'ops-queues.png'), fullPage: true });

    await page.goto(`${stack.api.url}/ops/queues/queue/${queueName}?status=failed`);
    await page.getByText('malformed-browser-test').first().waitFor();
    await page
      .getByText(/invalid invalidation job/)
      .first()
      .waitFor();
    await page.screenshot({ path: join(outDir, 'ops-queues-failed.png'), fullPage: true });
    expect(existsSync(join(outDir, 'ops-queues-failed.png'))).toBe(true);
    await context.close();
  });

  it('the API documentation page renders', async (ctx) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      const res = await page.goto(`${stack.api.url}/docs`);
      if (res?.status() === 404) ctx.skip(true, '/docs is not served by this build of the API yet');
      expect(res?.status()).toBe(200);
      // The reference renders the operations of the OpenAPI document.
      await page.getByText('/v1/articles/{id}').first().waitFor({ timeout: 20_000 });
      await page.screenshot({ path: join(outDir, 'docs.png'), fullPage: false });
    } finally {
      await context.close();
    }
  });
});
