// The signals table: one row per signal id, newest (highest id) first, whatever
// order or how many times frames arrive. Rows are drawn here (the server-rendered
// rows of templates/dashboard/_signal_row.html are replaced by the same markup
// once the script runs, so every row follows one rule).

import { capitalise, compactAge, formatR, outcomeLabel, untilLabel, utcStamp } from './format.js';
import { distancePct, effectiveStop, isOpen, rewardRisk, unrealizedR } from './levels.js';

export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function outcomeBadge(outcome) {
  const status = outcome?.status || 'open';
  return el('span', { class: `badge outcome outcome-${status}`, text: outcomeLabel(outcome) });
}

function stopCell(signal) {
  const stop = effectiveStop(signal);
  if (!stop || stop === signal.stop_loss) return [signal.stop_loss];
  return [el('span', { class: 'moved', title: `Moved from ${signal.stop_loss}`, text: stop })];
}

function targetCell(signal) {
  const n = Array.isArray(signal.targets) ? signal.targets.length : 0;
  if (n < 2) return [signal.take_profit];
  const hit = (signal.outcome?.legs || []).filter((l) => l.status === 'tp_hit').length;
  return [signal.take_profit, ' ', el('span', {
    class: 'ladder', title: `${n} targets, ${hit} hit`, text: hit ? `${hit}/${n}` : `×${n}`,
  })];
}

function expiryCell(signal) {
  if (!signal.expires_at) return [el('span', { class: 'muted', text: '—' })];
  return [el('time', { datetime: signal.expires_at, title: utcStamp(signal.expires_at), text: untilLabel(signal.expires_at) })];
}

/** The "Now" cell: distance from the entry and unrealized R of an open signal. */
function nowCell(signal, price) {
  if (!isOpen(signal) || price === undefined || price === null) return [el('span', { class: 'muted', text: '—' })];
  const r = unrealizedR(signal, price);
  const d = distancePct(signal, price);
  const cls = r > 0 ? 'pos' : (r < 0 ? 'neg' : '');
  return [
    el('span', { class: `ur ${cls}`, text: formatR(r) || '0R' }),
    el('span', { class: 'dist muted', text: d === null ? '' : `${d > 0 ? '+' : ''}${d.toFixed(2)}%` }),
  ];
}

/** How far an outcome has got: closed legs, and whether it is decided. */
function progress(outcome) {
  const closedLegs = (outcome?.legs || []).filter((l) => l.status && l.status !== 'open').length;
  return closedLegs + ((outcome?.status || 'open') === 'open' ? 0 : 1000);
}

export function renderRow(signal, price) {
  const conf = Math.max(0, Math.min(100, Number(signal.confidence) || 0));
  const isLong = signal.direction === 'long';
  const fill = el('span', { class: 'conf-fill' });
  fill.style.width = `${conf}%`;
  const rr = rewardRisk(signal);
  return el('tr', {
    class: 'signal-row',
    'data-id': String(signal.id),
    'data-symbol': signal.symbol,
    'data-direction': signal.direction,
    tabindex: '0',
    title: signal.note || null,
  }, [
    el('td', { class: 'c-time' }, [
      el('span', { class: 'sid', text: `#${signal.id}` }), ' ',
      el('time', {
        datetime: signal.created_at, title: utcStamp(signal.created_at),
        text: compactAge((Date.now() - Date.parse(signal.created_at)) / 1000),
      }),
    ]),
    el('td', { class: 'c-symbol' }, [
      el('span', { class: 'symbol', text: signal.symbol }), ' ', el('span', { class: 'tf', text: signal.timeframe }),
      el('span', { class: 'mkt', text: capitalise(signal.market) }),
    ]),
    el('td', { class: 'c-dir' }, [el('span', {
      class: `badge dir dir-${signal.direction}`, text: isLong ? '▲ Long' : '▼ Short',
    })]),
    el('td', { class: 'num', text: signal.entry_price }),
    el('td', { class: 'num c-stop' }, stopCell(signal)),
    el('td', { class: 'num c-target' }, targetCell(signal)),
    el('td', { class: 'num c-rr', text: rr === null ? '' : rr.toFixed(1) }),
    el('td', { class: 'num c-now' }, nowCell(signal, price)),
    el('td', { class: 'c-conf' }, [
      el('span', {
        class: 'conf', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100',
        'aria-valuenow': String(conf), 'aria-label': `Confidence ${conf}%`,
      }, [fill]),
      el('span', { class: 'conf-num', text: String(conf) }),
    ]),
    el('td', { class: 'c-source', text: signal.source }),
    el('td', { class: 'c-exp' }, expiryCell(signal)),
    el('td', { class: 'c-outcome' }, [outcomeBadge(signal.outcome)]),
  ]);
}

