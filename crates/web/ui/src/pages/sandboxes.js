// Sandboxes: list with state and resource use, create form (template, limits, network, binds, environment),
// start/stop/restart/remove, a command with streamed output (NDJSON), logs. Requests follow
// crates/web/src/sandboxes.rs; shows “not available” on a daemon without /api/v1/sandboxes.
import { h, mount, field, fmtBytes, confirmDialog, parseBytes } from '../dom.js';
import { t } from '../i18n.js';
import { get, post, del, stream, hasEndpoint, on, ApiError } from '../api.js';
import { unavailable, errorBox, table, act } from './common.js';
import { diagnoseInto } from './diagnose.js';

const num = (v) => (String(v).trim() === '' ? undefined : Number(String(v).trim().replace(',', '.')));

/** The create form's values as `sandbox.create` arguments; throws an Error (shown to the person) on bad input. */
export function createBody(f) {
  const cpu = num(f.cpu);
  if (cpu !== undefined && !(cpu > 0)) throw new Error(t('badCpu'));
  const tasks = num(f.tasks);
  if (tasks !== undefined && !(Number.isInteger(tasks) && tasks > 0)) throw new Error(t('badTasks'));
  const memory = f.memory.trim() === '' ? undefined : parseBytes(f.memory);
  if (memory === null) throw new Error(t('badSize', { value: f.memory }));
  const env = [];
  for (const line of f.env.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env.push([line.slice(0, i).trim(), line.slice(i + 1)]);
  }
  return { name: f.name.trim(), template: f.template, cpu, memory_max: memory, tasks_max: tasks, network: f.network,
    binds: f.binds, env, ephemeral: f.ephemeral };
}

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
  const diagBox = h('section', { class: 'card', 'aria-live': 'polite', hidden: true });
  main.append(listSec, diagBox, detailSec);

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
          logsOut.textContent = (r.lines || []).join('\n');
        } catch (err) { mount(logsOut, errorBox(err)); }
      } }, t('refresh')), logsOut);
    cmdIn.focus();
  }

  function renderList() {
    const rows = boxes.map((s) => {
      const n = encodeURIComponent(s.name);
      const btn = (label, f, cls = 'btn') => h('button', { class: cls, 'aria-label': `${label}: ${s.name}`, onclick: f }, label);
      const running = s.state === 'running';
      const l = s.limits || {};
      return [h('strong', {}, s.name), s.template, h('span', {}, s.state, s.last_error ? h('small', { class: 'muted' }, h('br'), s.last_error) : null),
        [l.cpu ? `${l.cpu} CPU` : null, l.memory_max ? `≤ ${fmtBytes(l.memory_max)}` : null,
          s.memory_current ? `${t('used')} ${fmtBytes(s.memory_current)}` : null,
          l.tasks_max ? `${l.tasks_max} ${t('tasks')}` : null, s.network, s.ip].filter(Boolean).join(', ') || '–',
        h('div', { class: 'actions wrap' },
          running ? btn(t('stop'), () => act(status, () => post(`/api/v1/sandboxes/${n}/stop`), reload))
            : btn(t('start'), () => act(status, () => post(`/api/v1/sandboxes/${n}/start`), reload)),
          btn(t('restart'), () => act(status, () => post(`/api/v1/sandboxes/${n}/restart`), reload)),
          btn(t('run'), () => runPanel(s)),
          s.state === 'failed' ? btn(t('diagnose'), () => { diagBox.hidden = false; diagnoseInto(diagBox, { sandbox: s.name }); }, 'btn primary') : null,
          btn(t('remove'), async () => {
            if (await confirmDialog(t('remove'), t('removeConfirm', { name: s.name }), t('remove'), t('cancel')))
              act(status, () => del(`/api/v1/sandboxes/${n}?confirm=true`), reload);
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
    for (const x of tpls) tplSel.append(h('option', { value: x.name }, x.description ? `${x.name} – ${x.description}` : x.name));
  } catch { /* templates unknown: leave empty */ }
  let driveNames = [];
  try {
    if (await hasEndpoint('/api/v1/drives')) driveNames = (await get('/api/v1/drives')).map((d) => d.name);
  } catch { /* drives unknown: no binds offered */ }
  const [nF, nIn] = field(t('name'), h('input', { type: 'text', required: true, autocomplete: 'off', pattern: '[a-z][a-z0-9\\-]{0,31}' }), t('sandboxNameHint'));
  const [tF] = field(t('template'), tplSel);
  const [cF, cIn] = field(t('cpus'), h('input', { type: 'text', inputmode: 'decimal', autocomplete: 'off' }), t('cpuHint'));
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
    act(status, () => post('/api/v1/sandboxes', createBody({ name: nIn.value, template: tplSel.value, cpu: cIn.value,
      memory: mIn.value, tasks: kIn.value, network: netIn.value, binds: [...binds.children].map((li) => li.read()),
      env: eIn.value, ephemeral: ephIn.checked })), reload);
  } }, h('h2', { id: 'sbc-h' }, t('createSandbox')), nF, tF, cF, mF, kF, netF,
  h('fieldset', {}, h('legend', {}, t('binds')), binds,
    h('button', { class: 'btn', type: 'button', disabled: driveNames.length === 0, onclick: addBind }, t('addBind'))),
  eF, ephF, h('button', { class: 'btn primary', type: 'submit' }, t('create')));
  main.append(form);
  // Changes made elsewhere (chat, CLI, another browser) show up live, and so does the resource use of running
  // sandboxes: the list is read again at each metrics sample (every few seconds) while one runs.
  let pending = null;
  const offOps = on('operation-finished', (ev) => {
    if (!String(ev.operation).startsWith('sandbox.') || pending) return;
    pending = setTimeout(() => { pending = null; reload(); }, 300);
  });
  const offSamples = on('metrics-sampled', () => {
    if (!pending && Array.isArray(boxes) && boxes.some((b) => b.state === 'running')) reload();
  });
  return () => { offOps(); offSamples(); };
}
