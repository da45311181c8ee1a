// Browser tests of the CacheOS web UI (run by tests/web/run): headless Debian chromium via playwright-core.
// Each page: loads without console errors, axe-core finds no violations in light and dark theme, screenshot saved;
// prints transferred bytes and time to first render per page. Drive and sandbox tests that need endpoints the
// daemon does not have yet report "skipped: endpoint not yet available".
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(join(process.env.UI_DIR, 'package.json'));
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const BASE = process.env.CACHEOS_URL;
const ART = process.env.ARTIFACTS;
mkdirSync(ART, { recursive: true });

const PAGES = ['/chat', '/drives', '/sandboxes', '/system', '/audit', '/login'];
const results = [];
let failed = 0;

async function test(name, f) {
  const t0 = Date.now();
  try {
    const r = await f();
    if (r && r.skipped) { console.log(`skipped: ${name}: ${r.skipped}`); results.push([name, 'skipped']); return; }
    console.log(`ok: ${name} (${Date.now() - t0} ms)`);
    results.push([name, 'ok']);
  } catch (e) {
    failed += 1;
    console.log(`FAILED: ${name}\n${e.stack || e}`);
    results.push([name, 'FAILED']);
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});

/** A fresh context and page that records console errors, failed requests and non-local requests. */
async function open(opts = {}) {
  const context = await browser.newContext({ locale: opts.locale || 'en-GB', colorScheme: opts.colorScheme || 'light',
    viewport: opts.viewport || { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => { if (!r.url().startsWith(BASE)) problems.push(`external request: ${r.url()}`); });
  return { context, page, problems };
}

async function axe(page, label) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(() => window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }));
  const v = r.violations.map((x) => `${x.id} (${x.impact}): ${x.help}\n    ${x.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n    ')}`);
  assert.deepEqual(v, [], `axe violations on ${label}:\n${v.join('\n')}`);
}

async function endpoint(path) {
  const r = await fetch(BASE + path);
  return r.status !== 404 || !(await r.text()).includes('no such endpoint');
}

// Figures: bytes transferred and time to first render (first contentful paint) of each page, cold cache.
const figures = [];
await test('pages load without console errors; figures', async () => {
  for (const p of PAGES) {
    const { context, page, problems } = await open();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    let bytes = 0;
    cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
    await page.goto(BASE + p, { waitUntil: 'load' });
    await page.locator('main[data-ready]').waitFor();
    const fcp = await page.evaluate(() => {
      const e = performance.getEntriesByName('first-contentful-paint')[0];
      return e ? Math.round(e.startTime) : null;
    });
    const ready = await page.evaluate(() => {
      const m = performance.getEntriesByType('mark').find((x) => x.name.startsWith('cacheos-ready-'));
      return m ? Math.round(m.startTime) : null;
    });
    figures.push({ page: p, bytes, fcp_ms: fcp, ready_ms: ready });
    await page.screenshot({ path: join(ART, `${p.slice(1)}-light.png`), fullPage: true });
    assert.deepEqual(problems, [], `${p}: ${problems.join('\n')}`);
    await context.close();
  }
});

await test('axe-core: no violations on any page, light and dark', async () => {
  for (const scheme of ['light', 'dark']) {
    for (const p of PAGES) {
      const { context, page, problems } = await open({ colorScheme: scheme });
      await page.goto(BASE + p, { waitUntil: 'load' });
      await page.locator('main[data-ready]').waitFor();
      await axe(page, `${p} (${scheme})`);
      if (scheme === 'dark') await page.screenshot({ path: join(ART, `${p.slice(1)}-dark.png`), fullPage: true });
      assert.deepEqual(problems, [], `${p}: ${problems.join('\n')}`);
      await context.close();
    }
  }
});

await test('security headers and no inline code', async () => {
  const r = await fetch(BASE + '/chat');
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  const html = await r.text();
  assert.doesNotMatch(html, /<script>|<style|style=/);
  const js = await fetch(BASE + '/ui/app.js');
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.match(js.headers.get('cache-control'), /immutable/);
});

