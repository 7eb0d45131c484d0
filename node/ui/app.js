// The dashboard: JSON-RPC over fetch (the session cookie authenticates it), live through the
// daemon's WebSocket signals. A burst of signals causes one refresh, not one per signal; a
// sync in progress is looked at again every few seconds. Text from peers (community names,
// display names) only ever goes in through textContent.
'use strict';

const $ = id => document.getElementById(id);
const REFRESH_DEBOUNCE_MS = 400;
const SYNCING_REFRESH_MS = 3000;
const MAX_SIGNALS_SHOWN = 50;
const BANDWIDTH_POINTS = 150; // 5 minutes of the daemon's 2 s node.bandwidth signal

class LoggedOut extends Error {}

let rpcId = 0;
async function rpc(method, params = {}) {
  const r = await fetch('/', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
  });
  if (r.status === 401) throw new LoggedOut('not logged in');
  if (!r.ok) throw new Error(`${method}: HTTP ${r.status}`);
  const j = await r.json();
  if (j.error) throw new Error(`${method}: ${j.error.message}`);
  return j.result;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

const short = s => (s && s.length > 20 ? `${s.slice(0, 10)}…${s.slice(-6)}` : s || '');
const time = s => new Date(s * 1000).toISOString().slice(0, 16).replace('T', ' ');
const bytes = n => `${Charts.human(n)}B`;
const pct = (held, total) => (total > 0 ? Math.floor((100 * held) / total) : 100);

function list(dd, items) {
  dd.replaceChildren(...(items.length ? items.map(a => el('div', a, 'addr')) : [el('span', 'none', 'muted')]));
}

function renderNode(info) {
  $('version').textContent = `v${info.version}`;
  $('peer-id').textContent = info.peerId;
  const reach = info.reachability || 'unknown';
  $('reachability').replaceChildren(el('span', reach, `pill ${reach}`));
  list($('listen-addrs'), info.listenAddrs || []);
  list($('external-addrs'), info.externalAddrs || []);
  list($('relayed-addrs'), info.relayedAddrs || []);
  const hp = info.holePunches || {};
  $('hole-punches').textContent =
    `${hp.succeeded || 0} succeeded, ${hp.failed || 0} failed${hp.lastError ? ` (last: ${hp.lastError})` : ''}`;
  $('served').textContent = `${info.served.blocks} blocks, ${bytes(info.served.bytes)}`;
  list($('banned'), info.banned || []);
  showBandwidthNow(info.bandwidth);
}

function showBandwidthNow(b) {
  const lim = d => (d.limit ? `, limit ${bytes(d.limit)}/s` : '');
  $('bandwidth-now').textContent =
    `up ${bytes(b.upload.rate)}/s (${bytes(b.upload.total)} in all${lim(b.upload)}) · ` +
    `down ${bytes(b.download.rate)}/s (${bytes(b.download.total)} in all${lim(b.download)})`;
}

function renderPeers(peers) {
  $('peer-count').textContent = `(${peers.length})`;
  $('peer-rows').replaceChildren(
    ...peers.map(p => {
      const tr = el('tr', null, 'peer');
      tr.dataset.peer = p.peerId;
      tr.append(el('td', short(p.peerId)), el('td', p.link, `link ${p.link}`),
        el('td', (p.gossipScore || 0).toFixed(1)), el('td', bytes(p.bytesUp || 0)),
        el('td', bytes(p.bytesDown || 0)), el('td', (p.addrs || [])[0] || ''));
      tr.firstChild.title = p.peerId;
      return tr;
    }),
  );
}

const cards = new Map();
let syncing = false;

function card(id) {
  if (!cards.has(id)) {
    const node = $('community-template').content.firstElementChild.cloneNode(true);
    node.dataset.community = id;
    node.id = `community-${id}`;
    $('community-list').append(node);
    cards.set(id, node);
  }
  return cards.get(id);
}

function button(label, cls, action) {
  const b = el('button', label, cls);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await action();
    } catch (e) {
      showError(e);
    }
    refreshSoon();
  });
  return b;
}

