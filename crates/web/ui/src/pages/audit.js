// Audit: every operation, filterable by period, front end, operation and outcome; chat-originated records show
// the utterance and session. Pages backwards with before_id.
import { h, mount, field } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { get } from '../api.js';
import { errorBox, table } from './common.js';

const PERIODS = [['', 'anyTime'], ['900', 'lastMinutes'], ['3600', 'lastHour'], ['86400', 'lastDay'], ['604800', 'lastWeek']];

function principal(p) {
  if (!p) return '–';
  return p.kind === 'uid' ? `uid ${p.uid}` : p.kind;
}

export async function auditPage(main) {
  const [perF, perIn] = field(t('period'), h('select', {}, PERIODS.map(([v, k]) => h('option', { value: v }, t(k)))));
  const [feF, feIn] = field(t('frontend'), h('select', {}, h('option', { value: '' }, t('any')),
    ['rest', 'dbus', 'cli', 'chat', 'internal'].map((v) => h('option', { value: v }, v))));
  const [opF, opIn] = field(t('operation'), h('input', { type: 'text', autocomplete: 'off', placeholder: 'system.' }), t('operationHint'));
  const [ouF, ouIn] = field(t('outcome'), h('select', {}, h('option', { value: '' }, t('any')),
    ['ok', 'error', 'denied'].map((v) => h('option', { value: v }, v))));
  const results = h('section', { 'aria-live': 'polite' });
  let records = [];

  function query(beforeId) {
    const q = new URLSearchParams({ limit: '100' });
    if (perIn.value) q.set('since_ms', String(Date.now() - Number(perIn.value) * 1000));
    if (feIn.value) q.set('frontend', feIn.value);
    if (opIn.value.trim()) q.set('operation', opIn.value.trim());
    if (ouIn.value) q.set('outcome', ouIn.value);
    if (beforeId) q.set('before_id', String(beforeId));
    return `/api/v1/audit?${q}`;
  }

  function render(hasMore) {
    const rows = records.map((r) => [
      fmtTime(r.time_ms), h('code', {}, r.operation), r.frontend, principal(r.principal),
      h('span', { class: 'badge ' + r.outcome }, r.outcome),
      r.utterance ? h('span', {}, `„${r.utterance}“`, r.session ? h('small', { class: 'muted' }, h('br'), `${t('session')} ${r.session}`) : null) : '–',
      r.error ? h('span', { class: 'error' }, r.error) : (r.args ? h('code', {}, JSON.stringify(r.args)) : '–'),
    ]);
    mount(results, h('h2', { id: 'au-h', class: 'sr-only' }, t('audit')),
      records.length === 0 ? h('p', { class: 'empty' }, t('noRecords')) :
        table(t('audit'), [t('time'), t('operation'), t('frontend'), t('principal'), t('outcome'), t('utterance'), t('details')], rows),
      hasMore ? h('button', { class: 'btn', onclick: () => load(true) }, t('more')) : null);
  }

  let generation = 0;
  async function load(more) {
    const mine = ++generation;
    try {
      const batch = await get(query(more && records.length ? records[records.length - 1].id : null));
      if (mine !== generation) return; // a newer query was started meanwhile
      records = more ? records.concat(batch) : batch;
      render(batch.length === 100);
    } catch (e) { mount(results, errorBox(e)); }
  }

  const form = h('form', { class: 'card filters', 'aria-label': t('filters'), onsubmit: (e) => { e.preventDefault(); load(false); } },
    perF, feF, opF, ouF, h('button', { class: 'btn primary', type: 'submit' }, t('apply')));
  main.append(form, results);
  await load(false);
}