await test('chat: "zeige laufwerke" gets an answer, history survives a reload', async () => {
  const { context, page, problems } = await open({ locale: 'de-DE' });
  await page.goto(BASE + '/chat');
  await page.getByLabel('Nachricht').fill('zeige laufwerke');
  await page.keyboard.press('Enter');
  const reply = page.locator('.msg.bot .reply').first();
  await reply.waitFor();
  assert.ok((await reply.textContent()).length > 0);
  await page.getByLabel('Nachricht').fill('zeig mir den Systemstatus');
  await page.getByRole('button', { name: 'Senden' }).click();
  await page.locator('.msg.bot details.result').first().waitFor();
  await page.screenshot({ path: join(ART, 'chat-conversation.png'), fullPage: true });
  await page.reload();
  await page.locator('.msg.me', { hasText: 'zeige laufwerke' }).waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

await test('chat: a destructive plan shows the plan with confirm and cancel; cancel runs nothing', async () => {
  const { context, page, problems } = await open();
  await page.goto(BASE + '/chat');
  await page.getByLabel('Message').fill('kill the web task');
  await page.keyboard.press('Enter');
  const plan = page.locator('.plan.danger');
  await plan.waitFor();
  assert.match(await plan.textContent(), /supervisor\.kill-task/);
  assert.match(await plan.textContent(), /"task":"web"/);
  await axe(page, 'chat with a plan');
  await page.screenshot({ path: join(ART, 'chat-plan.png'), fullPage: true });
  // Keyboard: the cancel button has focus.
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
  await page.keyboard.press('Enter');
  await page.locator('.msg.me', { hasText: /^You\s*no$/ }).waitFor();
  await page.locator('.msg.bot .reply', { hasText: 'Cancelled' }).waitFor();
  const audit = await (await fetch(BASE + '/api/v1/audit?operation=supervisor.kill-task')).json();
  assert.equal(audit.length, 0, 'cancelled plan must not run');
  assert.deepEqual(problems, []);
  await context.close();
});

await test('language and theme switch and are remembered', async () => {
  const { context, page, problems } = await open({ locale: 'en-GB' });
  await page.goto(BASE + '/system');
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  await page.getByLabel('Language').selectOption('de');
  await page.locator('main h1', { hasText: 'System' }).waitFor();
  assert.equal(await page.locator('html').getAttribute('lang'), 'de');
  await page.getByRole('link', { name: 'Protokoll' }).waitFor();
  await page.getByLabel('Darstellung').selectOption('dark');
  assert.equal(await page.locator('html').getAttribute('data-theme'), 'dark');
  const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  assert.equal(bg, 'rgb(18, 20, 23)');
  await page.reload();
  await page.locator('main[data-ready]').waitFor();
  assert.equal(await page.locator('html').getAttribute('lang'), 'de');
  assert.equal(await page.locator('html').getAttribute('data-theme'), 'dark');
  await page.getByLabel('Darstellung').selectOption('system');
  assert.equal(await page.locator('html').getAttribute('data-theme'), null);
  assert.deepEqual(problems, []);
  await context.close();
});

await test('keyboard: skip link, navigation by Tab and Enter, visible focus', async () => {
  const { context, page, problems } = await open();
  await page.goto(BASE + '/audit');
  await page.locator('main[data-ready]').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, 'solid');
  await page.keyboard.press('Tab'); // brand
  await page.keyboard.press('Tab'); // Chat
  await page.keyboard.press('Tab'); // Drives
  await page.keyboard.press('Tab'); // Sandboxes
  await page.keyboard.press('Tab'); // System
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'System');
  await page.keyboard.press('Enter');
  await page.waitForURL(BASE + '/system');
  await page.waitForFunction(() => document.activeElement.tagName === 'H1' && document.activeElement.textContent === 'System');
  assert.deepEqual(problems, []);
  await context.close();
});

await test('phone width: no horizontal overflow on any page', async () => {
  const { context, page, problems } = await open({ viewport: { width: 360, height: 740 } });
  for (const p of PAGES) {
    await page.goto(BASE + p, { waitUntil: 'load' });
    await page.locator('main[data-ready]').waitFor();
    const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(over <= 0, `${p} overflows by ${over}px at 360px`);
    await page.screenshot({ path: join(ART, `${p.slice(1)}-phone.png`), fullPage: true });
  }
  assert.deepEqual(problems, []);
  await context.close();
});

