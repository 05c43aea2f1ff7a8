// The signals table: one row per signal id, newest (highest id) first, whatever
// order or how many times frames arrive. Markup mirrors
// templates/dashboard/_signal_row.html so server- and client-drawn rows look alike.

import { capitalise, compactAge, outcomeLabel, utcStamp } from './format.js';

function el(tag, attrs = {}, children = []) {
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

function outcomeBadge(outcome) {
  const status = outcome?.status || 'open';
  return el('span', { class: `badge outcome outcome-${status}`, text: outcomeLabel(outcome) });
}

export function renderRow(signal) {
  const conf = Math.max(0, Math.min(100, Number(signal.confidence) || 0));
  const isLong = signal.direction === 'long';
  const fill = el('span', { class: 'conf-fill' });
  fill.style.width = `${conf}%`;
  return el('tr', {
    class: 'signal-row',
    'data-id': String(signal.id),
    'data-symbol': signal.symbol,
    'data-direction': signal.direction,
    title: signal.note || null,
  }, [
    el('td', { class: 'c-time' }, [el('time', {
      datetime: signal.created_at, title: utcStamp(signal.created_at),
      text: compactAge((Date.now() - Date.parse(signal.created_at)) / 1000),
    })]),
    el('td', { class: 'c-symbol' }, [
      el('span', { class: 'symbol', text: signal.symbol }), ' ', el('span', { class: 'tf', text: signal.timeframe }),
    ]),
    el('td', { class: 'c-market', text: capitalise(signal.market) }),
    el('td', { class: 'c-dir' }, [el('span', {
      class: `badge dir dir-${signal.direction}`, text: isLong ? '▲ Long' : '▼ Short',
    })]),
    el('td', { class: 'num', text: signal.entry_price }),
    el('td', { class: 'num', text: signal.stop_loss }),
    el('td', { class: 'num', text: signal.take_profit }),
    el('td', { class: 'c-conf' }, [
      el('span', {
        class: 'conf', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100',
        'aria-valuenow': String(conf), 'aria-label': `Confidence ${conf}%`,
      }, [fill]),
      el('span', { class: 'conf-num', text: String(conf) }),
    ]),
    el('td', { class: 'c-source', text: signal.source }),
    el('td', { class: 'c-outcome' }, [outcomeBadge(signal.outcome)]),
  ]);
}

export class SignalTable {
  constructor({ body, emptyState, countEl, maxRows = 500 }) {
    this.body = body;
    this.emptyState = emptyState;
    this.countEl = countEl;
    this.maxRows = maxRows;
    this.ids = new Set();          // every id ever shown: a trimmed row never comes back
    this.signals = new Map();      // id -> payload, for rows still on screen
    this.listeners = new Set();
  }

  /** Take over the server-rendered rows (their payloads come from the boot JSON). */
  adopt(signals) {
    const rendered = new Set([...this.body.querySelectorAll('tr[data-id]')].map((r) => Number(r.dataset.id)));
    for (const signal of signals) {
      this.ids.add(signal.id);
      this.signals.set(signal.id, signal);
      if (!rendered.has(signal.id)) this._insert(renderRow(signal), signal.id);
    }
    this._changed();
  }

  /** Replace everything (new filters). */
  reset(signals) {
    this.body.replaceChildren();
    this.ids.clear();
    this.signals.clear();
    for (const signal of [...signals].sort((a, b) => b.id - a.id)) {
      this.ids.add(signal.id);
      this.signals.set(signal.id, signal);
      this.body.append(renderRow(signal));
    }
    this._changed();
  }

  has(id) {
    return this.ids.has(id);
  }

  /** Add a signal unless its id is already known. Returns true when a row was added. */
  add(signal, { highlight = true } = {}) {
    if (this.ids.has(signal.id)) return false;
    this.ids.add(signal.id);
    this.signals.set(signal.id, signal);
    const row = renderRow(signal);
    if (highlight) {
      row.classList.add('is-new');
      row.addEventListener('animationend', () => row.classList.remove('is-new'), { once: true });
    }
    this._insert(row, signal.id);
    while (this.body.rows.length > this.maxRows) {
      const last = this.body.lastElementChild;
      this.signals.delete(Number(last.dataset.id));
      last.remove();
    }
    this._changed();
    return true;
  }

  _insert(row, id) {
    // Rows are sorted by id, descending; new signals almost always go on top.
    let before = this.body.firstElementChild;
    while (before && Number(before.dataset.id) > id) before = before.nextElementSibling;
    this.body.insertBefore(row, before);
  }

  /** Update a row's outcome badge. Returns true when the row is on screen. */
  updateOutcome(id, outcome) {
    const signal = this.signals.get(id);
    if (!signal || !outcome) return false;
    signal.outcome = outcome;
    const cell = this.body.querySelector(`tr[data-id="${id}"] .c-outcome`);
    if (!cell) return false;
    const badge = outcomeBadge(outcome);
    badge.classList.add('is-updated');
    cell.replaceChildren(badge);
    this._changed();
    return true;
  }

  /** Refresh the "12s ago" labels. */
  tickAges(now = Date.now()) {
    for (const time of this.body.querySelectorAll('time[datetime]')) {
      const text = compactAge((now - Date.parse(time.dateTime)) / 1000);
      if (time.textContent !== text) time.textContent = text;
    }
  }

  visible() {
    return [...this.signals.values()];
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  _changed() {
    const count = this.body.rows.length;
    if (this.emptyState) this.emptyState.hidden = count > 0;
    if (this.countEl) this.countEl.textContent = String(count);
    for (const listener of this.listeners) listener(this);
  }
}
