// Dashboard entry point: wires the server-rendered page to the live feed, the
// table, the charts, the health pill and notifications.
//
// Test and diagnosis knobs (not for everyday use):
//   ?transport=ws|sse|poll  force one transport (default: auto, WebSocket first)
//   window.SIGNALS_FEED_OPTIONS = {...}  set before this module runs, overrides
//                                        timings in feed.js (ping, backoff, polling)
// `window.signalsDashboard` exposes the live objects and the badge's state history.

import { LiveFeed, TRANSPORTS } from './feed.js';
import { SignalTable } from './table.js';
import { ActivityChart, renderSourceBreakdown } from './activity_chart.js';
import { PriceChart } from './price_chart.js';
import { HealthPanel } from './health.js';
import { Notifier } from './notify.js';

const $ = (id) => document.getElementById(id);
const boot = JSON.parse($('dashboard-boot').textContent);
const urls = boot.urls;
const params = new URLSearchParams(window.location.search);
const transport = TRANSPORTS.includes(params.get('transport')) ? params.get('transport') : 'auto';
const marketOf = new Map(boot.instruments.map((i) => [i.symbol, i.market]));
let filters = { ...boot.filters };

const marketSelect = $('f-market');
const symbolSelect = $('f-symbol');
const sourceSelect = $('f-source');

// --- table ---------------------------------------------------------------------------
const table = new SignalTable({
  body: $('signals-body'), emptyState: $('empty-state'), countEl: $('row-count'), maxRows: 500,
});
table.adopt(boot.signals);
setInterval(() => table.tickAges(), 1000);

function matchesFilters(signal) {
  return (!filters.symbol || signal.symbol === filters.symbol)
    && (!filters.market || signal.market === filters.market)
    && (!filters.source || signal.source === filters.source);
}

// --- charts ----------------------------------------------------------------------------
function signalsFor(symbol) {
  return table.visible().filter((s) => s.symbol === symbol).sort((a, b) => b.id - a.id);
}

const priceChart = new PriceChart({
  el: $('price-chart'), placeholder: $('price-placeholder'), latestEl: $('price-latest'),
  sessionEl: $('price-session'), urls, signalsFor,
});
const chartSymbol = $('chart-symbol');
const chartTimeframe = $('chart-timeframe');

function showChart(symbol) {
  if (symbol && [...chartSymbol.options].some((o) => o.value === symbol)) chartSymbol.value = symbol;
  const chosen = chartSymbol.value;
  if (!chosen) {
    priceChart.placeholder.textContent = 'No instruments yet.';
    priceChart.placeholder.dataset.kind = 'empty';
    return;
  }
  priceChart.show({ symbol: chosen, market: marketOf.get(chosen), timeframe: chartTimeframe.value });
}
chartSymbol.addEventListener('change', () => showChart(chartSymbol.value));
chartTimeframe.addEventListener('change', () => showChart(chartSymbol.value));

const activity = new ActivityChart({ el: $('activity-chart'), buckets: boot.activity });
const breakdownEl = $('source-breakdown');
let breakdownFrame = 0;
table.onChange(() => {
  cancelAnimationFrame(breakdownFrame);
  breakdownFrame = requestAnimationFrame(() => renderSourceBreakdown(breakdownEl, table.visible()));
});
renderSourceBreakdown(breakdownEl, table.visible());

// --- connection badge --------------------------------------------------------------------
const badge = $('conn-badge');
const badgeText = $('conn-text');
const badgeVia = $('conn-via');
const announcer = $('conn-announcer');
const statusHistory = [];

function statusText(st) {
  switch (st.state) {
    case 'live': return ['Live', st.transport === 'sse' ? 'via SSE' : ''];
    case 'reconnecting': return [st.seconds > 0 ? `Reconnecting in ${st.seconds}s` : 'Reconnecting…', ''];
    case 'polling': return ['Polling', 'every few seconds'];
    case 'offline': return ['Offline', st.detail || ''];
    default: return ['Connecting…', ''];
  }
}

function renderStatus(st) {
  const [text, via] = statusText(st);
  const changed = badge.dataset.state !== st.state || badge.dataset.transport !== (st.transport || '');
  badge.dataset.state = st.state;
  badge.dataset.transport = st.transport || '';
  badgeText.textContent = text;
  badgeVia.textContent = via;
  badge.title = st.state === 'live' ? `Live over ${st.transport === 'ws' ? 'WebSocket' : 'Server-Sent Events'}` : text;
  if (changed) {
    statusHistory.push({ state: st.state, transport: st.transport || '', text, at: Date.now() });
    if (statusHistory.length > 200) statusHistory.shift();
    // Announced on state changes only: a per-second countdown would be noise.
    announcer.textContent = `Connection ${text.replace(/ in \d+s$/, '')}${via ? ` ${via}` : ''}`;
  }
}

// --- notifications and unseen count ----------------------------------------------------------
const notifier = new Notifier($('notify-toggle'));
const baseTitle = document.title;
let unseen = 0;
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) {
    unseen = 0;
    document.title = baseTitle;
  }
});