await test('audit: filter by front end shows chat utterances', async () => {
  const { context, page, problems } = await open();
  await page.goto(BASE + '/audit');
  await page.locator('main[data-ready]').waitFor();
  await page.getByLabel('Front end').selectOption('chat');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => {
    const fes = [...document.querySelectorAll('tbody tr td:nth-child(3)')].map((td) => td.textContent);
    return fes.length > 0 && fes.every((f) => f === 'chat');
  });
  await page.locator('td', { hasText: 'zeig mir den Systemstatus' }).first().waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

await test('system: charts from the server history, live samples by SSE, supervisor tasks', async () => {
  const { context, page, problems } = await open();
  const history = await (await fetch(BASE + '/api/v1/system/history')).json();
  assert.ok(history.length >= 1, 'the metrics task has sampled at least once');
  await page.goto(BASE + '/system');
  await page.locator('main[data-ready]').waitFor();
  assert.equal(await page.locator('.plot canvas').count(), 4);
  await page.locator('td', { hasText: 'metrics' }).waitFor();
  // A new sample arrives as a metrics-sampled event (every 5 s in dev mode) and is drawn: the CPU caption changes
  // from "–" (one sample, no CPU figure yet) or its previous value.
  const before = await page.locator('figcaption').first().textContent();
  await page.waitForFunction((b) => document.querySelector('figcaption').textContent !== b, before, { timeout: 15000 });
  assert.deepEqual(problems, []);
  await context.close();
});

await test('login page renders (loopback is trusted, so it says so) and a wrong token is refused', async () => {
  const { context, page, problems } = await open();
  await page.goto(BASE + '/login');
  await page.locator('main', { hasText: 'You are signed in (loopback)' }).waitFor();
  // The session endpoint answers a login attempt with a wrong token with 401 and sets no cookie.
  const r = await page.evaluate(async () => {
    const x = await fetch('/api/v1/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":"nope"}' });
    return [x.status, document.cookie];
  });
  assert.deepEqual(r, [401, '']);
  assert.deepEqual(problems.filter((p) => !p.includes('401')), []);
  await context.close();
});

// Drive and sandbox flows: need the drive/sandbox REST endpoints (being written); skipped until they exist.
await test('drives: attach an image from the images directory, browse, detach', async () => {
  if (!(await endpoint('/api/v1/drives')) || !(await endpoint('/api/v1/images'))) return { skipped: 'endpoint not yet available (/api/v1/drives, /api/v1/images)' };
  const { context, page, problems } = await open();
  const images = await (await fetch(BASE + '/api/v1/images')).json();
  if (images.length === 0) return { skipped: 'the images directory of the dev daemon is empty' };
  await page.goto(BASE + '/drives');
  await page.getByLabel('From the images directory').selectOption(images[0].path);
  await page.getByLabel('Name', { exact: true }).first().fill('webtest');
  await page.getByRole('button', { name: 'Attach', exact: true }).click();
  await page.locator('td', { hasText: 'webtest' }).first().waitFor();
  await page.getByRole('button', { name: 'Browse: webtest' }).click();
  await page.locator('h2', { hasText: 'Files of webtest' }).waitFor();
  await page.getByRole('button', { name: 'Detach: webtest' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Detach' }).click();
  await page.locator('td', { hasText: 'webtest' }).first().waitFor({ state: 'detached' });
  assert.deepEqual(problems, []);
  await context.close();
});

await test('sandboxes: create, run a command with streamed output, remove', async () => {
  if (!(await endpoint('/api/v1/sandboxes')) || !(await endpoint('/api/v1/templates'))) return { skipped: 'endpoint not yet available (/api/v1/sandboxes, /api/v1/templates)' };
  const { context, page, problems } = await open();
  await page.goto(BASE + '/sandboxes');
  await page.getByLabel('Name', { exact: true }).fill('webtest');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('td', { hasText: 'webtest' }).first().waitFor();
  await page.getByRole('button', { name: 'Start: webtest' }).click();
  await page.getByRole('button', { name: 'Run: webtest' }).click();
  await page.getByLabel('Command').fill('echo hello-from-webtest');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.locator('pre.output', { hasText: 'hello-from-webtest' }).waitFor();
  await page.locator('[role=status]', { hasText: 'Exit code 0' }).waitFor();
  await page.getByRole('button', { name: 'Remove: webtest' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
  await page.locator('td', { hasText: 'webtest' }).first().waitFor({ state: 'detached' });
  assert.deepEqual(problems, []);
  await context.close();
});

await test('drives and sandboxes pages show "not available" while their endpoints are missing', async () => {
  const { context, page, problems } = await open();
  for (const [p, ep] of [['/drives', '/api/v1/drives'], ['/sandboxes', '/api/v1/sandboxes']]) {
    if (await endpoint(ep)) continue;
    await page.goto(BASE + p);
    await page.locator(`[data-unavailable="${ep}"]`).waitFor();
  }
  assert.deepEqual(problems, []);
  await context.close();
});

await browser.close();

console.log('\nper-page figures over loopback (cold cache):');
console.log('page         bytes  first-render-ms  data-shown-ms');
for (const f of figures) console.log(`${f.page.padEnd(10)} ${String(f.bytes).padStart(7)}  ${String(f.fcp_ms).padStart(15)}  ${String(f.ready_ms).padStart(13)}`);
console.log(`\n${results.filter((r) => r[1] === 'ok').length} passed, ${results.filter((r) => r[1] === 'skipped').length} skipped, ${failed} failed`);
process.exit(failed ? 1 : 0);
