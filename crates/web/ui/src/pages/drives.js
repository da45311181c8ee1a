// Drives: attached images with their partitions and usage; attach, detach, snapshot, discard, commit, persist,
// create, browse, upload. Requests follow crates/web/src/drives.rs; shows “not available” on a daemon without
// /api/v1/drives.
import { h, mount, field, fmtBytes, confirmDialog, parseBytes } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { get, post, hasEndpoint, on, upload, ApiError } from '../api.js';
import { unavailable, errorBox, table, act } from './common.js';

export async function drivesPage(main) {
  const status = h('div', { role: 'status', class: 'status' });
  const listSec = h('section');
  const filesSec = h('section', { 'aria-live': 'polite' });
  main.append(status);

  if (!(await hasEndpoint('/api/v1/drives'))) { main.append(unavailable(t('drives'), '/api/v1/drives')); return; }
  let drives;
  try {
    drives = await get('/api/v1/drives');
  } catch (e) {
    if (e instanceof ApiError && e.missingEndpoint) { main.append(unavailable(t('drives'), '/api/v1/drives')); return; }
    main.append(errorBox(e)); return;
  }
  main.append(listSec, filesSec);

  async function reload() {
    try { drives = await get('/api/v1/drives'); } catch (e) { mount(listSec, errorBox(e)); return; }
    renderList();
  }

  async function browse(drive, path) {
    mount(filesSec, h('h2', { id: 'files-h' }, t('files', { name: drive.name })), h('p', { class: 'muted' }, t('loading')));
    try {
      const { entries } = await get(`/api/v1/drives/${encodeURIComponent(drive.name)}/files?path=${encodeURIComponent(path)}`);
      const up = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
      mount(filesSec, h('h2', { id: 'files-h' }, t('files', { name: drive.name })), h('p', {}, h('code', {}, '/' + path)),
        path ? h('button', { class: 'btn', onclick: () => browse(drive, up) }, t('up')) : null,
        entries.length === 0 ? h('p', { class: 'muted' }, t('emptyDir')) :
          table(t('files', { name: drive.name }), [t('name'), t('kind'), t('size')], entries.map((f) => [
            f.kind === 'dir' ? h('button', { class: 'link', onclick: () => browse(drive, path ? `${path}/${f.name}` : f.name) }, f.name + '/') : f.name,
            f.kind, f.kind === 'file' ? fmtBytes(f.size) : '–'])));
    } catch (e) { mount(filesSec, errorBox(e)); }
  }

  function actions(d) {
    const n = encodeURIComponent(d.name);
    const btn = (label, f, cls = 'btn') => h('button', { class: cls, 'aria-label': `${label}: ${d.name}`, onclick: f }, label);
    return h('div', { class: 'actions wrap' },
      btn(t('browse'), () => browse(d, '')),
      d.snapshot ? null : btn(t('takeSnapshot'), () => act(status, () => post(`/api/v1/drives/${n}/snapshot`), reload)),
      d.snapshot ? btn(t('commit'), async () => {
        if (await confirmDialog(t('commit'), t('commitConfirm', { name: d.name }), t('confirm'), t('cancel')))
          act(status, () => post(`/api/v1/drives/${n}/commit`), reload);
      }) : null,
      d.snapshot ? btn(t('discard'), async () => {
        if (await confirmDialog(t('discard'), t('discardConfirm', { name: d.name }), t('confirm'), t('cancel')))
          act(status, () => post(`/api/v1/drives/${n}/discard`), reload);
      }, 'btn danger') : null,
      btn(d.persistent ? t('unpersist') : t('persist'),
        () => act(status, () => post(`/api/v1/drives/${n}/persist`, { persistent: !d.persistent }), reload)),
      btn(t('detach'), async () => {
        if (await confirmDialog(t('detach'), t('detachConfirm', { name: d.name }), t('detach'), t('cancel')))
          act(status, () => post(`/api/v1/drives/${n}/detach`, {}), reload);
      }, 'btn danger'));
  }

  function renderList() {
    const rows = drives.map((d) => [
      h('strong', {}, d.name),
      h('span', {}, h('code', {}, d.image), h('br'), `${d.format}, ${fmtBytes(d.virtual_size)}`),
      h('span', {}, d.state, h('br'), d.read_write ? t('readWrite') : t('readOnly'),
        d.persistent ? ', ' + t('persistent').toLowerCase() : '',
        d.attached_ms ? h('small', { class: 'muted' }, h('br'), fmtTime(d.attached_ms)) : null),
      h('ul', { class: 'plain' }, (d.partitions || []).map((p) => h('li', {},
        h('code', {}, p.device), ` ${p.fs_type || '?'}${p.label ? ` „${p.label}“` : ''}, ${fmtBytes(p.size)}`,
        p.mount_point ? h('span', {}, ' → ', h('code', {}, p.mount_point)) : null,
        p.used !== null && p.used !== undefined ? h('span', {}, ` (${t('used')} ${fmtBytes(p.used)}, ${t('free')} ${fmtBytes(p.free)})`) : null))),
      (d.used_by || []).join(', ') || '–',
      actions(d),
    ]);
    mount(listSec, h('h2', { id: 'drives-h' }, t('drivesList')),
      drives.length === 0 ? h('p', { class: 'empty' }, t('noDrives')) :
        table(t('drivesList'), [t('name'), t('image'), t('state'), t('partitions'), t('usedBy'), t('actions')], rows));
  }
  renderList();

  // Attach.
  const imgSel = h('select', {}, h('option', { value: '' }, t('choose')));
  const [pathF, pathIn] = field(t('imagePath'), h('input', { type: 'text', autocomplete: 'off' }));
  const [nameF, nameIn] = field(t('name'), h('input', { type: 'text', autocomplete: 'off' }));
  const [rwF, rwIn] = field(t('writable'), h('input', { type: 'checkbox' }));
  const [mountF, mountIn] = field(t('mountIt'), h('input', { type: 'checkbox', checked: true }));
  const [scanF, scanIn] = field(t('partscan'), h('input', { type: 'checkbox', checked: true }));
  const [imgF] = field(t('fromImages'), imgSel);
  imgSel.addEventListener('change', () => { if (imgSel.value) pathIn.value = imgSel.value; });
  try {
    if (!(await hasEndpoint('/api/v1/images'))) throw new Error('no images endpoint');
    const images = await get('/api/v1/images');
    for (const i of images) imgSel.append(h('option', { value: i.path }, `${i.name} (${fmtBytes(i.size)}, ${fmtTime(i.modified_ms)})`));
    if (images.length === 0) imgSel.append(h('option', { value: '', disabled: true }, t('noImages')));
  } catch { imgSel.disabled = true; }
  const attachForm = h('form', { class: 'card', 'aria-labelledby': 'attach-h', onsubmit: (e) => {
    e.preventDefault();
    const body = { path: pathIn.value.trim(), read_write: rwIn.checked, mount: mountIn.checked, partscan: scanIn.checked };
    if (nameIn.value.trim()) body.name = nameIn.value.trim();
    act(status, () => post('/api/v1/drives', body), reload);
  } }, h('h2', { id: 'attach-h' }, t('attachTitle')), imgF, pathF, nameF, rwF, mountF, scanF,
  h('button', { class: 'btn primary', type: 'submit' }, t('attach')));

  // Create.
  const [cpF, cpIn] = field(t('imagePath'), h('input', { type: 'text', autocomplete: 'off', required: true }));
  const [csF, csIn] = field(t('size'), h('input', { type: 'text', required: true, placeholder: '1G' }), t('sizeHint'));
  const [cfF, cfIn] = field(t('format'), h('select', {}, ['raw', 'qcow2'].map((v) => h('option', { value: v }, v))));
  const [cfsF, cfsIn] = field(t('fs'), h('select', {}, ['ext4', 'xfs', 'btrfs', 'vfat'].map((v) => h('option', { value: v }, v))));
  const [clF, clIn] = field(t('label'), h('input', { type: 'text', autocomplete: 'off' }));
  const [caF, caIn] = field(t('attachAfter'), h('input', { type: 'checkbox', checked: true }));
  const createForm = h('form', { class: 'card', 'aria-labelledby': 'create-h', onsubmit: (e) => {
    e.preventDefault();
    act(status, () => {
      const size = parseBytes(csIn.value);
      if (size === null) throw new Error(t('badSize', { value: csIn.value }));
      const body = { path: cpIn.value.trim(), size, format: cfIn.value, fs: cfsIn.value, attach: caIn.checked };
      if (clIn.value.trim()) body.label = clIn.value.trim();
      return post('/api/v1/drives/create', body);
    }, reload);
  } }, h('h2', { id: 'create-h' }, t('createTitle')), cpF, csF, cfF, cfsF, clF, caF,
  h('button', { class: 'btn primary', type: 'submit' }, t('create')));
  main.append(h('div', { class: 'grid2' }, attachForm, createForm));

  // Upload an image from this computer into the images directory (PUT /api/v1/images/{name}, streamed).
  if (await hasEndpoint('/api/v1/images/{name}')) {
    const [fileF, fileIn] = field(t('uploadFile'), h('input', { type: 'file', required: true }));
    const [unF, unIn] = field(t('uploadName'), h('input', { type: 'text', autocomplete: 'off' }), t('uploadNameHint'));
    fileIn.addEventListener('change', () => { if (fileIn.files[0] && !unIn.value) unIn.value = fileIn.files[0].name; });
    const bar = h('progress', { max: '100', value: '0', 'aria-label': t('uploadProgress') });
    const upStatus = h('div', { role: 'status' });
    const upBtn = h('button', { class: 'btn primary', type: 'submit' }, t('upload'));
    const upForm = h('form', { class: 'card', 'aria-labelledby': 'upload-h', onsubmit: async (e) => {
      e.preventDefault();
      const file = fileIn.files[0];
      if (!file) return;
      const name = (unIn.value.trim() || file.name);
      upBtn.disabled = true; bar.value = 0; upStatus.replaceChildren();
      try {
        const r = await upload(`/api/v1/images/${encodeURIComponent(name)}`, file, (sent, total) => {
          bar.value = total ? Math.round((100 * sent) / total) : 0;
        });
        bar.value = 100;
        upStatus.append(h('p', {}, t('uploaded', { name: r.name, size: fmtBytes(r.size) })),
          r.sha256 ? h('p', {}, 'SHA-256: ', h('code', { class: 'hash' }, r.sha256)) : null);
        imgSel.append(h('option', { value: r.path }, `${r.name} (${fmtBytes(r.size)})`));
      } catch (err) {
        upStatus.append(errorBox(err));
      } finally { upBtn.disabled = false; }
    } }, h('h2', { id: 'upload-h' }, t('uploadTitle')), fileF, unF, h('div', { class: 'field' }, bar), upBtn, upStatus);
    main.append(upForm);
  }
  // Changes made elsewhere (chat, CLI, another browser) show up live.
  let pending = null;
  return on('operation-finished', (ev) => {
    if (!String(ev.operation).startsWith('drive.') || pending) return;
    pending = setTimeout(() => { pending = null; reload(); }, 300);
  });
}
