// Tiny DOM helpers: elements are built with textContent only (never innerHTML), so data cannot inject markup.

/** h('button', {class: 'x', onclick: f}, 'text', child) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A unique id for label/field pairs. */
export function id(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: returns [wrapper, input]. */
export function field(label, input, hint) {
  const fid = input.id || id('f');
  input.id = fid;
  const hintEl = hint ? h('small', { class: 'hint', id: `${fid}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const isCheck = input.type === 'checkbox';
  const wrap = isCheck
    ? h('div', { class: 'field check' }, input, h('label', { for: fid }, label), hintEl)
    : h('div', { class: 'field' }, h('label', { for: fid }, label), input, hintEl);
  return [wrap, input];
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${u[i]}`;
}

/** "512M", "1G", "1.5GiB", "4096" (bytes), powers of 1024, into a whole number of bytes; null when not a size. */
export function parseBytes(text) {
  const m = /^\s*(\d+(?:[.,]\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(String(text));
  if (!m) return null;
  const exp = ' kmgtp'.indexOf(m[2].toLowerCase() || ' ');
  const n = Math.round(Number(m[1].replace(',', '.')) * 1024 ** exp);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

export function fmtDuration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${s % 60}s`;
}

/** A modal confirmation: resolves true or false. Uses <dialog> (focus trapped, Escape cancels). */
export function confirmDialog(title, body, okLabel, cancelLabel, danger = true) {
  return new Promise((resolve) => {
    const ok = h('button', { class: danger ? 'btn danger' : 'btn primary', value: 'ok' }, okLabel);
    const cancel = h('button', { class: 'btn', value: 'cancel' }, cancelLabel);
    const tid = id('dlg');
    const dlg = h('dialog', { 'aria-labelledby': tid },
      h('form', { method: 'dialog' },
        h('h2', { id: tid }, title),
        typeof body === 'string' ? h('p', {}, body) : body,
        h('div', { class: 'actions' }, cancel, ok)));
    dlg.addEventListener('close', () => { resolve(dlg.returnValue === 'ok'); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}
