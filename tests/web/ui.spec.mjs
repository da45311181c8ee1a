// Browser tests of the CacheOS web UI (run by tests/web/run): headless Debian chromium via playwright-core.
// Each page: loads without console errors, axe-core finds no violations in light and dark theme, screenshot saved;
// prints transferred bytes and time to first render per page. The drive, upload and sandbox flows run against the
// real endpoints; tests/web/run puts an ext4 image into the images directory and a busybox template "bb" in place.
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import assert from 'node:assert/strict';

const require = createRequire(join(process.env.UI_DIR, 'package.json'));
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const BASE = process.env.CACHEOS_URL;
const ART = process.env.ARTIFACTS;
mkdirSync(ART, { recursive: true });

const PAGES = ['/chat', '/drives', '/sandboxes', '/system', '/logs', '/audit', '/login'];
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
  // The longer ranges ask the daemon for a day (minute means) or 30 days (hour means); the choice is kept.
  const asked = page.waitForRequest((r) => r.url().includes('/api/v1/system/history?since_ms='));
  await page.locator('button[data-range="24h"]').click();
  const since = Number(new URL((await asked).url()).searchParams.get('since_ms'));
  assert.ok(Math.abs(Date.now() - 24 * 3600 * 1000 - since) < 60000, `since_ms ${since}`);
  await page.locator('#ch-h', { hasText: 'Last 24 hours' }).waitFor();
  assert.equal(await page.locator('button[data-range="24h"]').getAttribute('aria-pressed'), 'true');
  assert.equal(await page.locator('.plot canvas').count(), 4);
  await page.reload();
  await page.locator('#ch-h', { hasText: 'Last 24 hours' }).waitFor();
  await page.locator('button[data-range="1h"]').click();
  await page.locator('#ch-h', { hasText: 'Last hour' }).waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

