// Dashboard entry point: wires the server-rendered page to the live feed, the
// table, the charts, the signal panel, statistics, health and receipts.
//
// Test and diagnosis knobs (not for everyday use):
//   ?transport=ws|sse|poll  force one transport (default: auto, WebSocket first)
//   window.SIGNALS_FEED_OPTIONS = {...}  set before this module runs, overrides
//                                        timings in feed.js (ping, backoff, polling)
//   window.SIGNALS_PAGE_OPTIONS = {...}  page timings: priceMs, candleMs, healthMs, statsDebounceMs, ackMs;
//                                        maxRows (live rows kept before the oldest are trimmed)
// `window.signalsDashboard` exposes the live objects and the badge's state history.

import { LiveFeed, TRANSPORTS } from './feed.js';
import { SignalTable } from './table.js';
import { ActivityChart, renderSourceBreakdown } from './activity_chart.js';
import { PriceChart, timeframeCovering } from './price_chart.js';
import { OscillatorPanes } from './oscillator_panes.js';
import { HealthPanel } from './health.js';
import { Notifier } from './notify.js';
import { ConnectionBadge } from './badge.js';
import { SignalDetail } from './signal_detail.js';
import { StatsPanel } from './stats_panel.js';
import { PriceTicker } from './prices.js';
import { HistoryPager } from './history.js';
import { Receipts } from './receipts.js';
import { clearFilters, matchesFilters, readFilters } from './filters.js';
import { toEpochSeconds } from './chart_base.js';
import { isOpen } from './levels.js';
import { matchesPrefs, notifies, prefsLoad } from './prefs.js';
import { MarketStatus } from './market_status.js';

const $ = (id) => document.getElementById(id);
const boot = JSON.parse($('dashboard-boot').textContent);
const urls = boot.urls;
const pageOpts = {
  priceMs: 5000, candleMs: 4000, healthMs: 30000, statsDebounceMs: 1200, ackMs: 5000, maxRows: 500,
  ...(window.SIGNALS_PAGE_OPTIONS || {}),
};
const params = new URLSearchParams(window.location.search);
const transport = TRANSPORTS.includes(params.get('transport')) ? params.get('transport') : 'auto';
const marketOf = new Map(boot.instruments.map((i) => [i.symbol, i.market]));
let filters = { ...boot.filters };

// --- table and the signal panel ---------------------------------------------------------
const detail = new SignalDetail({
  root: $('signal-detail'), body: $('detail-body'), hint: $('detail-hint'), urls,
  csrfToken: boot.csrf_token, canPublish: Boolean(boot.user?.can_publish),
  onChanged: (id, event) => onEvent(id, event),
});
const table = new SignalTable({
  body: $('signals-body'), emptyState: $('empty-state'), countEl: $('row-count'), maxRows: pageOpts.maxRows,
  onSelect: (signal) => openOnChart(signal),
});
table.adopt(boot.signals);
setInterval(() => table.tickAges(), 1000);

// --- charts ----------------------------------------------------------------------------
function signalsFor(symbol) {
  return table.visible().filter((s) => s.symbol === symbol).sort((a, b) => b.id - a.id);
}

// RSI and MACD under the price chart, fed by it (no requests of their own).
const panes = new OscillatorPanes({
  host: $('price-chart').closest('.chart-box'), controls: $('chart-timeframe').closest('.chart-controls'),
  xRange: () => priceChart.xRange(),
});
const priceChart = new PriceChart({
  el: $('price-chart'), placeholder: $('price-placeholder'), latestEl: $('price-latest'),
  sessionEl: $('price-session'), overlayEl: $('chart-overlays'), urls, signalsFor, liveMs: pageOpts.candleMs, panes,
});
const chartSymbol = $('chart-symbol');
const chartTimeframe = $('chart-timeframe');
const offeredTimeframes = [...chartTimeframe.options].map((o) => o.value);
let strategyConfigs = [];

