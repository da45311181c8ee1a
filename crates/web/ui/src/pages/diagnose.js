// The "Diagnose" panel shared by the Logs and Sandboxes pages (issue 16): GET /api/v1/diagnose for one unit or
// sandbox, shown as cause, summary, the folded journal evidence and the fix. A fix that is an operation is offered
// through the chat, which shows it as a plan and asks before anything changes.
import { h, mount } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { get } from '../api.js';
import { errorBox } from './common.js';

/** Fills `box` with the diagnosis of `target` (`{unit}` or `{sandbox}`). */
export async function diagnoseInto(box, target) {
  const name = target.unit || target.sandbox;
  mount(box, h('p', { role: 'status' }, t('loading')));
  try {
    const q = new URLSearchParams(target);
    const d = await get(`/api/v1/diagnose?${q}`);
    const findings = d.findings || [];
    mount(box, h('h3', {}, t('diagnosisOf', { name })),
      findings.length === 0 ? h('p', { class: 'empty' }, t('nothingWrong')) : findings.map((f) => h('div', { class: 'finding' },
        h('p', {}, h('span', { class: 'badge error' }, f.cause), ' ', h('strong', {}, f.summary)),
        (f.evidence || []).length ? h('ul', { class: 'evidence', 'aria-label': t('evidence') }, f.evidence.slice(0, 8).map((e) =>
          h('li', {}, h('time', {}, fmtTime(e.time_ms)), ' ', h('code', {}, e.message), e.count > 1 ? h('small', { class: 'muted' }, ` ×${e.count}`) : null))) : null,
        h('p', {}, h('strong', {}, `${t('fix')}: `), f.fix && f.fix.instruction ? f.fix.instruction : '–'),
        f.fix && f.fix.plan ? h('p', { class: 'muted' }, t('fixByChat', { op: f.fix.plan.op })) : null)));
  } catch (e) {
    mount(box, errorBox(e));
  }
}
