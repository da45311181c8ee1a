// Logs (issue 16): the appliance's services, failed first, each with "Diagnose"; and the journal with filters
// (unit, priority, period, text) and live follow. Follow polls journal.query every 2 s for entries after the newest
// one shown (deduplicated by cursor), so it needs nothing but the REST endpoint.
import { h, mount, field } from '../dom.js';
import { t } from '../i18n.js';
import { get, hasEndpoint } from '../api.js';
import { errorBox, table, unavailable } from './common.js';
import { diagnoseInto } from './diagnose.js';

const PRIOS = [['', 'any'], ['3', 'prioErr'], ['4', 'prioWarning'], ['6', 'prioInfo'], ['7', 'prioDebug']];
const PERIODS = [['', 'anyTime'], ['900', 'lastMinutes'], ['3600', 'lastHour'], ['86400', 'lastDay']];
const PRIO_NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];
const FOLLOW_MS = 2000;

export async function logsPage(main) {
  if (!(await hasEndpoint('/api/v1/journal'))) { main.append(unavailable(t('logs'), '/api/v1/journal')); return; }
  const svcSec = h('section', { class: 'services' });
  const diagBox = h('section', { class: 'card', 'aria-live': 'polite', hidden: true });
  const [unitF, unitIn] = field(t('unit'), h('input', { type: 'text', autocomplete: 'off', placeholder: 'nginx.service' }));
  const [prioF, prioIn] = field(t('priority'), h('select', {}, PRIOS.map(([v, k]) => h('option', { value: v }, t(k)))));
  const [perF, perIn] = field(t('period'), h('select', {}, PERIODS.map(([v, k]) => h('option', { value: v }, t(k)))));
  const [grepF, grepIn] = field(t('containsText'), h('input', { type: 'search', autocomplete: 'off' }));
  const followIn = h('input', { type: 'checkbox', id: 'log-follow' });
  const followF = h('div', { class: 'field check' }, followIn, h('label', { for: 'log-follow' }, t('follow')));
  const results = h('section', { class: 'journal' });
  let entries = [];
  let timer = null;

  async function services() {
    try {
      // Without systemd (a development daemon off the appliance) there are no units: say so instead of asking.
      const st = await get('/api/v1/system/status');
      if (st.failed_units == null) { mount(svcSec, h('h2', {}, t('services')), h('p', { class: 'empty' }, t('noSystemd'))); return; }
      const list = await get('/api/v1/services');
      list.sort((a, b) => Number(b.failed) - Number(a.failed) || a.name.localeCompare(b.name));
      const rows = list.map((s) => [h('code', {}, s.name), s.description || '–',
        h('span', { class: 'badge ' + (s.failed ? 'error' : 'ok') }, `${s.active_state} (${s.sub_state})`),
        h('div', { class: 'actions' },
          h('button', { class: s.failed ? 'btn primary' : 'btn', 'aria-label': `${t('diagnose')}: ${s.name}`, onclick: () => diagnose({ unit: s.name }) }, t('diagnose')),
          h('button', { class: 'btn', 'aria-label': `${t('showLogs')}: ${s.name}`, onclick: () => { unitIn.value = s.name; load(); } }, t('showLogs')))]);
      mount(svcSec, h('h2', {}, t('services')),
        rows.length ? table(t('serviceList'), [t('unit'), t('description'), t('state'), t('actions')], rows) : h('p', { class: 'empty' }, t('noServices')));
    } catch (e) { mount(svcSec, h('h2', {}, t('services')), errorBox(e)); }
  }

  function diagnose(target) {
    diagBox.hidden = false;
    diagnoseInto(diagBox, target);
  }

  function query(afterUs) {
    const q = new URLSearchParams({ limit: '200' });
    if (unitIn.value.trim()) q.set('unit', unitIn.value.trim());
    if (prioIn.value) q.set('priority', prioIn.value);
    if (afterUs) q.set('since_ms', String(Math.floor(afterUs / 1000)));
    else if (perIn.value) q.set('since_ms', String(Date.now() - Number(perIn.value) * 1000));
    if (grepIn.value.trim()) q.set('grep', grepIn.value.trim());
    return `/api/v1/journal?${q}`;
  }

  function render() {
    const rows = entries.slice(-500).reverse().map((e) => [new Date(e.time_us / 1000).toLocaleString(),
      e.priority == null ? '–' : h('span', { class: 'badge ' + (e.priority <= 3 ? 'error' : e.priority === 4 ? 'warning' : 'ok') }, PRIO_NAMES[e.priority]),
      e.unit ? h('code', {}, e.unit) : '–', h('span', { class: 'logmsg' }, e.message)]);
    mount(results, h('h2', {}, t('journal')),
      rows.length ? table(t('journalEntries'), [t('time'), t('priority'), t('unit'), t('message')], rows) : h('p', { class: 'empty' }, t('noEntries')));
  }

  let generation = 0;
  async function load() {
    const mine = ++generation;
    try {
      const page = await get(query(null));
      if (mine !== generation) return;
      entries = page.entries || [];
      render();
    } catch (e) { mount(results, h('h2', {}, t('journal')), errorBox(e)); }
  }

  async function poll() {
    const mine = generation;
    try {
      const last = entries.length ? entries[entries.length - 1].time_us : Date.now() * 1000;
      const page = await get(query(last));
      if (mine !== generation) return;
      const seen = new Set(entries.map((e) => e.cursor));
      const fresh = (page.entries || []).filter((e) => !seen.has(e.cursor));
      if (fresh.length) { entries = entries.concat(fresh).slice(-2000); render(); }
    } catch { /* the next tick tries again */ }
  }

  followIn.addEventListener('change', () => {
    if (timer) { clearInterval(timer); timer = null; }
    if (followIn.checked) timer = setInterval(poll, FOLLOW_MS);
  });
  const form = h('form', { class: 'card filters', 'aria-label': t('filters'), onsubmit: (e) => { e.preventDefault(); load(); } },
    unitF, prioF, perF, grepF, followF, h('button', { class: 'btn primary', type: 'submit' }, t('apply')));
  main.append(svcSec, diagBox, form, results);
  await Promise.all([services(), load()]);
  return () => { if (timer) clearInterval(timer); };
}