function showChart(symbol, timeframe = chartTimeframe.value) {
  if (symbol && [...chartSymbol.options].some((o) => o.value === symbol)) chartSymbol.value = symbol;
  if (timeframe && offeredTimeframes.includes(timeframe)) chartTimeframe.value = timeframe;
  const chosen = chartSymbol.value;
  if (!chosen) {
    priceChart.placeholder.textContent = 'No instruments yet.';
    priceChart.placeholder.dataset.kind = 'empty';
    return;
  }
  priceChart.configs = chartConfigs(chosen, chartTimeframe.value);
  priceChart.show({ symbol: chosen, market: marketOf.get(chosen), timeframe: chartTimeframe.value });
  prices.tick();
}
chartSymbol.addEventListener('change', () => {
  table.clearSelection();
  priceChart.focus(null);
  showChart(chartSymbol.value);
  showDetail();
});

/** The panel shows the clicked signal, else the newest one on the chart. */
function showDetail() {
  const picked = table.selected();
  if (picked) detail.show(picked);
  else detail.show(priceChart.symbol ? priceChart.focused() : null, { auto: true });
}
chartTimeframe.addEventListener('change', () => showChart(chartSymbol.value));

/** A row click: the signal's symbol, on a timeframe that reaches back to it, its levels drawn. */
function openOnChart(signal) {
  const created = toEpochSeconds(signal.created_at);
  const timeframe = created === null ? chartTimeframe.value : timeframeCovering(created, chartTimeframe.value, offeredTimeframes);
  priceChart.focus(signal);
  showChart(signal.symbol, timeframe);
  detail.show(signal);
  const card = $('price-chart').closest('.card');
  if (card.getBoundingClientRect().bottom < 0) card.scrollIntoView({ behavior: 'smooth', block: 'start' });
  refreshSignal(signal.id);
}

async function refreshSignal(id) {
  // The row may predate amendments or legs that reached us only as frames: read
  // the full signal once so the panel shows its whole history.
  try {
    const res = await fetch(`${urls.signals}${id}/`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) return;
    const fresh = await res.json();
    if (!table.replace(fresh)) return;
    if (detail.signal?.id === id) showDetail();
    if (fresh.symbol === priceChart.symbol) priceChart.redraw();
  } catch (err) { /* the panel keeps what it has */ }
}

/** Enabled strategy configs of a symbol on this timeframe: their indicators are
 *  computed on these candles, so another timeframe's would mislead. */
function chartConfigs(symbol, timeframe) {
  return strategyConfigs.filter((c) => c.symbol === symbol && c.timeframe === timeframe && c.enabled !== false);
}

async function loadStrategies() {
  try {
    const res = await fetch(urls.strategies, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) return; // an older server has none: no overlays
    const body = await res.json();
    strategyConfigs = Array.isArray(body) ? body : (body.results || []);
    priceChart.setStrategies(chartConfigs(priceChart.symbol, priceChart.timeframe));
  } catch (err) { /* no overlays */ }
}

const activity = new ActivityChart({ el: $('activity-chart'), buckets: boot.activity });
const breakdownEl = $('source-breakdown');
let breakdownFrame = 0;
table.onChange(() => {
  cancelAnimationFrame(breakdownFrame);
  breakdownFrame = requestAnimationFrame(() => {
    renderSourceBreakdown(breakdownEl, table.visible());
    if (!table.selected()) showDetail();
  });
});
renderSourceBreakdown(breakdownEl, table.visible());

const stats = new StatsPanel({
  tilesEl: $('stat-tiles'), bodyEl: $('perf-body'), daysEl: $('stats-days'), updatedEl: $('stats-updated'),
  url: urls.stats, debounceMs: pageOpts.statsDebounceMs,
});

const prices = new PriceTicker({
  url: urls.prices, intervalMs: pageOpts.priceMs,
  symbols: () => [priceChart.symbol, ...table.openSymbols()].filter(Boolean),
  onPrices: (latest) => {
    const flat = Object.fromEntries(Object.entries(latest).map(([symbol, p]) => [symbol, p.price]));
    table.setPrices(flat);
    priceChart.setLatest(flat[priceChart.symbol] ?? null);
  },
});

