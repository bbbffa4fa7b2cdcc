import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { parseConfig } from '../src/config/config.ts';
import { ConfigError } from '../src/errors.ts';
import { run, type ServiceProcess, startService, writeConfig } from './helpers/cli.ts';
import { playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { startReceiver } from './helpers/receiver.ts';
import { type Stack, stacksClosedAfter } from './helpers/stack.ts';
import { itNeeding, toolPath } from './helpers/tools.ts';
import { type Answer, call } from './helpers/page.ts';

// Screenshots go to docs/ only when asked (UI_SCREENSHOTS=1 npm test), so a test run leaves the tree clean.
const SHOTS = process.env.UI_SCREENSHOTS === '1' ? 'docs' : mkdtempSync(join(tmpdir(), 'order-webhooks-ui-'));

const TOKEN = 'ui-test-token-5b21e';
const EVIL = '<script>alert("x")</script>';

async function httpPort(service: ServiceProcess): Promise<number> {
  await service.waitForLog('"msg":"http listening');
  return Number(/"port":(\d+),"msg":"http listening/.exec(service.output())![1]);
}

function cookieOf(answer: Answer): string {
  const set = answer.headers['set-cookie'];
  assert.ok(set?.[0], 'a session cookie is set');
  return set[0].split(';')[0]!;
}

async function startWithUi(s: Stack, http: object): Promise<number> {
  const configPath = writeConfig({ ...s.config, http: { port: 0, ui: true, ...http } });
  s.service = await startService(configPath);
  return httpPort(s.service);
}

/** A failed event whose order id and error text hold markup, as a hostile order app could write them. */
async function insertHostileEvent(s: Stack): Promise<string> {
  const [row] = await s.db.query<{ event_id: string }>(
    `INSERT INTO order_webhooks.outbox (change_id, order_id, event_type, body, status, attempts, last_status, last_error_kind, last_error, next_attempt_at)
     VALUES (0, $1, 'OrderCreated', $2, 'failed', 1, 503, 'http_status', $1, NULL) RETURNING event_id`,
    [EVIL, JSON.stringify({ orderId: EVIL })],
  );
  return row!.event_id;
}

describe('web page', () => {
  const stack = stacksClosedAfter();

  it('escapes database values; a replay POST needs the CSRF token and a same-origin request', async () => {
    const s = await stack('ui-escape', { startNow: false });
    const port = await startWithUi(s, {});
    const eventId = await insertHostileEvent(s);

    const page = await call(port, 'GET', '/?status=failed');
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'] as string, /^text\/html/);
    assert.ok(!page.body.includes(EVIL), 'the markup is not on the page as markup');
    assert.ok(page.body.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'), 'the order id shows as text');
    const detail = await call(port, 'GET', `/events/${eventId}`);
    assert.equal(detail.status, 200);
    assert.ok(!detail.body.includes(EVIL));
    assert.ok(detail.body.includes('&lt;script&gt;'));
    const api = JSON.parse((await call(port, 'GET', '/api/events?status=failed')).body) as { html: string; events: { orderId: string }[] };
    assert.equal(api.events[0]!.orderId, EVIL, 'the JSON carries the value itself');
    assert.ok(!api.html.includes(EVIL), 'the fragment the script inserts is escaped');
    assert.ok(page.headers['content-security-policy']?.toString().includes("script-src 'nonce-"));

    const cookie = cookieOf(page);
    const withCookie = await call(port, 'GET', '/', { Cookie: cookie });
    const csrf = /name="csrf" value="([0-9a-f]+)"/.exec(withCookie.body)![1]!;
    const form = (token?: string) => `${token ? `csrf=${token}&` : ''}kind=event&event=${eventId}`;
    const post = (headers: Record<string, string>, body: string) =>
      call(port, 'POST', '/replay', { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie, ...headers }, body);

    assert.equal((await post({}, form())).status, 403, 'no CSRF token');
    assert.equal((await post({}, form('0'.repeat(64)))).status, 403, 'a wrong CSRF token');
    assert.equal((await post({ Origin: 'http://evil.example' }, form(csrf))).status, 403, 'a foreign Origin');
    assert.equal((await post({ 'Sec-Fetch-Site': 'cross-site' }, form(csrf))).status, 403, 'a cross-site fetch');
    const fresh = cookieOf(await call(port, 'GET', '/'));
    assert.equal((await post({ Cookie: fresh }, form(csrf))).status, 403, "another session's token");
    const [before] = await s.db.query<{ status: string }>('SELECT status FROM order_webhooks.outbox WHERE event_id = $1', [eventId]);
    assert.equal(before!.status, 'failed', 'nothing was replayed by the refused requests');

    const preview = JSON.parse((await call(port, 'GET', `/replay/preview?kind=event&event=${eventId}`, { Cookie: cookie })).body);
    assert.deepEqual(preview, { count: 1 });
    const ok = await post({ Origin: `http://127.0.0.1:${port}`, 'Sec-Fetch-Site': 'same-origin' }, form(csrf));
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.location, '/?replayed=1');
    const [after] = await s.db.query<{ replayed_at: Date | null }>('SELECT replayed_at FROM order_webhooks.outbox WHERE event_id = $1', [
      eventId,
    ]);
    assert.ok(after!.replayed_at, 'the allowed request replayed it');
  });

  it('with http.token every page request needs it; the probes stay open; beyond loopback it is required', async () => {
    const s = await stack('ui-token', { startNow: false });
    const configPath = writeConfig({ ...s.config, http: { port: 0, ui: true, token: { env: 'UI_TEST_TOKEN' } } });
    s.service = await startService(configPath, { UI_TEST_TOKEN: TOKEN });
    const p = await httpPort(s.service);

    assert.equal((await call(p, 'GET', '/')).status, 401);
    assert.equal((await call(p, 'GET', '/api/summary')).status, 401);
    assert.equal((await call(p, 'GET', '/?token=wrong')).status, 401);
    assert.equal((await call(p, 'GET', '/healthz')).status, 200);
    assert.equal((await call(p, 'GET', '/metrics')).status, 200);
    assert.equal((await call(p, 'GET', '/', { Authorization: `Bearer ${TOKEN}` })).status, 200);
    const login = await call(p, 'GET', `/?token=${TOKEN}`);
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/', 'the token leaves the address bar');
    const cookie = cookieOf(login);
    assert.equal((await call(p, 'GET', '/', { Cookie: cookie })).status, 200);
    assert.equal((await call(p, 'GET', '/', { Cookie: 'order_webhooks_session=made-up' })).status, 401);
    const summary = JSON.parse((await call(p, 'GET', '/api/summary', { Cookie: cookie })).body);
    assert.equal(summary.summary.captureHealthy, true);
    assert.ok(!s.service.output().includes(TOKEN), 'the token is never logged');

    assert.throws(
      () => parseConfig({ database: { url: 'postgres://h/d' }, http: { port: 9187, host: '0.0.0.0', ui: true } }),
      (error: Error) => error instanceof ConfigError && /^http\.token: required when http\.ui is true/.test(error.message),
    );
    assert.doesNotThrow(() => parseConfig({ database: { url: 'postgres://h/d' }, http: { port: 9187, host: '0.0.0.0', ui: false } }));
    const open = await run(['start', '--config', writeConfig({ ...s.config, http: { port: 0, host: '0.0.0.0', ui: true } })]);
    assert.equal(open.code, 2);
    assert.match(open.stderr, /http\.token: required/);
    assert.ok(!open.stderr.includes('    at '), 'one line, no stack trace');
  });

  it('idle (webhooks disabled): the page says so and replay still works', async () => {
    const s = await stack('ui-idle', { startNow: false, webHook: { enabled: false } });
    const port = await startWithUi(s, {});
    const eventId = await insertHostileEvent(s);
    const summary = JSON.parse((await call(port, 'GET', '/api/summary')).body);
    assert.equal(summary.summary.enabled, false);
    assert.equal(summary.summary.failed, 1);
    assert.match(summary.html, /Webhooks<\/dt><dd>disabled/);
    const page = await call(port, 'GET', `/events/${eventId}`);
    assert.equal(page.status, 200);
    const csrf = /name="csrf" value="([0-9a-f]+)"/.exec(page.body)![1]!;
    const replayed = await call(
      port,
      'POST',
      '/replay',
      { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookieOf(page) },
      `csrf=${csrf}&kind=failed`,
    );
    assert.equal(replayed.headers.location, '/?replayed=1');
  });

  itNeeding('chromium')('in a real browser: filter to failed events, replay them with confirmation, see them delivered', async () => {
    // The breaker off: these events must fail, not wait for the receiver to come back.
    const s = await stack('ui-browser', { startNow: false, webHook: { retry: { delays: ['PT0.2S'] }, circuitBreaker: false } });
    let failing = true;
    s.receiver.respond = (_request, response) => {
      response.statusCode = failing ? 503 : 200;
      response.end();
    };
    // A second endpoint, healthy, that wants one event type: its card beside default's.
    const billing = await startReceiver('/billing');
    s.config.webHooks = [{ name: 'billing', endpoint: billing.url, events: ['OrderSigned'] }];
    const closeStack = s.close;
    s.close = async () => {
      await billing.close();
      await closeStack();
    };
    const port = await startWithUi(s, {});
    await playOrders(s.db, 3);
    const total = 12;
    await billing.waitForCount(3);
    await waitFor(
      async () => {
        const [row] = await s.db.query<{ n: number }>("SELECT count(*)::int AS n FROM order_webhooks.outbox WHERE status = 'failed'");
        return row!.n === total;
      },
      { what: 'every event failed', timeoutMs: 30_000 },
    );

    const browser = await chromium.launch({
      executablePath: toolPath('chromium'),
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
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
      await page.goto(`http://127.0.0.1:${port}/`);
      assert.equal(await page.locator('#count-failed').textContent(), String(total));
      assert.match((await page.locator('[data-endpoint="default"]').first().textContent()) ?? '', /enabled.*12 failed/s);
      assert.match((await page.locator('[data-endpoint="billing"]').first().textContent()) ?? '', /enabled.*0 failed.*last success/s);

      await page.getByLabel('Status').selectOption('failed');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/status=failed/);
      assert.equal(await page.locator('tr[data-status="failed"]').count(), total);
      assert.equal(await page.locator('tr[data-status="delivered"]').count(), 0);
      assert.match((await page.locator('tr[data-status="failed"]').first().textContent()) ?? '', /http_status: .*503/);
      await page.screenshot({ path: join(SHOTS, 'ui-desktop.png') });

      // An event opens to its attempts.
      await page.locator('tr[data-status="failed"] a').first().click();
      await page.waitForURL(/\/events\//);
      assert.match((await page.locator('table').textContent()) ?? '', /503/);
      await page.goBack();

      failing = false;
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.accept();
      });
      await page.getByRole('button', { name: 'Replay failed events' }).click();
      await page.waitForURL(/replayed=/);
      assert.deepEqual(dialogs, [`Send ${total} event(s) again? They go back to pending, keeping their ids.`]);
      assert.match((await page.locator('.notice').textContent()) ?? '', new RegExp(`^${total} event\\(s\\) sent back to pending`));

      // The page updates by itself: no reload from here on.
      await waitFor(async () => (await page.locator('tr[data-status="delivered"]').count()) === total + 3, {
        what: 'the page to show every event delivered',
        timeoutMs: 30_000,
        intervalMs: 200,
      });
      await waitFor(async () => (await page.locator('#count-failed').textContent()) === '0', { what: 'the failed count to reach 0' });
      assert.equal(await page.locator('#count-delivered').textContent(), String(total + 3), "default's and billing's");
      assert.deepEqual(errors, []);

      const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
      await phone.goto(`http://127.0.0.1:${port}/`);
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no sideways scrolling of the page at 390 px (overflow ${overflow} px)`);
      await phone.screenshot({ path: join(SHOTS, 'ui-phone.png') });
    } finally {
      await browser.close();
    }
  });
});