await test('system: the web certificate fingerprint shown is the one TLS clients are served', async () => {
  if (!(await endpoint('/api/v1/web/cert'))) return { skipped: 'endpoint not yet available (/api/v1/web/cert)' };
  // What a TLS client on the same port is served, read with node's own TLS client (independently of the UI and
  // of cacheosd's code). The dev daemon serves TLS and plain HTTP on one port.
  const url = new URL(BASE);
  const served = await new Promise((resolve, reject) => {
    const s = tlsConnect({ host: url.hostname, port: Number(url.port), servername: 'localhost', rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256; s.end(); resolve(fp);
    });
    s.on('error', reject);
  });
  assert.match(served, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  for (const [locale, heading] of [['en-GB', 'Web certificate'], ['de-DE', 'Web-Zertifikat']]) {
    const { context, page, problems } = await open({ locale });
    await page.goto(BASE + '/system');
    await page.locator('main[data-ready]').waitFor();
    await page.locator('h2', { hasText: heading }).waitFor();
    assert.equal((await page.getByTestId('cert-fingerprint').textContent()).trim(), served, locale);
    assert.deepEqual(problems, []);
    await context.close();
  }
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

// Drive, upload and sandbox flows against the real endpoints.
await test('drives: attach an image from the images directory, browse, detach', async () => {
  if (!(await endpoint('/api/v1/drives')) || !(await endpoint('/api/v1/images'))) return { skipped: 'endpoint not yet available (/api/v1/drives, /api/v1/images)' };
  const { context, page, problems } = await open();
  const images = await (await fetch(BASE + '/api/v1/images')).json();
  const image = images.find((i) => i.name === 'webtest.img');
  assert.ok(image, `tests/web/run puts webtest.img into the images directory: ${JSON.stringify(images)}`);
  await page.goto(BASE + '/drives');
  await page.locator('main[data-ready]').waitFor();
  await page.getByLabel('From the images directory').selectOption(image.path);
  await page.getByLabel('Name', { exact: true }).first().fill('webtest');
  await page.getByRole('button', { name: 'Attach', exact: true }).click();
  await page.locator('td', { hasText: 'webtest' }).first().waitFor();
  await page.getByRole('button', { name: 'Browse: webtest' }).click();
  await page.locator('h2', { hasText: 'Files of webtest' }).waitFor();
  await page.locator('td', { hasText: 'hello.txt' }).waitFor();
  await page.screenshot({ path: join(ART, 'drives-real.png'), fullPage: true });
  await page.getByRole('button', { name: 'Detach: webtest' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Detach' }).click();
  await page.locator('td', { hasText: 'webtest' }).first().waitFor({ state: 'detached' });
  assert.deepEqual(problems, []);
  await context.close();
});

await test('drives: upload an image (PUT /api/v1/images/{name}): progress, checksum, listed; a taken name is refused', async () => {
  const { context, page, problems } = await open();
  const buffer = Buffer.alloc(3 * 1024 * 1024 + 17, 5);
  const sha = createHash('sha256').update(buffer).digest('hex');
  await page.goto(BASE + '/drives');
  await page.locator('main[data-ready]').waitFor();
  await page.getByLabel('Image file on this computer').setInputFiles({ name: 'web-upload.img', mimeType: 'application/octet-stream', buffer });
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.locator('code.hash', { hasText: sha }).waitFor();
  assert.equal(await page.getByLabel('Upload progress').evaluate((p) => p.value), 100);
  const images = await (await fetch(BASE + '/api/v1/images')).json();
  const up = images.find((i) => i.name === 'web-upload.img');
  assert.equal(up && up.size, buffer.length);
  // The same name again: the daemon refuses (409) and the page says why.
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'already-exists' }).waitFor();
  assert.deepEqual(problems.filter((p) => !p.includes('409')), []);
  await context.close();
});

await test('sandboxes: create, run a command with streamed output, remove', async () => {
  if (!(await endpoint('/api/v1/sandboxes')) || !(await endpoint('/api/v1/templates'))) return { skipped: 'endpoint not yet available (/api/v1/sandboxes, /api/v1/templates)' };
  const { context, page, problems } = await open();
  await page.goto(BASE + '/sandboxes');
  await page.locator('main[data-ready]').waitFor();
  await page.getByLabel('Name', { exact: true }).fill('webtest');
  await page.getByLabel('Template').selectOption('bb');
  await page.getByLabel('Memory').fill('64M');
  await page.getByLabel('CPUs').fill('0.5');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('td', { hasText: 'webtest' }).first().waitFor();
  const created = await (await fetch(BASE + '/api/v1/sandboxes/webtest')).json();
  assert.deepEqual([created.template, created.limits], ['bb', { cpu: 0.5, memory_max: 64 * 1024 * 1024, tasks_max: null }]);
  await page.getByRole('button', { name: 'Start: webtest', exact: true }).click();
  await page.getByRole('button', { name: 'Stop: webtest' }).waitFor();
  // Live resource use of the running sandbox shows in its row (refreshed at each metrics sample).
  await page.locator('tr', { hasText: 'webtest' }).filter({ hasText: /used \d/i }).first().waitFor();
  await page.getByRole('button', { name: 'Run: webtest' }).click();
  await page.getByLabel('Command').fill('echo hello-from-webtest');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.locator('pre.output', { hasText: 'hello-from-webtest' }).waitFor();
  await page.locator('[role=status]', { hasText: 'Exit code 0' }).waitFor();
  await page.screenshot({ path: join(ART, 'sandboxes-real.png'), fullPage: true });
  await page.getByRole('button', { name: 'Stop: webtest' }).click();
  await page.getByRole('button', { name: 'Start: webtest', exact: true }).waitFor();
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

// The drive and sandbox pages against a stand-in (playwright routes) answering in the real documents' shapes
// (crates/core/src/drive/model.rs, crates/core/src/sandbox): rendering with data, axe in both themes, and the exact
// requests the UI sends (as crates/web/src/drives.rs and sandboxes.rs take them).
async function mockContract(context, calls) {
  const real = await (await fetch(BASE + '/api/v1/openapi.json')).json();
  for (const p of ['/api/v1/drives', '/api/v1/images', '/api/v1/images/{name}', '/api/v1/sandboxes', '/api/v1/templates']) real.paths[p] = real.paths[p] || { get: {} };
  const drive = {
    name: 'data', image: '/var/lib/cacheos/images/data.qcow2', format: 'qcow2', virtual_size: 1073741824, read_write: true,
    state: 'attached', persistent: false, attached_by: 'rest', attached_ms: Date.now() - 60000,
    partitions: [{ number: 1, device: '/dev/loop0p1', fs_type: 'ext4', label: 'DATA', uuid: 'u', size: 1072693248,
      mount_point: '/run/cacheos/drives/data/1', used: 52428800, free: 1000000000 }],
    snapshot: null, used_by: ['box1'],
  };
  const box = { name: 'box1', state: 'running', template: 'debian', ephemeral: false, network: 'none',
    limits: { cpu: 1, memory_max: 536870912, tasks_max: null }, binds: [], created_by: 'loopback', created_ms: 1,
    uptime_seconds: 5, main_pid: 42, unit: 'nspawn:41', ip: null, cpu_time_ns: 1000, memory_current: 1048576,
    memory_peak: 2097152, tasks_current: 1, last_error: null };
  const json = (route, body, status = 200) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
  await context.route(/\/api\/v1\/(openapi\.json|drives|images|sandboxes|templates)(\/|\?|$)/, async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    const path = url.pathname;
    const isJson = (req.headers()['content-type'] || '').includes('json');
    calls.push({ method: req.method(), path: path + url.search,
      body: isJson && req.postData() ? JSON.parse(req.postData()) : null, bytes: req.postDataBuffer()?.length ?? 0,
      csrf: req.headers()['x-csrf-token'] });
    if (path === '/api/v1/openapi.json') return json(route, real);
    if (path === '/api/v1/drives' && req.method() === 'GET') return json(route, [drive]);
    if (path === '/api/v1/drives' && req.method() === 'POST') return json(route, { ...drive, name: 'new' });
    if (path.startsWith('/api/v1/images/') && req.method() === 'PUT') {
      const name = decodeURIComponent(path.slice('/api/v1/images/'.length));
      return json(route, { name, path: '/var/lib/cacheos/images/' + name, size: req.postDataBuffer().length, modified_ms: Date.now(),
        sha256: 'c'.repeat(64), format: 'raw' });
    }
    if (path === '/api/v1/images') return json(route, [{ name: 'data.qcow2', path: '/var/lib/cacheos/images/data.qcow2', size: 1073741824, modified_ms: 1 }]);
    if (path === '/api/v1/drives/data/files') return json(route, { drive: 'data', mount_point: '/run/cacheos/drives/data/DATA', path: '',
      entries: [{ name: 'etc', kind: 'dir', size: 0, modified_ms: 1 }, { name: 'hello.txt', kind: 'file', size: 6, modified_ms: 1 }] });
    if (path.startsWith('/api/v1/drives/')) return json(route, drive);
    if (path === '/api/v1/sandboxes' && req.method() === 'GET') return json(route, [box]);
    if (path === '/api/v1/sandboxes' && req.method() === 'POST') return json(route, box);
    if (path === '/api/v1/templates') return json(route, [{ name: 'debian', kind: 'directory', path: '/var/lib/cacheos/templates/debian',
      description: 'Debian 12 minimal', command: null }]);
    if (path === '/api/v1/sandboxes/box1/exec') {
      return route.fulfill({ status: 200, contentType: 'application/x-ndjson',
        body: '{"stream":"stdout","data":"hello\\n"}\n{"stream":"stderr","data":"warn\\n"}\n{"exit_code":0}\n' });
    }
    if (path === '/api/v1/sandboxes/box1/logs') return json(route, { name: 'box1', lines: ['line one', 'line two'] });
    if (path.startsWith('/api/v1/sandboxes/')) return json(route, box);
    return json(route, { error: { code: 'not-found', message: 'no such endpoint: ' + path } }, 404);
  });
}

await test('drives page against a stand-in API: renders, axe, exact requests', async () => {
  for (const scheme of ['light', 'dark']) {
    const { context, page, problems } = await open({ colorScheme: scheme });
    const calls = [];
    await mockContract(context, calls);
    await page.goto(BASE + '/drives');
    await page.locator('main[data-ready]').waitFor();
    await page.locator('td', { hasText: '/dev/loop0p1' }).waitFor();
    await axe(page, `/drives with data (${scheme})`);
    await page.screenshot({ path: join(ART, `drives-data-${scheme}.png`), fullPage: true });
    if (scheme === 'dark') { await context.close(); continue; }
    await page.getByLabel('From the images directory').selectOption('/var/lib/cacheos/images/data.qcow2');
    assert.equal(await page.getByLabel('Image path').first().inputValue(), '/var/lib/cacheos/images/data.qcow2');
    await page.getByLabel('Writable').check();
    await page.getByRole('button', { name: 'Attach', exact: true }).click();
    await page.getByRole('button', { name: 'Browse: data' }).click();
    await page.locator('td', { hasText: 'hello.txt' }).waitFor();
    await page.getByRole('button', { name: 'Snapshot: data' }).click();
    await page.getByRole('button', { name: 'Detach: data' }).click();
    await axe(page, '/drives detach dialog');
    await page.getByRole('dialog').getByRole('button', { name: 'Detach' }).click();
    await page.getByRole('button', { name: 'Keep after restart: data' }).click();
    await page.getByLabel('Image path').nth(1).fill('/var/lib/cacheos/images/new.img');
    await page.getByLabel('Size', { exact: true }).fill('512M');
    await page.getByLabel('Format', { exact: true }).selectOption('qcow2');
    await page.getByLabel('File system', { exact: true }).selectOption('xfs');
    await page.getByLabel('Label', { exact: true }).fill('NEW');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll('[role=status] span').length > 0);
    await page.waitForTimeout(300);
    // Upload: the file goes as the raw body of PUT /api/v1/images/{name}; progress reaches 100 %, the checksum shows.
    await page.getByLabel('Image file on this computer').setInputFiles({ name: 'tiny.img', mimeType: 'application/octet-stream',
      buffer: Buffer.alloc(256 * 1024, 7) });
    assert.equal(await page.getByLabel('Name in the images directory').inputValue(), 'tiny.img');
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.locator('code.hash', { hasText: 'c'.repeat(64) }).waitFor();
    assert.equal(await page.getByLabel('Upload progress').evaluate((p) => p.value), 100);
    const put = calls.find((c) => c.method === 'PUT');
    assert.deepEqual([put.path, put.bytes], ['/api/v1/images/tiny.img', 256 * 1024]);
    await axe(page, '/drives after an upload');
    await page.screenshot({ path: join(ART, 'drives-upload.png'), fullPage: true });
    const posts = calls.filter((c) => c.method === 'POST').map((c) => [c.path, c.body]);
    assert.deepEqual(posts, [
      ['/api/v1/drives', { path: '/var/lib/cacheos/images/data.qcow2', read_write: true, mount: true, partscan: true }],
      ['/api/v1/drives/data/snapshot', {}],
      ['/api/v1/drives/data/detach', {}],
      ['/api/v1/drives/data/persist', { persistent: true }],
      ['/api/v1/drives/create', { path: '/var/lib/cacheos/images/new.img', size: 512 * 1024 * 1024, format: 'qcow2', fs: 'xfs', attach: true, label: 'NEW' }],
    ]);
    assert.ok(calls.some((c) => c.path === '/api/v1/drives/data/files?path='));
    assert.deepEqual(problems, []);
    await context.close();
  }
});

await test('sandboxes page against a stand-in API: renders, axe, create, exec stream, remove, form errors', async () => {
  for (const scheme of ['light', 'dark']) {
    const { context, page, problems } = await open({ colorScheme: scheme });
    const calls = [];
    await mockContract(context, calls);
    await page.goto(BASE + '/sandboxes');
    await page.locator('main[data-ready]').waitFor();
    await page.locator('td', { hasText: 'box1' }).waitFor();
    await axe(page, `/sandboxes with data (${scheme})`);
    if (scheme === 'dark') { await context.close(); continue; }
    await page.getByLabel('Name', { exact: true }).fill('box2');
    // A size the form cannot read is reported and nothing is sent.
    await page.getByLabel('Memory').fill('lots');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: '“lots” is not a size' }).waitFor();
    await page.getByLabel('CPUs').fill('1.5');
    await page.getByLabel('Memory').fill('512M');
    await page.getByLabel('Network').selectOption('nat');
    await page.getByRole('button', { name: 'Add drive' }).click();
    await page.locator('.bind').getByLabel('Writable').check();
    await page.getByLabel('Environment').fill('A=1\nB=x=y');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('button', { name: 'Run: box1' }).click();
    await page.getByLabel('Command').fill('echo  hello');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('[role=status]', { hasText: 'Exit code 0' }).waitFor();
    assert.equal(await page.locator('pre.output').first().textContent(), 'hello\nwarn\n');
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.locator('pre.output', { hasText: 'line two' }).waitFor();
    await axe(page, '/sandboxes with output');
    await page.screenshot({ path: join(ART, 'sandboxes-data-light.png'), fullPage: true });
    await page.getByRole('button', { name: 'Stop: box1' }).click();
    await page.getByRole('button', { name: 'Remove: box1' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.waitForTimeout(300);
    const changes = calls.filter((c) => c.method !== 'GET').map((c) => [c.method, c.path, c.body]);
    assert.deepEqual(changes, [
      ['POST', '/api/v1/sandboxes', { name: 'box2', template: 'debian', cpu: 1.5, memory_max: 512 * 1024 * 1024, network: 'nat',
        binds: [{ drive: 'data', read_write: true }], env: [['A', '1'], ['B', 'x=y']], ephemeral: false }],
      ['POST', '/api/v1/sandboxes/box1/exec', { argv: ['echo', 'hello'] }],
      ['POST', '/api/v1/sandboxes/box1/stop', {}],
      ['DELETE', '/api/v1/sandboxes/box1?confirm=true', null],
    ]);
    assert.deepEqual(problems, []);
    await context.close();
  }
});

await test('logs page against a stand-in API: failed service first, Diagnose shows cause, evidence and fix; filters and live follow send the right queries', async () => {
  const { context, page, problems } = await open();
  const journalCalls = [];
  const now = Date.now();
  const entry = (n, msg, prio, unit) => ({ cursor: `c${n}`, time_us: (now - 60000 + n * 1000) * 1000, priority: prio, unit, message_id: null, message: msg, fields: {} });
  let polls = 0;
  const json = (route, body) => route.fulfill({ contentType: 'application/json', body: JSON.stringify(body) });
  const status = await (await fetch(BASE + '/api/v1/system/status')).json();
  await context.route('**/api/v1/system/status', (route) => json(route, { ...status, failed_units: 1 }));
  await context.route('**/api/v1/services', (route) => json(route, [
    { name: 'ok.service', description: 'fine', active_state: 'active', sub_state: 'running', load_state: 'loaded', failed: false },
    { name: 'nginx.service', description: 'web server', active_state: 'failed', sub_state: 'failed', load_state: 'loaded', failed: true }]));
  await context.route('**/api/v1/journal?*', (route) => {
    const q = new URL(route.request().url()).searchParams;
    journalCalls.push(Object.fromEntries(q));
    if (q.get('since_ms') && !q.get('grep') && journalCalls.length > 3) polls += 1;
    const entries = [entry(1, 'Started web server.', 6, 'nginx.service'), entry(2, 'bind() to 0.0.0.0:80 failed (98: Address already in use)', 3, 'nginx.service')];
    if (polls > 0) entries.push(entry(3, 'a line that came later', 4, 'nginx.service'));
    return json(route, { entries, folded: [] });
  });
  await context.route('**/api/v1/diagnose?*', (route) => json(route, { scope: 'unit nginx.service', checked: ['nginx.service'], findings: [{
    target_kind: 'unit', target: 'nginx.service', cause: 'port-in-use', subject: '0.0.0.0:80', summary: 'nginx.service failed: port 80 is already in use',
    state: 'failed', evidence: [{ time_ms: now - 30000, cursor: 'c2', message: 'bind() to 0.0.0.0:80 failed (98: Address already in use)', count: 3, last_time_ms: now, priority: 3, unit: 'nginx.service' }],
    entries_seen: 2, fix: { instruction: 'stop what holds port 80, then restart nginx.service', plan: { op: 'service.restart', args: { unit: 'nginx.service' } } } }] }));
  await page.goto(BASE + '/logs');
  await page.locator('main[data-ready]').waitFor();
  const firstRow = page.locator('section.services tbody tr').first();
  await firstRow.filter({ hasText: 'nginx.service' }).waitFor();
  await page.locator('td', { hasText: 'Address already in use' }).first().waitFor();
  await page.getByRole('button', { name: 'Diagnose: nginx.service' }).click();
  await page.getByRole('heading', { name: 'Diagnosis of nginx.service' }).waitFor();
  await page.locator('.finding', { hasText: 'port-in-use' }).filter({ hasText: 'stop what holds port 80' }).waitFor();
  await page.locator('.finding', { hasText: 'service.restart' }).waitFor();
  await page.locator('.evidence li', { hasText: '×3' }).waitFor();
  await axe(page, '/logs with a diagnosis');
  await page.screenshot({ path: join(ART, 'logs-diagnosis.png'), fullPage: true });
  await page.getByLabel('Unit').fill('nginx.service');
  await page.getByLabel('Priority').selectOption('3');
  await page.getByLabel('Contains').fill('bind');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('td', { hasText: 'Address already in use' }).first().waitFor();
  const filtered = journalCalls.find((c) => c.grep === 'bind');
  assert.deepEqual(filtered, { limit: '200', unit: 'nginx.service', priority: '3', grep: 'bind' });
  await page.getByLabel('Contains').fill('');
  await page.getByLabel('Follow live').check();
  await page.locator('td', { hasText: 'a line that came later' }).waitFor({ timeout: 10000 });
  assert.equal(await page.locator('td', { hasText: 'a line that came later' }).count(), 1, 'follow deduplicates by cursor');
  assert.ok(journalCalls.some((c) => c.since_ms && c.unit === 'nginx.service' && c.priority === '3'), JSON.stringify(journalCalls));
  assert.deepEqual(problems, []);
  await context.close();
});

await test('a sandbox that fails shows a notice on another page; "take a look" asks the chat, which diagnoses it', async () => {
  if (!(await endpoint('/api/v1/sandboxes'))) return { skipped: 'endpoint not yet available (/api/v1/sandboxes)' };
  const { context, page, problems } = await open();
  await page.goto(BASE + '/drives');
  await page.locator('main[data-ready]').waitFor();
  const post = (path, body) => fetch(BASE + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal((await post('/api/v1/sandboxes', { name: 'kaputt', template: 'nosleep' })).status, 201);
  // The tree has no `sleep`: the start fails for real and the failure watch (every metrics sample) announces it.
  assert.notEqual((await post('/api/v1/sandboxes/kaputt/start', {})).status, 200);
  const note = page.locator('.notice[role=alert]', { hasText: 'The sandbox kaputt has failed' });
  await note.waitFor({ timeout: 30000 });
  await axe(page, '/drives with a failure notice');
  await page.screenshot({ path: join(ART, 'failure-notice.png'), fullPage: true });
  // The Sandboxes page offers Diagnose on the failed sandbox.
  await page.getByRole('link', { name: 'Sandboxes' }).click();
  await page.getByRole('button', { name: 'Diagnose: kaputt' }).click();
  await page.getByRole('heading', { name: 'Diagnosis of kaputt' }).waitFor();
  await page.locator('.finding', { hasText: 'sandbox-failed' }).waitFor();
  await note.getByRole('button', { name: 'Yes, take a look' }).click();
  await page.waitForURL(BASE + '/chat');
  await page.locator('.msg.me', { hasText: 'why did the sandbox kaputt fail?' }).waitFor();
  await page.locator('.msg.bot .reply', { hasText: 'kaputt' }).last().waitFor();
  const audit = await (await fetch(BASE + '/api/v1/audit?operation=system.diagnose&limit=20')).json();
  assert.ok(audit.some((r) => r.args && r.args.sandbox === 'kaputt' && r.frontend === 'chat'), JSON.stringify(audit));
  assert.equal((await fetch(BASE + '/api/v1/sandboxes/kaputt?confirm=true', { method: 'DELETE' })).status, 200);
  assert.deepEqual(problems, []);
  await context.close();
});

await test('login flow as a non-loopback browser would see it (stand-in session endpoint): CSRF header sent', async () => {
  const { context, page, problems } = await open({ locale: 'de-DE' });
  let loggedIn = false;
  const csrfSeen = [];
  await context.route('**/api/v1/session', (route) => {
    if (route.request().method() === 'POST') {
      const ok = JSON.parse(route.request().postData()).token === 'right';
      loggedIn = ok;
      return route.fulfill({ status: ok ? 200 : 401, contentType: 'application/json', body: JSON.stringify(ok
        ? { authenticated: true, via: 'cookie', csrf_token: 'c5rf' } : { error: { code: 'unauthenticated', message: 'the token is wrong' } }) });
    }
    return route.fulfill({ contentType: 'application/json', body: JSON.stringify(loggedIn
      ? { authenticated: true, via: 'cookie', csrf_token: 'c5rf' } : { authenticated: false, via: null, csrf_token: null }) });
  });
  await context.route('**/api/v1/chat', (route) => { csrfSeen.push(route.request().headers()['x-csrf-token']); return route.continue(); });
  await page.goto(BASE + '/audit');
  await page.waitForURL(/\/login\?next=%2Faudit$/);
  await page.locator('main[data-ready]').waitFor();
  await axe(page, '/login form');
  await page.screenshot({ path: join(ART, 'login-form.png'), fullPage: true });
  await page.getByLabel('Web-Token').fill('wrong');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'Das Token ist falsch' }).waitFor();
  await page.getByLabel('Web-Token').fill('right');
  await page.getByRole('button', { name: 'Anmelden' }).click();
  await page.waitForURL(BASE + '/audit');
  await page.getByRole('button', { name: 'Abmelden' }).waitFor();
  await page.getByRole('link', { name: 'Chat' }).click();
  await page.getByLabel('Nachricht').fill('zeig mir den Systemstatus');
  await page.keyboard.press('Enter');
  await page.locator('.msg.bot .reply').first().waitFor();
  assert.deepEqual(csrfSeen, ['c5rf']);
  assert.deepEqual(problems.filter((p) => !p.includes('401')), []);
  await context.close();
});

await browser.close();

console.log('\nper-page figures over loopback (cold cache):');
console.log('page         bytes  first-render-ms  data-shown-ms');
for (const f of figures) console.log(`${f.page.padEnd(10)} ${String(f.bytes).padStart(7)}  ${String(f.fcp_ms).padStart(15)}  ${String(f.ready_ms).padStart(13)}`);
console.log(`\n${results.filter((r) => r[1] === 'ok').length} passed, ${results.filter((r) => r[1] === 'skipped').length} skipped, ${failed} failed`);
process.exit(failed ? 1 : 0);
