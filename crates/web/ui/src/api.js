// The REST client: every request of the UI goes through here. Cookie sessions send the CSRF token on
// state-changing requests; a 401 sends the person to the login page.

let csrf = null;
let onUnauthenticated = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  /** The endpoint does not exist on this daemon (yet): 404 from the router's fallback. */
  get missingEndpoint() {
    return this.status === 404 && this.message.startsWith('no such endpoint');
  }
}

export function setCsrf(token) { csrf = token; }
export function setUnauthenticatedHandler(f) { onUnauthenticated = f; }

/** fetch with JSON body and CSRF header; returns the Response, throws ApiError on HTTP errors. */
export async function raw(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (csrf && method !== 'GET') headers['x-csrf-token'] = csrf;
  const resp = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) {
    let code = 'http-' + resp.status;
    let message = resp.statusText;
    try {
      const e = await resp.json();
      code = e.error.code; message = e.error.message;
    } catch { /* not JSON */ }
    if (resp.status === 401 && !path.startsWith('/api/v1/session')) onUnauthenticated();
    throw new ApiError(resp.status, code, message);
  }
  return resp;
}

export async function api(method, path, body) {
  const resp = await raw(method, path, body);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b === undefined ? {} : b);
export const del = (p) => api('DELETE', p);

/** PUT a file as the raw request body (streamed by the browser), reporting progress as `onProgress(sent, total)`.
 * Resolves with the JSON answer; rejects with ApiError. */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.setRequestHeader('accept', 'application/json');
    if (csrf) xhr.setRequestHeader('x-csrf-token', csrf);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body?.error?.code || 'http-' + xhr.status, body?.error?.message || xhr.statusText));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'the upload was interrupted'));
    xhr.send(file);
  });
}

/** POST and call `onLine(obj)` for each NDJSON line of the streamed response. */
export async function stream(path, body, onLine) {
  const resp = await raw('POST', path, body);
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onLine(JSON.parse(line));
    }
    if (done) break;
  }
  if (buf.trim()) onLine(JSON.parse(buf));
}

/** One shared EventSource on /api/v1/events; `on(type, f)` subscribes, returns an unsubscribe function. */
let source = null;
const listeners = new Map();
export function on(type, f) {
  if (!source) source = new EventSource('/api/v1/events');
  if (!listeners.has(type)) {
    listeners.set(type, new Set());
    source.addEventListener(type, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      for (const g of listeners.get(type)) g(data);
    });
  }
  listeners.get(type).add(f);
  return () => listeners.get(type).delete(f);
}

/** Whether this daemon serves `path` (as written in its OpenAPI document), without provoking 404s. */
let paths = null;
export async function hasEndpoint(path) {
  if (!paths) paths = get('/api/v1/openapi.json').then((d) => new Set(Object.keys(d.paths || {})), () => null);
  const p = await paths;
  return p ? p.has(path) : true;
}