// --- connection, health, notifications, receipts -----------------------------------------------
const badge = new ConnectionBadge({ badge: $('conn-badge'), textEl: $('conn-text'), viaEl: $('conn-via'), announcer: $('conn-announcer') });
const marketStatus = new MarketStatus({ listEl: $('health-markets'), url: urls.markets });
const health = new HealthPanel({
  root: $('health'), textEl: $('health-text'), listEl: $('health-components'), updatedEl: $('health-updated'),
  url: urls.health, refreshMs: pageOpts.healthMs, onHealth: () => marketStatus.refresh(),
});
const notifier = new Notifier($('notify-toggle'));
let prefs = null;
notifier.accepts = (signal) => notifies(signal, prefs);
const mine = $('f-mine');
const MINE_KEY = 'signals.mine';

function applyMine() {
  localStorage.setItem(MINE_KEY, mine.checked ? 'on' : 'off');
  table.setRowFilter(mine.checked && prefs ? (signal) => matchesPrefs(signal, prefs) : null);
  priceChart.redraw();
}
mine.addEventListener('change', (event) => {
  event.stopPropagation(); // not a server filter: no new snapshot
  applyMine();
});

async function loadPrefs() {
  prefs = await prefsLoad(urls.browser_prefs);
  if (!prefs) return; // no preferences API: the switch stays hidden
  mine.closest('.field').hidden = false;
  mine.checked = localStorage.getItem(MINE_KEY) === 'on';
  if (mine.checked) applyMine();
}
const baseTitle = document.title;
let unseen = 0;
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) {
    unseen = 0;
    document.title = baseTitle;
    // What arrived while the tab was hidden is on screen now: acknowledge it.
    const newest = table.visible().reduce((max, s) => Math.max(max, s.id), 0);
    if (newest) receipts.shown(newest);
  }
});
const receipts = new Receipts({
  url: urls.me, banner: $('away'), textEl: $('away-text'), dismiss: $('away-dismiss'),
  send: (frame) => feed.send(frame), throttleMs: pageOpts.ackMs,
});

// --- live feed -------------------------------------------------------------------------------
function onSignal(signal) {
  if (!matchesFilters(signal, filters)) return;
  if (!table.add(signal)) return; // already shown: never a duplicate row
  const sourceSelect = $('f-source');
  if (signal.source && ![...sourceSelect.options].some((o) => o.value === signal.source)) {
    sourceSelect.append(new Option(signal.source, signal.source)); // a strategy seen for the first time
  }
  activity.count(signal);
  if (signal.symbol === priceChart.symbol) priceChart.redraw();
  notifier.signal(signal);
  stats.nudge();
  if (!document.hidden) receipts.shown(signal.id);
  if (document.hidden) {
    unseen += 1;
    document.title = `(${unseen}) ${baseTitle}`;
  }
}

function onOutcome(id, outcome) {
  table.updateOutcome(id, outcome);
  const signal = table.get(id);
  if (signal && signal.symbol === priceChart.symbol) {
    priceChart.redraw();
    // A leg closing may move the stop by the signal's rule; the frame carries the
    // outcome only, so read the signal's stop in force again.
    if (isOpen(signal) || detail.signal?.id === id) refreshSignal(id);
  }
  if (detail.signal?.id === id) showDetail();
  stats.nudge();
}

function onEvent(id, event) {
  if (!table.addEvent(id, event)) return;
  const signal = table.get(id);
  if (signal.symbol === priceChart.symbol) priceChart.redraw();
  if (detail.signal?.id === id) showDetail();
}

async function refreshOutcomes() {
  // Outcome frames sent while we were disconnected are not replayed (only new
  // signals and amendments are), so after a reconnect re-read what is on screen.
  const query = new URLSearchParams({ page_size: '100' });
  for (const key of ['symbol', 'market', 'source', 'direction']) if (filters[key]) query.set(key, filters[key]);
  try {
    const res = await fetch(`${urls.signals}?${query}`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) return;
    const body = await res.json();
    for (const s of body.results || []) {
      const known = table.get(s.id);
      if (known && JSON.stringify(known.outcome) !== JSON.stringify(s.outcome)) onOutcome(s.id, s.outcome);
    }
  } catch (err) {
    // Next reconnect or outcome frame will fix it.
  }
}

