// The session viewer: gets a short-lived stream token, connects noVNC to the control plane,
// wakes hibernated sessions, reconnects by itself when its socket drops (a replica went away:
// within a second of another answering), and shows what is happening.
import RFB from '/static/novnc/core/rfb.js';

const sessionId = decodeURIComponent(location.pathname.split('/')[2] || '');
const $ = (id) => document.getElementById(id);
let rfb = null;
let attempts = 0;
let reconnectTimer = null;
let ended = false;
document.body.dataset.loaded = '1'; // the modules ran: view.html's reload fallback stands down
sessionStorage.removeItem('viewer-reloads');

// A state's tooltip (the reason of a lost connection) goes with it: set after setState.
function setState(state, text) {
  document.body.dataset.state = state;
  $('status').textContent = text;
  $('status').title = '';
}

function loginToken() { return localStorage.getItem('streamspace_token'); }

async function api(path, options = {}) {
  const headers = { 'Content-Type': 'application/json', ...(options.headers || {}) };
  const token = loginToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body?.error?.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showLogin(message = '') {
  $('login').hidden = false;
  $('login-error').textContent = message;
  setState('disconnected', 'Sign in required');
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const body = await api('/api/v1/auth/login', {
      method: 'POST',
      body: JSON.stringify({ username: $('username').value, password: $('password').value }),
    });
    localStorage.setItem('streamspace_token', body.access_token);
    $('login').hidden = true;
    connect();
    watchEvents();
  } catch (error) {
    $('login-error').textContent = error.status === 429 ? `Too many attempts: ${error.message}` : error.message;
  }
});

async function watchEvents() {
  if (!loginToken() || ended) return;
  let grant;
  try {
    // a short-lived ticket: the login token itself never goes into a URL
    grant = await api('/api/v1/events/ticket', { method: 'POST' });
  } catch (error) {
    if (error.status !== 401) setTimeout(watchEvents, 3000);
    return;
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}${grant.url}`);
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.kind !== 'session' || event.data.id !== sessionId) return;
    if (['waking', 'starting', 'pending'].includes(event.data.state)) setState('waking', `Session ${event.data.state}…`);
    if (['terminated', 'failed'].includes(event.data.state)) finish(`Session ${event.data.state}${event.data.reason ? ': ' + event.data.reason : ''}`);
  };
  socket.onclose = (event) => { if (!ended && event.code !== 4401) setTimeout(watchEvents, 3000); };
}

function finish(text) {
  ended = true;
  clearTimeout(reconnectTimer);
  if (rfb) { rfb.disconnect(); rfb = null; }
  setState('ended', text);
}

async function connect() {
  clearTimeout(reconnectTimer);
  if (!loginToken()) return showLogin();
  let session;
  try {
    session = await api(`/api/v1/sessions/${encodeURIComponent(sessionId)}`);
  } catch (error) {
    if (error.status === 401) return showLogin('Your login has ended; sign in again.');
    if (error.status === 404) return finish('Session not found');
    return scheduleReconnect(`Cannot reach StreamSpace (${error.message})`);
  }
  $('title').textContent = `${session.template} · ${session.id.slice(0, 8)}`;
  if (['terminated', 'failed', 'terminating'].includes(session.state)) {
    return finish(`Session ${session.state}${session.state_reason ? ': ' + session.state_reason : ''}`);
  }
  const waking = session.state !== 'running';
  if (waking) setState('waking', `Waking the session (${session.state})…`);
  else if (!attempts) setState('connecting', 'Connecting…'); // a retry stays "Reconnecting…"
  const grant = await api(`/api/v1/sessions/${encodeURIComponent(sessionId)}/stream`, { method: 'POST' });
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  if (rfb) rfb.disconnect();
  const current = new RFB($('screen'), `${scheme}://${location.host}${grant.url}`, { wsProtocols: ['binary'] });
  rfb = current;
  rfb.scaleViewport = true;
  rfb.addEventListener('connect', () => { attempts = 0; setState('connected', 'Connected'); rfb.focus(); });
  // a viewer replaced by a newer one (or closed for good) also says "disconnect": only the
  // current one's counts (noVNC's events carry no target, hence the closure)
  rfb.addEventListener('disconnect', () => {
    if (!ended && current === rfb) scheduleReconnect('Connection lost');
  });
  rfb.addEventListener('clipboard', (event) => { $('clipboard-text').value = event.detail.text; });
  window.streamspaceRfb = rfb;
}

// A lost socket is retried within 0.25 s, then every 0.2-0.5 s (jittered, so a replica's
// viewers do not all come back in step): a viewer is back within half a second of its agent
// being reachable again. After 20 failed attempts (about 7 s) it says so and slows to every
// 2-5 s, so a long outage is not met by every open viewer calling several times a second.
function scheduleReconnect(reason) {
  attempts += 1;
  const delay =
    attempts === 1 ? Math.random() * 250 : attempts <= 20 ? 200 + Math.random() * 300 : 2000 + Math.random() * 3000;
  const text = attempts > 20 ? `${reason}; still trying to reconnect…` : 'Reconnecting…';
  setState('reconnecting', text);
  $('status').title = reason;
  reconnectTimer = setTimeout(() => connect().catch((error) => scheduleReconnect(error.message)), delay);
}

$('reconnect').addEventListener('click', () => { ended = false; attempts = 0; connect(); });
$('fullscreen').addEventListener('click', () => document.documentElement.requestFullscreen?.());
$('clipboard-toggle').addEventListener('click', () => {
  const panel = $('clipboard');
  panel.hidden = !panel.hidden;
  $('clipboard-toggle').setAttribute('aria-expanded', String(!panel.hidden));
});
$('clipboard-send').addEventListener('click', () => rfb?.clipboardPasteFrom($('clipboard-text').value));

watchEvents();
connect().catch((error) => scheduleReconnect(error.message));
