// Chat: the conversation with streamed replies (POST /api/v1/chat, NDJSON); destructive plans are shown with
// explicit confirm/cancel buttons, which send “yes”/“no” in the same session like any other chat client. A language
// model's words stream in as they are written (token lines) and Stop ends a model that is still writing.
import { h, mount, id } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { get, post, stream, on, ApiError } from '../api.js';

const KEY = 'cacheos.chat.session';

function newSessionId() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return 'web-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function sessionId() {
  let s = sessionStorage.getItem(KEY);
  if (!s) { s = newSessionId(); sessionStorage.setItem(KEY, s); }
  return s;
}

function interpretationBox(interp) {
  if (interp.kind !== 'operation') return null;
  return h('div', { class: 'plan' + (interp.needs_confirmation ? ' danger' : '') },
    h('strong', {}, t('willDo')),
    h('p', {}, interp.explanation),
    h('dl', { class: 'kv' },
      h('dt', {}, t('operation')), h('dd', {}, h('code', {}, interp.operation)),
      h('dt', {}, t('args')), h('dd', {}, h('code', {}, JSON.stringify(interp.args))),
      h('dt', {}, t('risk')), h('dd', {}, interp.risk)));
}

export async function chatPage(main) {
  const log = h('ol', { class: 'chatlog' });
  const logRegion = h('div', { role: 'log', 'aria-live': 'polite', 'aria-label': t('conversation') }, log);
  const input = h('input', { id: 'chat-input', type: 'text', autocomplete: 'off', maxlength: 4000, required: true });
  const sendBtn = h('button', { class: 'btn primary', type: 'submit' }, t('send'));
  const stopBtn = h('button', { class: 'btn', type: 'button', hidden: true,
    onclick: () => post('/api/v1/models/stop').catch(() => {}) }, t('stopModel'));
  const status = h('p', { class: 'sr-only', role: 'status' });
  let busy = false;

  function message(who, ...content) {
    return h('li', { class: 'msg ' + who },
      h('span', { class: 'who' }, who === 'me' ? t('you') : t('cacheos')), h('div', { class: 'body' }, ...content));
  }

  function bubble(who, ...content) {
    const li = message(who, ...content);
    log.append(li);
    li.scrollIntoView({ block: 'end' });
    return li;
  }

  // The send in flight; a plan's confirm/cancel waits for it (the buttons appear while the reply still streams).
  let inflight = Promise.resolve();

  function planActions(body) {
    const yes = h('button', { class: 'btn danger', type: 'button', onclick: () => decide(true) }, t('confirmPlan'));
    const no = h('button', { class: 'btn', type: 'button', onclick: () => decide(false) }, t('cancelPlan'));
    const actions = h('div', { class: 'actions' }, no, yes);
    const decide = async (ok) => {
      mount(actions, h('p', { class: 'muted' }, ok ? t('planConfirmed') : t('planCancelled')));
      await inflight;
      send(ok ? t('yesWord') : t('noWord'));
    };
    body.append(actions);
    // Keyboard and screen-reader users land on the safe choice as soon as the plan is shown.
    no.focus();
  }

  function send(text) {
    if (busy || !text.trim()) return inflight;
    inflight = sendNow(text);
    return inflight;
  }

  async function sendNow(text) {
    busy = true; sendBtn.disabled = true; stopBtn.hidden = false;
    bubble('me', h('p', {}, text));
    const body = h('div', {}, h('p', { class: 'muted' }, t('thinking')));
    const li = bubble('bot', body);
    let plan = null;
    let actionsShown = false;
    // The model's words while it writes; replaced by the validated reply.
    let streamed = null;
    try {
      await stream('/api/v1/chat', { text, session: sessionId() }, (msg) => {
        if (msg.type === 'token') {
          if (!streamed) { mount(body); streamed = h('p', { class: 'reply streaming' }); body.append(streamed); }
          streamed.append(msg.text);
        } else if (msg.type === 'interpretation') {
          if (!streamed) mount(body);
          plan = msg.interpretation.kind === 'operation' && msg.interpretation.needs_confirmation ? msg.interpretation : null;
          const box = interpretationBox(msg.interpretation);
          if (box) body.append(box);
          if (plan && !actionsShown) { actionsShown = true; planActions(body); }
        } else if (msg.type === 'result') {
          const ex = msg.executed || {};
          body.append(h('details', { class: 'result' }, h('summary', {}, `${t('result')}: ${ex.operation || ''}`),
            h('pre', {}, JSON.stringify(ex.output ?? ex.error ?? ex, null, 2))));
        } else if (msg.type === 'reply') {
          if (streamed) { streamed.remove(); streamed = null; }
          // A plan's reply repeats its explanation, already shown in the plan box.
          if (!(plan && msg.text === plan.explanation)) {
            const p = h('p', { class: 'reply' }, msg.text);
            const actions = body.querySelector('.actions');
            if (actions) body.insertBefore(p, actions); else body.append(p);
          }
        } else if (msg.type === 'error') {
          body.append(h('p', { class: 'error', role: 'alert' }, `${t('error')}: ${msg.message}`));
        }
      });
    } catch (e) {
      mount(body, h('p', { class: 'error', role: 'alert' }, `${t('error')}: ${e instanceof ApiError ? e.message : e}`));
      plan = null;
    } finally {
      busy = false; sendBtn.disabled = false; stopBtn.hidden = true;
      status.textContent = li.textContent.slice(0, 200);
      // Focus stays on a plan's buttons (or wherever the person moved it); otherwise back to the input.
      if (!plan && !log.contains(document.activeElement)) input.focus();
    }
  }

  const form = h('form', { class: 'chatform', onsubmit: (e) => { e.preventDefault(); const v = input.value; input.value = ''; send(v); } },
    h('label', { for: 'chat-input', class: 'sr-only' }, t('message')), input, sendBtn, stopBtn);
  const reset = h('button', { class: 'btn', type: 'button', onclick: () => {
    sessionStorage.setItem(KEY, newSessionId()); mount(log); input.focus();
  } }, t('newSession'));
  main.append(h('p', { class: 'muted', id: id('intro') }, t('chatIntro')),
    h('section', { class: 'chat', 'aria-label': t('conversation') }, logRegion, form, h('div', { class: 'row' }, reset)), status);

  try {
    const hist = await get(`/api/v1/chat/${encodeURIComponent(sessionId())}/history`);
    // Inserted above messages sent while the history loaded (without moving them, so focus stays put).
    const first = log.firstChild;
    for (const e of hist) {
      log.insertBefore(message('me', h('p', {}, e.text), h('small', { class: 'muted' }, fmtTime(e.time_ms))), first);
      log.insertBefore(message('bot', h('p', { class: 'reply' }, e.reply),
        e.operation ? h('small', { class: 'muted' }, h('code', {}, e.operation)) : null), first);
    }
    if (!first && log.lastChild) log.lastChild.scrollIntoView({ block: 'end' });
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) log.prepend(h('li', { class: 'error' }, String(e.message || e)));
  }
  // Only when nothing else has focus yet (a plan's cancel button may already have it).
  if (document.activeElement === document.body || document.activeElement === null) input.focus();

  // A unit or sandbox failed: the console says so and offers to look (the answer is the diagnosis).
  const off = on('service-failed', (ev) => {
    const name = ev.target === 'sandbox' ? 'whySandbox' : 'whyService';
    const q = t(name, { name: ev.name });
    const body = h('div', {}, h('p', { class: 'reply' },
      t(ev.target === 'sandbox' ? 'sandboxFailed' : 'serviceFailed', { name: ev.name })));
    const look = h('button', { class: 'btn primary', type: 'button', onclick: () => { look.disabled = true; send(q); } }, t('lookNow'));
    body.append(h('div', { class: 'actions' }, look));
    bubble('bot', body).classList.add('notice');
  });
  // "Take a look" on another page's notice.
  const asked = sessionStorage.getItem('cacheos.chat.ask');
  if (asked) { sessionStorage.removeItem('cacheos.chat.ask'); send(asked); }
  return off;
}
