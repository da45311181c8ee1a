// System: host overview, supervisor task health (live through the task-state-changed event), the web port's TLS
// certificate fingerprint (GET /api/v1/web/cert), and CPU, memory,
// disk and load charts (uPlot) over the last hour, day or 30 days: GET /api/v1/system/history?since_ms=… (the daemon
// answers every sample for an hour, minute means for a day, hour means for 30 days), then live `metrics-sampled`
// events (the hour range) or a refetch every minute (the longer ones). Against a daemon without system.history the
// page samples GET /api/v1/system/status itself (last hour only).
import uPlot from 'uplot';
import { h, mount, fmtBytes, fmtDuration } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { get, on, hasEndpoint, ApiError } from '../api.js';
import { errorBox, table } from './common.js';

const HOUR_MS = 3600 * 1000;
// The ranges the page offers: [key, span, i18n key]; the choice is kept for the tab.
const RANGES = [['1h', HOUR_MS, 'range1h'], ['24h', 24 * HOUR_MS, 'range24h'], ['30d', 30 * 24 * HOUR_MS, 'range30d']];
const RANGE_KEY = 'cacheos.metrics.range';
const POLL_MS = 10000;
const STORE = 'cacheos.metrics';

// Samples survive navigation and reloads of this tab: [{t, cpu, mem, disk, load1, load5, load15}].
function loadSamples() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE) || '[]');
    return s.filter((x) => x.t > Date.now() - HOUR_MS);
  } catch { return []; }
}

function fromMetric(m) {
  return {
    t: m.time_ms, cpu: m.cpu_percent, load1: m.load_one, load5: m.load_five, load15: m.load_fifteen,
    mem: m.memory_total_bytes ? (100 * m.memory_used_bytes) / m.memory_total_bytes : null,
    disk: m.disk_total_bytes ? (100 * m.disk_used_bytes) / m.disk_total_bytes : null,
  };
}

function sampleOf(st) {
  const root = st.disks.find((d) => d.mount_point === '/') || st.disks[0];
  return {
    t: st.time_ms, cpu: st.cpu_percent, load1: st.load.one, load5: st.load.five, load15: st.load.fifteen,
    mem: st.memory.total_bytes ? (100 * st.memory.used_bytes) / st.memory.total_bytes : null,
    disk: root && root.total_bytes ? (100 * root.used_bytes) / root.total_bytes : null,
  };
}

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

function chart(el, title, series, samples, maxY, spanMs) {
  const fg = css('--fg'), grid = css('--border');
  const data = [samples.map((s) => s.t / 1000), ...series.map(([key]) => samples.map((s) => s[key]))];
  const width = Math.max(240, el.clientWidth - 8);
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
  return new uPlot({
    width, height: 160, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: true, range: () => [(Date.now() - spanMs) / 1000, Date.now() / 1000] }, y: maxY ? { range: [0, maxY] } : { range: (u, min, max) => [0, Math.max(1, max * 1.2)] } },
    axes: [{ ...axis }, { ...axis, size: 44 }],
    series: [{}, ...series.map(([, color, label]) => ({ label, stroke: css(color), width: 2, spanGaps: true }))],
  }, data, el);
}