const feed = new LiveFeed({
  urls,
  cursor: boot.cursor,
  eventCursor: boot.event_cursor ?? null,
  filters,
  transport,
  options: window.SIGNALS_FEED_OPTIONS || {},
  handlers: {
    signal: onSignal,
    outcome: onOutcome,
    event: onEvent,
    health: (h) => health.render(h, 'Pushed live'),
    status: (st) => {
      badge.render(st);
      health.connection(st.state);
    },
    resumed: () => {
      refreshOutcomes();
      stats.nudge();
      receipts.flush();
    },
    resync: () => applyFilters(),
  },
});
$('reconnect').addEventListener('click', () => feed.reconnectNow());
window.addEventListener('pagehide', () => feed.stop());
window.addEventListener('pageshow', (event) => { if (event.persisted) feed.start(); });

// --- filters (no reload: fetch a snapshot, restart the stream from its cursor) ------------------
const form = $('filters');
const marketSelect = $('f-market');
const symbolSelect = $('f-symbol');
const clearLink = $('clear-filters');
const exportLink = $('export-link');
const emptyTitle = document.querySelector('#empty-state .empty-title');
const pager = new HistoryPager({
  url: urls.history, table, moreEl: $('history-more'), button: $('load-older'), statusEl: $('history-status'), filters,
});
pager.reset({ older: boot.older, filters });
table.onTrim = (id) => pager.trimmed(id);
let filterSeq = 0;

function limitSymbolsToMarket() {
  const market = marketSelect.value;
  for (const option of symbolSelect.options) {
    if (!option.value) continue;
    option.hidden = Boolean(market) && option.dataset.market !== market;
  }
  if (symbolSelect.selectedOptions[0]?.hidden) symbolSelect.value = '';
}

async function applyFilters() {
  const seq = ++filterSeq;
  const next = readFilters(form);
  filters = next; // frames still arriving on the old stream are filtered the new way
  const query = new URLSearchParams(next);
  const pageQuery = new URLSearchParams(next);
  if (transport !== 'auto') pageQuery.set('transport', transport);
  window.history.replaceState(null, '', pageQuery.toString() ? `?${pageQuery}` : window.location.pathname);
  clearLink.hidden = Object.keys(next).length === 0;
  exportLink.href = `${urls.export}${query.toString() ? `?${query}` : ''}`;
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
    pager.reset({ older: snap.older, filters: next });
    emptyTitle.textContent = Object.keys(next).length ? 'No signals yet for these filters' : 'No signals yet';
    feed.restart({ filters: snap.filters, cursor: snap.cursor, eventCursor: snap.event_cursor });
    if (next.symbol) showChart(next.symbol);
    else priceChart.redraw();
    if (snap.signals.length) receipts.shown(snap.signals[0].id);
  } catch (err) {
    // Fall back to the plain form submission: the server renders the filtered page.
    form.submit();
  } finally {
    if (seq === filterSeq) table.body.removeAttribute('aria-busy');
  }
}

let typingTimer = null;
form.addEventListener('submit', (event) => {
  event.preventDefault();
  applyFilters();
});
form.addEventListener('change', (event) => {
  if (event.target === marketSelect) limitSymbolsToMarket();
  clearTimeout(typingTimer);
  applyFilters();
});
form.addEventListener('input', (event) => {
  // The confidence box applies once typing pauses, not on every keystroke.
  if (event.target.name !== 'min_confidence') return;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(applyFilters, 600);
});
clearLink.addEventListener('click', (event) => {
  event.preventDefault();
  clearFilters(form);
  limitSymbolsToMarket();
  applyFilters();
});
$('apply-filters').hidden = true; // fields apply on change once JS runs
limitSymbolsToMarket();

// --- go ----------------------------------------------------------------------------------------
feed.start();
health.start();
stats.start();
prices.start();
receipts.greet();
if (boot.signals.length) receipts.shown(Math.max(...boot.signals.map((s) => s.id)));
showChart(boot.chart_symbol || filters.symbol || chartSymbol.value);
showDetail();
loadStrategies();
loadPrefs();

window.signalsDashboard = {
  feed, table, priceChart, panes, activity, stats, health, marketStatus, receipts, pager, detail, transport,
  statusHistory: badge.history,
};