async function renderCommunity(c) {
  const id = c.communityId;
  const [desc, members, status, requests] = await Promise.all([
    rpc('community_description', { communityId: id }),
    rpc('community_members', { communityId: id }),
    rpc('archive_syncStatus', { communityId: id }),
    c.control ? rpc('community_pendingRequests', { communityId: id }) : Promise.resolve(null),
  ]);
  const k = card(id);
  const q = sel => k.querySelector(sel);
  q('.name').textContent = c.name;
  q('.role').textContent = c.control ? 'control node' : 'member';
  q('.access').textContent = desc ? desc.access : 'no description yet';
  q('.encrypted').hidden = !c.encrypted;
  q('.id').textContent = id;

  const a = status.archives, b = status.bytes;
  if (status.waiting) {
    // Nothing to measure against yet: not 100 % of nothing.
    q('.archives-text').textContent = `waiting: ${status.waiting}`;
    q('.bytes-text').textContent = '';
    q('.archives-bar').value = 0;
    q('.bytes-bar').value = 0;
    if (!c.control) syncing = true;
  } else {
    q('.archives-text').textContent = `${a.held} / ${a.total} (${pct(a.held, a.total)}%)`;
    q('.archives-bar').max = Math.max(1, a.total);
    q('.archives-bar').value = a.total ? a.held : 1;
    q('.bytes-text').textContent = `${bytes(b.held)} / ${bytes(b.total)} (${pct(b.held, b.total)}%)`;
    q('.bytes-bar').max = Math.max(1, b.total);
    q('.bytes-bar').value = b.total ? b.held : 1;
    if (a.held < a.total) syncing = true;
  }

  Charts.bars(q('.windows-chart'), status.windows.map(w => ({
    label: time(w.from).slice(5), value: w.messages, color: w.held ? '#3b82f6' : '#cbd5e1',
  })));
  q('.archive-count').textContent = status.windows.length;
  q('.archive-rows').replaceChildren(...status.windows.slice().reverse().map(w => {
    const tr = el('tr', null, 'archive');
    tr.append(el('td', short(w.id)), el('td', time(w.from)), el('td', time(w.to)),
      el('td', w.messages), el('td', w.held ? 'yes' : 'no'));
    tr.firstChild.title = w.id;
    return tr;
  }));

  q('.requests-box').hidden = !c.control;
  if (requests) {
    q('.no-requests').hidden = requests.length > 0;
    q('.request-rows').replaceChildren(...requests.map(r => {
      const tr = el('tr', null, 'request');
      tr.dataset.key = r.memberKey;
      const who = el('td', r.displayName ? `${r.displayName} (${short(r.memberKey)})` : short(r.memberKey));
      who.title = r.memberKey;
      const params = { communityId: id, memberKey: r.memberKey };
      const actions = el('td');
      actions.append(button('Accept', 'accept', () => rpc('community_acceptRequest', params)),
        button('Reject', 'reject', () => rpc('community_rejectRequest', params)));
      tr.append(who, actions);
      return tr;
    }));
  }

  q('.member-count').textContent = members.length;
  q('.member-list').replaceChildren(...members.map(m => {
    const tags = [m.owner ? 'owner' : '', m.active ? '' : 'inactive', m.bannedAt ? 'banned' : ''].filter(Boolean);
    const li = el('li', `${short(m.memberKey)}${tags.length ? ` (${tags.join(', ')})` : ''}`, 'member');
    li.dataset.key = m.memberKey;
    li.title = m.memberKey;
    return li;
  }));
}

async function renderCommunities(list) {
  $('no-communities').hidden = list.length > 0;
  for (const [id, node] of cards) {
    if (!list.some(c => c.communityId === id)) {
      node.remove();
      cards.delete(id);
    }
  }
  syncing = false;
  for (const c of list) await renderCommunity(c);
}

function showError(e) {
  if (e instanceof LoggedOut) {
    showLogin('Your session ended (or the RPC token was rotated).');
    return;
  }
  $('health').textContent = `error: ${e.message}`;
  $('health').className = 'pill bad';
}

async function refresh() {
  try {
    const [info, peers, communities] = await Promise.all([rpc('node_info'), rpc('node_peers'), rpc('community_list')]);
    renderNode(info);
    renderPeers(peers);
    await renderCommunities(communities);
    $('health').textContent = 'healthy';
    $('health').className = 'pill ok';
  } catch (e) {
    showError(e);
  }
  if (syncing) refreshSoon(SYNCING_REFRESH_MS);
}

let timer = null;
function refreshSoon(ms = REFRESH_DEBOUNCE_MS) {
  if (timer === null) timer = setTimeout(() => { timer = null; refresh(); }, ms);
}

const rates = { up: [], down: [] };
function onSignal(s) {
  if (s.type === 'node.bandwidth') {
    rates.up.push(s.event.upload.rate);
    rates.down.push(s.event.download.rate);
    for (const r of [rates.up, rates.down]) if (r.length > BANDWIDTH_POINTS) r.shift();
    Charts.line($('bandwidth-chart'), [{ values: rates.up, color: '#f97316' }, { values: rates.down, color: '#3b82f6' }]);
    showBandwidthNow(s.event);
    return;
  }
  const li = el('li', null, 'signal');
  li.append(el('time', new Date().toLocaleTimeString()), el('b', ` ${s.type} `), el('code', JSON.stringify(s.event)));
  const ol = $('signal-list');
  ol.prepend(li);
  while (ol.children.length > MAX_SIGNALS_SHOWN) ol.lastChild.remove();
  refreshSoon();
}

let loggedIn = false;
function connectSignals() {
  const ws = new WebSocket(`ws://${location.host}/`);
  ws.onopen = () => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'signals', method: 'subscribe_signals', params: [] }));
  ws.onmessage = e => {
    const m = JSON.parse(e.data);
    if (m.method === 'signal') onSignal(m.params.result);
    else if (m.id === 'signals') {
      $('live').textContent = m.error ? 'signals: refused' : 'signals: live';
      $('live').className = m.error ? 'pill bad' : 'pill ok';
    }
  };
  ws.onclose = () => {
    $('live').textContent = 'signals: off';
    $('live').className = 'pill bad';
    if (loggedIn) setTimeout(() => refresh().then(() => loggedIn && connectSignals()), 3000);
  };
}

function showLogin(why) {
  loggedIn = false;
  $('dashboard').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-why').textContent = why;
  $('health').textContent = 'logged out';
  $('health').className = 'pill';
}

async function start() {
  const m = location.hash.match(/login=([0-9a-f]+)/);
  if (m) {
    // The code works once: off the address bar and the history before anything else.
    history.replaceState(null, '', '/ui/');
    const r = await fetch('/ui/login', { method: 'POST', credentials: 'same-origin', headers: { 'X-Login-Code': m[1] } });
    if (!r.ok) {
      showLogin('That login URL was used already or has expired.');
      return;
    }
  }
  try {
    await rpc('node_info');
  } catch (e) {
    showLogin(e instanceof LoggedOut ? 'This page needs a session.' : e.message);
    return;
  }
  loggedIn = true;
  Charts.line($('bandwidth-chart'), []);
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('logout').hidden = false;
  await refresh();
  connectSignals();
}

$('logout').addEventListener('click', async () => {
  await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin' });
  showLogin('Logged out.');
});

start();