export async function systemPage(main) {
  const overview = h('section');
  const charts = h('section');
  const sup = h('section');
  const cert = h('section');
  main.append(overview, charts, sup, cert);
  const serverHistory = await hasEndpoint('/api/v1/system/history');
  let samples = serverHistory ? [] : loadSamples();
  let plots = [];
  let timer = null;
  let range = RANGES.find((r) => r[0] === sessionStorage.getItem(RANGE_KEY)) || RANGES[0];
  if (!serverHistory) range = RANGES[0];
  const span = () => range[1];

  const specs = [
    ['cpu', [['cpu', '--c1', t('cpu')]], 100, (s) => (s.cpu == null ? '–' : `${s.cpu.toFixed(1)} %`)],
    ['memoryUse', [['mem', '--c2', t('memoryUse')]], 100, (s) => (s.mem == null ? '–' : `${s.mem.toFixed(1)} %`)],
    ['disk', [['disk', '--c3', t('disk')]], 100, (s) => (s.disk == null ? '–' : `${s.disk.toFixed(1)} % (/)`)],
    ['load', [['load1', '--c1', '1 min'], ['load5', '--c2', '5 min'], ['load15', '--c3', '15 min']], null,
      (s) => `${s.load1.toFixed(2)} / ${s.load5.toFixed(2)} / ${s.load15.toFixed(2)}`],
  ];

  function renderCharts() {
    for (const p of plots) p.destroy();
    plots = [];
    const last = samples[samples.length - 1];
    const boxes = specs.map(([key, series, max, fmt]) => {
      const canvasBox = h('div', { class: 'plot', role: 'img', 'aria-label': `${t(key)}: ${last ? fmt(last) : '–'}` });
      const fig = h('figure', { class: 'card chart' }, h('figcaption', {}, h('strong', {}, t(key)), ' ', last ? fmt(last) : '–',
        series.length > 1 ? h('span', { class: 'keys' }, series.map(([, c, l]) => h('span', { class: 'key', 'data-c': c }, l))) : null),
      canvasBox);
      return [fig, canvasBox, series, max];
    });
    const picker = serverHistory ? h('div', { class: 'row', role: 'group', 'aria-label': t('range') }, RANGES.map((r) =>
      h('button', { class: 'btn' + (r === range ? ' primary' : ''), type: 'button', 'aria-pressed': String(r === range),
        'data-range': r[0], onclick: () => choose(r) }, t(r[2])))) : null;
    mount(charts, h('h2', { id: 'ch-h' }, t(serverHistory ? range[2] : 'charts')), picker,
      serverHistory ? null : h('p', { class: 'muted' }, t('historyNote')),
      h('div', { class: 'grid2' }, boxes.map((b) => b[0])));
    for (const [, box, series, max] of boxes) plots.push(chart(box, '', series, samples, max, span()));
  }

  function renderOverview(st) {
    mount(overview, h('h2', { id: 'ov-h' }, t('overview')),
      h('dl', { class: 'kv card' },
        h('dt', {}, t('host')), h('dd', {}, st.hostname),
        h('dt', {}, t('os')), h('dd', {}, st.os_release.pretty_name),
        h('dt', {}, t('kernel')), h('dd', {}, st.kernel),
        h('dt', {}, t('uptime')), h('dd', {}, fmtDuration(st.uptime_seconds)),
        h('dt', {}, t('cpuCount')), h('dd', {}, String(st.cpu_count)),
        h('dt', {}, t('memoryUse')), h('dd', {}, `${fmtBytes(st.memory.used_bytes)} / ${fmtBytes(st.memory.total_bytes)}`),
        h('dt', {}, t('failedUnits')), h('dd', {}, st.failed_units == null ? '–' : String(st.failed_units))),
      table(t('disks'), [t('mounted'), t('fs'), t('used'), t('total'), t('avail')], st.disks.map((d) =>
        [h('code', {}, d.mount_point), d.fs_type, fmtBytes(d.used_bytes), fmtBytes(d.total_bytes), fmtBytes(d.available_bytes)]), true));
  }

  async function renderSupervisor() {
    try {
      const s = await get('/api/v1/supervisor/status');
      mount(sup, h('h2', { id: 'sup-h' }, t('supervisor')), h('p', {}, t('daemon', { version: s.version, state: s.state })),
        table(t('taskTable'), [t('task'), t('state'), t('restarts'), t('lastError'), t('since')], s.tasks.map((x) =>
          [x.name, h('span', { class: 'badge ' + x.state }, x.state), String(x.restarts), x.last_error || '–', fmtTime(x.since_ms)])));
    } catch (e) { mount(sup, errorBox(e)); }
  }

  // issue 19: the web port's certificate fingerprint, so a person can compare it with the browser's and the console's.
  async function renderCert() {
    try {
      const c = await get('/api/v1/web/cert');
      mount(cert, h('h2', { id: 'cert-h' }, t('certTitle')),
        h('dl', { class: 'kv card' },
          h('dt', {}, t('certFingerprint')), h('dd', {}, h('code', { class: 'fingerprint', 'data-testid': 'cert-fingerprint' }, c.fingerprint_sha256)),
          h('dt', {}, t('certPath')), h('dd', {}, h('code', {}, c.path)),
          h('dt', {}, t('certRedirect')), h('dd', {}, c.redirects_plain_http ? t('certRedirects') : t('certNoRedirect'))),
        h('p', { class: 'muted' }, t('certHint')));
    } catch (e) {
      if (e instanceof ApiError && (e.status === 409 || e.missingEndpoint)) {
        mount(cert, h('h2', { id: 'cert-h' }, t('certTitle')), h('p', { class: 'muted' }, t('certNone')));
      } else mount(cert, errorBox(e));
    }
  }

  function add(s) {
    if (!samples.length || samples[samples.length - 1].t < s.t) samples.push(s);
    samples = samples.filter((x) => x.t > Date.now() - span());
  }

  async function choose(r) {
    range = r;
    sessionStorage.setItem(RANGE_KEY, r[0]);
    samples = [];
    await fromServer();
  }

  async function overviewOnly() {
    try { renderOverview(await get('/api/v1/system/status')); } catch (e) { mount(overview, errorBox(e)); }
  }

  async function fromServer() {
    try {
      const hist = await get('/api/v1/system/history?since_ms=' + (Date.now() - span()));
      samples = [];
      for (const m of hist) add(fromMetric(m));
    } catch (e) { mount(charts, errorBox(e)); return; }
    renderCharts();
  }

  async function poll() {
    try {
      const st = await get('/api/v1/system/status');
      renderOverview(st);
      const s = sampleOf(st);
      if (!samples.length || samples[samples.length - 1].t !== s.t) samples.push(s);
      samples = samples.filter((x) => x.t > Date.now() - HOUR_MS);
      sessionStorage.setItem(STORE, JSON.stringify(samples));
      renderCharts();
    } catch (e) { mount(overview, errorBox(e)); }
  }

  const offs = [on('task-state-changed', () => renderSupervisor())];
  if (serverHistory) {
    // The hour range draws every sample as it comes; the longer ones show means and refetch once a minute.
    offs.push(on('metrics-sampled', (ev) => {
      if (range !== RANGES[0]) return;
      add(fromMetric(ev.sample)); if (!document.hidden) renderCharts();
    }));
    await Promise.all([overviewOnly(), fromServer(), renderSupervisor(), renderCert()]);
    timer = setInterval(() => { if (!document.hidden) { overviewOnly(); if (range !== RANGES[0]) fromServer(); } }, 60000);
  } else {
    await Promise.all([poll(), renderSupervisor(), renderCert()]);
    timer = setInterval(() => { if (!document.hidden) poll(); }, POLL_MS);
  }
  const rerender = () => renderCharts();
  const mq = matchMedia('(prefers-color-scheme: dark)');
  mq.addEventListener('change', rerender);
  document.addEventListener('cacheos-theme', rerender);
  window.addEventListener('resize', rerender);
  return () => {
    clearInterval(timer); for (const off of offs) off();
    mq.removeEventListener('change', rerender);
    document.removeEventListener('cacheos-theme', rerender);
    window.removeEventListener('resize', rerender);
    for (const p of plots) p.destroy();
  };
}