// --- health ------------------------------------------------------------------------------------
const health = new HealthPanel({
  root: $('health'), textEl: $('health-text'), listEl: $('health-components'), updatedEl: $('health-updated'),
  url: urls.health,
});

// --- live feed -------------------------------------------------------------------------------
function onSignal(signal) {
  if (!matchesFilters(signal)) return;
  if (!table.add(signal)) return; // already shown: never a duplicate row
  if (signal.source && ![...sourceSelect.options].some((o) => o.value === signal.source)) {
    sourceSelect.append(new Option(signal.source, signal.source)); // a strategy seen for the first time
  }
  activity.count(signal);
  if (signal.symbol === priceChart.symbol) priceChart.redraw();
  notifier.signal(signal);
  if (document.hidden) {
    unseen += 1;
    document.title = `(${unseen}) ${baseTitle}`;
  }
}

async function refreshOutcomes() {
  // Outcome frames sent while we were disconnected are not replayed (only new
  // signals are), so after a reconnect re-read the outcomes of what is on screen.
  const query = new URLSearchParams({ page_size: '100' });
  for (const key of ['symbol', 'market', 'source']) if (filters[key]) query.set(key, filters[key]);
  try {
    const res = await fetch(`${urls.signals}?${query}`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) return;
    const body = await res.json();
    for (const s of body.results || []) {
      const known = table.signals.get(s.id);
      if (known && known.outcome?.status !== s.outcome?.status) table.updateOutcome(s.id, s.outcome);
    }
  } catch (err) {
    // Next reconnect or outcome frame will fix it.
  }
}

const feed = new LiveFeed({
  urls,
  cursor: boot.cursor,
  filters,
  transport,
  options: window.SIGNALS_FEED_OPTIONS || {},
  handlers: {
    signal: onSignal,
    outcome: (id, outcome) => table.updateOutcome(id, outcome),
    health: (h) => health.render(h, 'Pushed live'),
    status: renderStatus,
    resumed: refreshOutcomes,
  },
});
$('reconnect').addEventListener('click', () => feed.reconnectNow());
window.addEventListener('pagehide', () => feed.stop());
window.addEventListener('pageshow', (event) => { if (event.persisted) feed.start(); });

// --- filters (no reload: fetch a snapshot, restart the stream from its cursor) ------------------
const form = $('filters');
const clearLink = $('clear-filters');
const emptyTitle = document.querySelector('#empty-state .empty-title');
let filterSeq = 0;

function limitSymbolsToMarket() {
  const market = marketSelect.value;
  for (const option of symbolSelect.options) {
    if (!option.value) continue;
    option.hidden = Boolean(market) && option.dataset.market !== market;
  }
  if (symbolSelect.selectedOptions[0]?.hidden) symbolSelect.value = '';
}

function readFilters() {
  const next = {};
  if (marketSelect.value) next.market = marketSelect.value;
  if (symbolSelect.value) next.symbol = symbolSelect.value;
  if (sourceSelect.value) next.source = sourceSelect.value;
  return next;
}

async function applyFilters() {
  const seq = ++filterSeq;
  const next = readFilters();
  filters = next; // frames still arriving on the old stream are filtered the new way
  const query = new URLSearchParams(next);
  const pageQuery = new URLSearchParams(next);
  if (transport !== 'auto') pageQuery.set('transport', transport);
  window.history.replaceState(null, '', pageQuery.toString() ? `?${pageQuery}` : window.location.pathname);
  clearLink.hidden = Object.keys(next).length === 0;
  table.body.setAttribute('aria-busy', 'true');
  try {
    const res = await fetch(`${urls.snapshot}?${query}`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (res.status === 401) {
      window.location.assign(`${urls.login}?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
      return;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const snap = await res.json();
    if (seq !== filterSeq) return; // a newer change won
    table.reset(snap.signals);
    activity.reset(snap.activity);
    emptyTitle.textContent = Object.keys(next).length ? 'No signals yet for these filters' : 'No signals yet';
    feed.restart({ filters: snap.filters, cursor: snap.cursor });
    if (next.symbol) showChart(next.symbol);
    else priceChart.redraw();
  } catch (err) {
    // Fall back to the plain form submission: the server renders the filtered page.
    form.submit();
  } finally {
    if (seq === filterSeq) table.body.removeAttribute('aria-busy');
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  applyFilters();
});
for (const select of [marketSelect, symbolSelect, sourceSelect]) {
  select.addEventListener('change', () => {
    if (select === marketSelect) limitSymbolsToMarket();
    applyFilters();
  });
}
clearLink.addEventListener('click', (event) => {
  event.preventDefault();
  marketSelect.value = '';
  symbolSelect.value = '';
  sourceSelect.value = '';
  limitSymbolsToMarket();
  applyFilters();
});
$('apply-filters').hidden = true; // selects apply on change once JS runs
limitSymbolsToMarket();

// --- go ----------------------------------------------------------------------------------------
feed.start();
health.start();
showChart(filters.symbol || table.visible().sort((a, b) => b.id - a.id)[0]?.symbol || chartSymbol.value);

window.signalsDashboard = { feed, table, priceChart, activity, statusHistory, transport };
