// Sandboxes: list with state and resource use, create form (template, limits, network, binds, environment),
// start/stop/restart/remove, a command with streamed output (NDJSON), logs. Against the provisional sandbox
// contract; shows “not available” until /api/v1/sandboxes exists.
import { h, mount, field, fmtBytes, confirmDialog } from '../dom.js';
import { t } from '../i18n.js';
import { get, post, del, stream, hasEndpoint, on, ApiError } from '../api.js';
import { unavailable, errorBox, table, act } from './common.js';

const num = (v) => (v === '' ? undefined : Number(v));

export async function sandboxesPage(main) {
  const status = h('div', { role: 'status', class: 'status' });
  const listSec = h('section');
  const detailSec = h('section', { 'aria-live': 'polite' });
  main.append(status);
  if (!(await hasEndpoint('/api/v1/sandboxes'))) { main.append(unavailable(t('sandboxes'), '/api/v1/sandboxes')); return; }
  let boxes;
  try {
    boxes = await get('/api/v1/sandboxes');
  } catch (e) {
    if (e instanceof ApiError && e.missingEndpoint) { main.append(unavailable(t('sandboxes'), '/api/v1/sandboxes')); return; }
    main.append(errorBox(e)); return;
  }
  main.append(listSec, detailSec);

  async function reload() {
    try { boxes = await get('/api/v1/sandboxes'); } catch (e) { mount(listSec, errorBox(e)); return; }
    renderList();
  }

  function runPanel(s) {
    const n = encodeURIComponent(s.name);
    const out = h('pre', { class: 'output', 'aria-label': t('output') });
    const code = h('p', { role: 'status' });
    const [cmdF, cmdIn] = field(t('command'), h('input', { type: 'text', autocomplete: 'off', required: true }), t('commandHint'));
    const logsOut = h('pre', { class: 'output', 'aria-label': t('logs') });
    const form = h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const argv = cmdIn.value.trim().split(/\s+/).filter(Boolean);
      mount(out); mount(code);
      try {
        await stream(`/api/v1/sandboxes/${n}/exec`, { argv }, (m) => {
          if (m.stream) out.append(h('span', { class: m.stream }, m.data));
          else if (m.exit_code !== undefined) code.textContent = t('exitCode', { code: m.exit_code });
          else if (m.error) code.append(errorBox(new ApiError(0, m.error.code, m.error.message)));
        });
      } catch (err) { mount(code, errorBox(err)); }
    } }, cmdF, h('button', { class: 'btn primary', type: 'submit' }, t('run')));
    mount(detailSec, h('h2', {}, t('runIn', { name: s.name })), form, out, code,
      h('h3', {}, t('logs')), h('button', { class: 'btn', onclick: async () => {
        try {
          const r = await get(`/api/v1/sandboxes/${n}/logs`);
          logsOut.textContent = Array.isArray(r) ? r.map((l) => (typeof l === 'string' ? l : l.message ?? JSON.stringify(l))).join('\n')
            : typeof r === 'string' ? r : JSON.stringify(r, null, 2);
        } catch (err) { mount(logsOut, errorBox(err)); }
      } }, t('refresh')), logsOut);
    cmdIn.focus();
  }

  function renderList() {
    const rows = boxes.map((s) => {
      const n = encodeURIComponent(s.name);
      const btn = (label, f, cls = 'btn') => h('button', { class: cls, 'aria-label': `${label}: ${s.name}`, onclick: f }, label);
      const running = s.state === 'running';
      return [h('strong', {}, s.name), s.template ?? '–', s.state ?? '–',
        [s.cpus ? `${s.cpus} CPU` : null, s.memory ? fmtBytes(s.memory) : null, s.network].filter(Boolean).join(', ') || '–',
        h('div', { class: 'actions wrap' },
          running ? btn(t('stop'), () => act(status, () => post(`/api/v1/sandboxes/${n}/stop`), reload))
            : btn(t('start'), () => act(status, () => post(`/api/v1/sandboxes/${n}/start`), reload)),
          btn(t('restart'), () => act(status, () => post(`/api/v1/sandboxes/${n}/restart`), reload)),
          btn(t('run'), () => runPanel(s)),
          btn(t('remove'), async () => {
            if (await confirmDialog(t('remove'), t('removeConfirm', { name: s.name }), t('remove'), t('cancel')))
              act(status, () => del(`/api/v1/sandboxes/${n}`), reload);
          }, 'btn danger'))];
    });
    mount(listSec, h('h2', { id: 'sb-h' }, t('sandboxesList')),
      boxes.length === 0 ? h('p', { class: 'empty' }, t('noSandboxes')) :
        table(t('sandboxesList'), [t('name'), t('template'), t('state'), t('resources'), t('actions')], rows));
  }
  renderList();

  // Create form.
  const tplSel = h('select', { required: true });
  try {
    if (!(await hasEndpoint('/api/v1/templates'))) throw new Error('no templates endpoint');
    const tpls = await get('/api/v1/templates');
    for (const x of tpls) {
      const name = typeof x === 'string' ? x : x.name;
      tplSel.append(h('option', { value: name }, typeof x === 'string' || !x.description ? name : `${name} – ${x.description}`));
    }
  } catch { /* templates unknown: leave empty */ }
  let driveNames = [];
  try {
    if (await hasEndpoint('/api/v1/drives')) driveNames = (await get('/api/v1/drives')).map((d) => d.name);
  } catch { /* drives unknown: no binds offered */ }
  const [nF, nIn] = field(t('name'), h('input', { type: 'text', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9_\\-]{1,64}' }));
  const [tF] = field(t('template'), tplSel);
  const [cF, cIn] = field(t('cpus'), h('input', { type: 'number', min: '0.1', step: '0.1' }));
  const [mF, mIn] = field(t('memory'), h('input', { type: 'text', autocomplete: 'off' }), t('memoryHint'));
  const [kF, kIn] = field(t('tasks'), h('input', { type: 'number', min: '1', step: '1' }));
  const [netF, netIn] = field(t('network'), h('select', {}, h('option', { value: 'none' }, t('netNone')), h('option', { value: 'nat' }, t('netNat'))));
  const [eF, eIn] = field(t('env'), h('textarea', { rows: '3' }), t('envHint'));
  const [ephF, ephIn] = field(t('ephemeral'), h('input', { type: 'checkbox' }));
  const binds = h('ul', { class: 'plain binds' });
  const addBind = () => {
    const sel = h('select', {}, driveNames.map((d) => h('option', { value: d }, d)));
    const [sf] = field(t('drive'), sel);
    const [rf, rw] = field(t('writable'), h('input', { type: 'checkbox' }));
    const li = h('li', { class: 'bind' }, sf, rf, h('button', { class: 'btn', type: 'button', onclick: () => li.remove() }, t('removeBind')));
    li.read = () => ({ drive: sel.value, read_write: rw.checked });
    binds.append(li);
    sel.focus();
  };
  const form = h('form', { class: 'card', 'aria-labelledby': 'sbc-h', onsubmit: (e) => {
    e.preventDefault();
    const env = {};
    for (const line of eIn.value.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) env[line.slice(0, i).trim()] = line.slice(i + 1);
    }
    const body = { name: nIn.value.trim(), template: tplSel.value, cpus: num(cIn.value), memory: mIn.value.trim() || undefined,
      tasks: num(kIn.value), network: netIn.value, binds: [...binds.children].map((li) => li.read()), env, ephemeral: ephIn.checked };
    act(status, () => post('/api/v1/sandboxes', body), reload);
  } }, h('h2', { id: 'sbc-h' }, t('createSandbox')), nF, tF, cF, mF, kF, netF,
  h('fieldset', {}, h('legend', {}, t('binds')), binds,
    h('button', { class: 'btn', type: 'button', disabled: driveNames.length === 0, onclick: addBind }, t('addBind'))),
  eF, ephF, h('button', { class: 'btn primary', type: 'submit' }, t('create')));
  main.append(form);
  // Changes made elsewhere (chat, CLI, another browser) show up live.
  let pending = null;
  return on('operation-finished', (ev) => {
    if (!String(ev.operation).startsWith('sandbox.') || pending) return;
    pending = setTimeout(() => { pending = null; reload(); }, 300);
  });
}