export class SignalTable {
  constructor({ body, emptyState, countEl, maxRows = 500, onSelect = null }) {
    this.body = body;
    this.emptyState = emptyState;
    this.countEl = countEl;
    this.maxRows = maxRows;
    this.ids = new Set();          // every id ever shown: a trimmed row never comes back
    this.signals = new Map();      // id -> payload, for rows still on screen
    this.prices = new Map();       // symbol -> latest price string
    this.selectedId = null;
    this.rowFilter = null;         // signal -> bool; rows it refuses stay but are hidden
    this.holdTrim = false;         // set by the history pager while a page loads
    this.listeners = new Set();
    this.onSelect = onSelect;
    const choose = (event) => {
      const row = event.target.closest('tr[data-id]');
      if (!row || event.target.closest('a, button')) return;
      if (event.type === 'keydown' && event.key !== 'Enter' && event.key !== ' ') return;
      if (event.type === 'keydown') event.preventDefault();
      this.select(Number(row.dataset.id));
    };
    body.addEventListener('click', choose);
    body.addEventListener('keydown', choose);
  }

  /** Take over the server-rendered rows (their payloads come from the boot JSON). */
  adopt(signals) {
    this.reset(signals);
  }

  /** Replace everything (new filters). */
  reset(signals) {
    this.body.replaceChildren();
    this.ids.clear();
    this.signals.clear();
    for (const signal of [...signals].sort((a, b) => b.id - a.id)) {
      this.ids.add(signal.id);
      this.signals.set(signal.id, signal);
      this.body.append(this._row(signal));
    }
    this._changed();
  }

  has(id) {
    return this.ids.has(id);
  }

  get(id) {
    return this.signals.get(id);
  }

  /** Add a signal unless its id is already known. Returns true when a row was added. */
  add(signal, { highlight = true } = {}) {
    if (this.ids.has(signal.id)) return false;
    this.ids.add(signal.id);
    this.signals.set(signal.id, signal);
    const row = this._row(signal);
    if (highlight) {
      row.classList.add('is-new');
      row.addEventListener('animationend', () => row.classList.remove('is-new'), { once: true });
    }
    this._insert(row, signal.id);
    // No trimming while an older page is on its way: it must join the rows on screen.
    while (!this.holdTrim && this.body.rows.length > this.maxRows) {
      const last = this.body.lastElementChild;
      this.signals.delete(Number(last.dataset.id));
      last.remove();
      this.onTrim?.(Number(last.dataset.id));
    }
    this._changed();
    return true;
  }

  /** Older rows from the scroll-back (appended below; rows on screen are skipped,
   *  a row trimmed off the bottom earlier comes back in its place). */
  append(signals) {
    let added = 0;
    for (const signal of [...signals].sort((a, b) => b.id - a.id)) {
      if (this.signals.has(signal.id)) continue;
      this.ids.add(signal.id);
      this.signals.set(signal.id, signal);
      this._insert(this._row(signal), signal.id);
      added += 1;
    }
    // Rows the user scrolled back for are kept: the cap grows with them.
    this.maxRows = Math.max(this.maxRows, this.body.rows.length);
    this._changed();
    return added;
  }

  oldestId() {
    const last = this.body.lastElementChild;
    return last ? Number(last.dataset.id) : null;
  }

  _row(signal) {
    const row = renderRow(signal, this.prices.get(signal.symbol));
    if (signal.id === this.selectedId) row.classList.add('is-selected');
    if (this.rowFilter && !this.rowFilter(signal)) row.hidden = true;
    return row;
  }

  /** Narrow the rows on screen without dropping any (null shows all again). */
  setRowFilter(filter) {
    this.rowFilter = filter;
    for (const row of this.body.rows) {
      const signal = this.signals.get(Number(row.dataset.id));
      row.hidden = Boolean(filter && signal && !filter(signal));
    }
    this._changed();
  }

  _insert(row, id) {
    // Rows are sorted by id, descending; new signals almost always go on top.
    let before = this.body.firstElementChild;
    while (before && Number(before.dataset.id) > id) before = before.nextElementSibling;
    this.body.insertBefore(row, before);
  }

  _rowOf(id) {
    return this.body.querySelector(`tr[data-id="${id}"]`);
  }

