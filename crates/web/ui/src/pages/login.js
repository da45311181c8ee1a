// Login: the web token in exchange for a session cookie (POST /api/v1/session); the CSRF token comes back in the
// answer. Loopback clients trusted by the daemon never need this page.
import { h, field } from '../dom.js';
import { t } from '../i18n.js';
import { api, setCsrf, ApiError } from '../api.js';
import { errorBox } from './common.js';

export async function loginPage(main, { navigate, session }) {
  const next = new URLSearchParams(location.search).get('next');
  const target = next && next.startsWith('/') && !next.startsWith('//') && next !== '/login' ? next : '/chat';
  if (session.authenticated) {
    main.append(h('p', {}, t('alreadyIn', { via: session.via })), h('a', { href: target, 'data-nav': true }, t('toChat')));
    return;
  }
  const [tokF, tokIn] = field(t('token'), h('input', { type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' }), t('tokenHint'));
  const msg = h('div', { role: 'status' });
  const form = h('form', { class: 'card narrow', onsubmit: async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    try {
      const s = await api('POST', '/api/v1/session', { token: tokIn.value.trim() });
      setCsrf(s.csrf_token);
      session.authenticated = true; session.via = s.via;
      navigate(target);
    } catch (err) {
      msg.append(err instanceof ApiError && err.status === 401 ? h('p', { class: 'error', role: 'alert' }, t('wrongToken'))
        : err instanceof ApiError && err.status === 429 ? h('p', { class: 'error', role: 'alert' }, t('tooMany')) : errorBox(err));
      tokIn.focus();
    }
  } }, tokF, h('button', { class: 'btn primary', type: 'submit' }, t('loginButton')), msg);
  main.append(form);
  tokIn.focus();
}
