// Pieces shared by pages: the “not available yet” state for endpoints this daemon lacks, error boxes, tables.
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { ApiError } from '../api.js';

export function unavailable(what, path) {
  return h('div', { class: 'empty', 'data-unavailable': path },
    h('h2', {}, t('notAvailable')), h('p', {}, t('notAvailableText', { what, path })));
}

export function errorBox(e) {
  const msg = e instanceof ApiError ? `${e.message} (${e.code})` : String(e && e.message ? e.message : e);
  return h('p', { class: 'error', role: 'alert' }, `${t('error')}: ${msg}`);
}

/** A table with a caption (for screen readers only unless `showCaption`, since a heading usually precedes it);
 * rows are arrays of cells (nodes or text). Scrolls horizontally on phones. */
export function table(caption, headers, rows, showCaption = false) {
  return h('div', { class: 'tablewrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', { class: showCaption ? null : 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c)))))));
}

/** Runs `f`, reporting success or failure in `status` (a live region), then calls `after`. */
export async function act(status, f, after) {
  status.replaceChildren();
  try {
    await f();
    status.append(h('span', {}, t('done')));
  } catch (e) {
    status.append(errorBox(e));
  }
  if (after) await after();
}