  /** Update a row's outcome badge. Returns true when the row is on screen. */
  updateOutcome(id, outcome) {
    const signal = this.signals.get(id);
    if (!signal || !outcome) return false;
    const changed = JSON.stringify(signal.outcome) !== JSON.stringify(outcome);
    signal.outcome = outcome;
    if (outcome.stop_price !== undefined && outcome.stop_price !== null) signal.effective_stop = String(outcome.stop_price);
    const row = this._rowOf(id);
    if (!row) return false;
    if (changed) this._redrawRow(row, signal, true);
    this._changed(id);
    return true;
  }

  /** An amendment arrived: keep it with the signal and show the stop it sets. */
  addEvent(id, event) {
    const signal = this.signals.get(id);
    if (!signal || !event) return false;
    const events = Array.isArray(signal.events) ? signal.events : [];
    if (events.some((e) => e.id === event.id)) return false;
    signal.events = [...events, event].sort((a, b) => a.id - b.id);
    if (event.type === 'move_stop' && event.price !== null && event.price !== undefined) {
      signal.effective_stop = String(event.price);
    }
    const row = this._rowOf(id);
    if (row) this._redrawRow(row, signal, false);
    this._changed(id);
    return true;
  }

  /** Replace one signal's payload (a fresher copy from the API). A read that was
   *  overtaken by an outcome frame never takes the outcome back: outcomes only
   *  move forward, so the further one wins; amendments are merged by id. */
  replace(signal) {
    const known = this.signals.get(signal.id);
    if (!known) return false;
    if (progress(signal.outcome) < progress(known.outcome)) {
      signal = { ...signal, outcome: known.outcome, effective_stop: known.effective_stop ?? signal.effective_stop };
    }
    const events = new Map([...(known.events || []), ...(signal.events || [])].map((e) => [e.id, e]));
    signal.events = [...events.values()].sort((a, b) => a.id - b.id);
    this.signals.set(signal.id, signal);
    const row = this._rowOf(signal.id);
    if (row) this._redrawRow(row, signal, false);
    this._changed(signal.id);
    return true;
  }

  _redrawRow(row, signal, flashOutcome) {
    const fresh = this._row(signal);
    // A redraw for another reason (an amendment, a fresher read) keeps a flash running.
    const flashing = row.querySelector('.c-outcome .badge.is-updated') !== null;
    if (flashOutcome || flashing) fresh.querySelector('.c-outcome .badge')?.classList.add('is-updated');
    row.replaceWith(fresh);
  }

  /** New latest prices {symbol: price}: refresh the "Now" cells of open rows. */
  setPrices(prices) {
    for (const [symbol, price] of Object.entries(prices)) this.prices.set(symbol, price);
    for (const row of this.body.rows) {
      const signal = this.signals.get(Number(row.dataset.id));
      if (!signal || !isOpen(signal) || !(signal.symbol in prices)) continue;
      row.querySelector('.c-now')?.replaceChildren(...nowCell(signal, prices[signal.symbol]));
    }
  }

  /** Symbols of the open signals on screen, most recent first. */
  openSymbols(limit = 40) {
    const out = [];
    for (const row of this.body.rows) {
      const signal = this.signals.get(Number(row.dataset.id));
      if (signal && isOpen(signal) && !out.includes(signal.symbol)) out.push(signal.symbol);
      if (out.length >= limit) break;
    }
    return out;
  }

  select(id) {
    const signal = this.signals.get(id);
    if (!signal) return;
    this._rowOf(this.selectedId)?.classList.remove('is-selected');
    this.selectedId = id;
    this._rowOf(id)?.classList.add('is-selected');
    this.onSelect?.(signal);
  }

  clearSelection() {
    this._rowOf(this.selectedId)?.classList.remove('is-selected');
    this.selectedId = null;
  }

  selected() {
    return this.selectedId === null ? null : this.signals.get(this.selectedId) || null;
  }

  /** Refresh the "12s ago" and "in 3h" labels. */
  tickAges(now = Date.now()) {
    for (const time of this.body.querySelectorAll('.c-time time[datetime]')) {
      const text = compactAge((now - Date.parse(time.dateTime)) / 1000);
      if (time.textContent !== text) time.textContent = text;
    }
    for (const time of this.body.querySelectorAll('.c-exp time[datetime]')) {
      const text = untilLabel(time.dateTime, now);
      if (time.textContent !== text) time.textContent = text;
    }
  }

  visible() {
    return this.rowFilter ? [...this.signals.values()].filter(this.rowFilter) : [...this.signals.values()];
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  _changed(id = null) {
    let count = 0;
    for (const row of this.body.rows) if (!row.hidden) count += 1;
    if (this.emptyState) this.emptyState.hidden = count > 0;
    if (this.countEl) this.countEl.textContent = String(count);
    for (const listener of this.listeners) listener(this, id);
  }
}
