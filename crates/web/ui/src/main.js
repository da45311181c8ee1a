// The CacheOS web UI: a client-side router over the pages; data only from the REST API and the event stream.
import { h, mount } from './dom.js';
import { t, lang, setLang, languages } from './i18n.js';
import { get, del, on, setCsrf, setUnauthenticatedHandler } from './api.js';
import { chatPage } from './pages/chat.js';
import { drivesPage } from './pages/drives.js';
import { sandboxesPage } from './pages/sandboxes.js';
import { systemPage } from './pages/system.js';
import { auditPage } from './pages/audit.js';
import { logsPage } from './pages/logs.js';
import { loginPage } from './pages/login.js';

const pages = {
  '/chat': ['chat', chatPage],
  '/drives': ['drives', drivesPage],
  '/sandboxes': ['sandboxes', sandboxesPage],
  '/system': ['system', systemPage],
  '/logs': ['logsPage', logsPage],
  '/audit': ['audit', auditPage],
  '/login': ['login', loginPage],
};
const navOrder = ['/chat', '/drives', '/sandboxes', '/system', '/logs', '/audit'];

export const session = { authenticated: false, via: null };
let cleanup = null;

// Theme: system preference by default, switchable, remembered.
const THEME = 'cacheos.theme';
function applyTheme(v) {
  if (v === 'light' || v === 'dark') document.documentElement.dataset.theme = v;
  else delete document.documentElement.dataset.theme;
}

function renderChrome() {
  document.documentElement.lang = lang;
  document.querySelector('.skip').textContent = t('skip');
  const nav = document.getElementById('nav');
  nav.setAttribute('aria-label', t('navLabel'));
  const path = location.pathname === '/' ? '/chat' : location.pathname;
  // Before login the pages are unreachable anyway: no menu then.
  mount(nav, !session.authenticated ? null : h('ul', {}, navOrder.map((p) => h('li', {},
    h('a', { href: p, 'data-nav': true, 'aria-current': p === path ? 'page' : null }, t(pages[p][0]))))));
  const langSel = h('select', { id: 'lang', onchange: (e) => { setLang(e.target.value); renderChrome(); route(); } },
    languages.map(([v, n]) => h('option', { value: v, selected: v === lang, lang: v }, n)));
  const theme = localStorage.getItem(THEME) || 'system';
  const themeSel = h('select', { id: 'theme', onchange: (e) => {
    localStorage.setItem(THEME, e.target.value); applyTheme(e.target.value);
    document.dispatchEvent(new Event('cacheos-theme'));
  } }, [['system', t('themeSystem')], ['light', t('themeLight')], ['dark', t('themeDark')]]
    .map(([v, n]) => h('option', { value: v, selected: v === theme }, n)));
  mount(document.getElementById('prefs'),
    h('label', { for: 'lang', class: 'sr-only' }, t('language')), langSel,
    h('label', { for: 'theme', class: 'sr-only' }, t('theme')), themeSel,
    session.via === 'cookie' ? h('button', { class: 'btn', id: 'logout', onclick: logout }, t('logout')) : null);
}

async function logout() {
  try { await del('/api/v1/session'); } catch { /* the cookie is cleared anyway */ }
  session.authenticated = false; session.via = null; setCsrf(null);
  navigate('/login');
}

// `service-failed` events (a unit or sandbox failed): a notice on every page but the chat, whose log says it
// itself; "take a look" hands the question to the chat page, which asks it.
export const ASK_KEY = 'cacheos.chat.ask';
export function failureText(ev) {
  return t(ev.target === 'sandbox' ? 'sandboxFailed' : 'serviceFailed', { name: ev.name });
}
export function failureQuestion(ev) {
  return t(ev.target === 'sandbox' ? 'whySandbox' : 'whyService', { name: ev.name });
}
function watchFailures() {
  const region = h('div', { id: 'notices', class: 'notices', role: 'region', 'aria-label': t('notices') });
  document.querySelector('header.top').after(region);
  on('service-failed', (ev) => {
    if (!session.authenticated || location.pathname === '/chat' || location.pathname === '/') return;
    const note = h('div', { class: 'card notice', role: 'alert' }, h('p', {}, failureText(ev)),
      h('div', { class: 'actions' },
        h('button', { class: 'btn', type: 'button', onclick: () => note.remove() }, t('dismiss')),
        h('button', { class: 'btn primary', type: 'button', onclick: () => {
          note.remove(); sessionStorage.setItem(ASK_KEY, failureQuestion(ev)); navigate('/chat');
        } }, t('lookNow'))));
    region.append(note);
  });
}

export function navigate(path) {
  if (path !== location.pathname) history.pushState({}, '', path);
  route();
}

async function route() {
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  let path = location.pathname === '/' ? '/chat' : location.pathname;
  if (!session.authenticated && path !== '/login') {
    history.replaceState({}, '', '/login?next=' + encodeURIComponent(path));
    path = '/login';
  }
  const [key, page] = pages[path] || pages['/chat'];
  renderChrome();
  document.title = `${t(key)} – CacheOS`;
  const main = document.getElementById('main');
  const heading = h('h1', { tabindex: '-1' }, key === 'login' ? t('loginTitle') : t(key));
  delete main.dataset.ready;
  mount(main, heading);
  // After in-app navigation, focus moves to the new page's heading (screen readers announce it).
  if (focusAfterRoute) heading.focus();
  focusAfterRoute = true;
  cleanup = (await page(main, { navigate, session, refreshChrome: renderChrome })) || null;
  main.dataset.ready = key; // the page has its data (tests wait for this)
  performance.mark(`cacheos-ready-${key}`);
}

let focusAfterRoute = false;

async function start() {
  applyTheme(localStorage.getItem(THEME) || 'system');
  setUnauthenticatedHandler(() => { session.authenticated = false; navigate('/login'); });
  try {
    const s = await get('/api/v1/session');
    session.authenticated = s.authenticated; session.via = s.via; setCsrf(s.csrf_token);
  } catch { session.authenticated = false; }
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[data-nav]');
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(new URL(a.href).pathname);
  });
  window.addEventListener('popstate', route);
  if (session.authenticated) watchFailures();
  await route();
}

start();
