// The health pill: GET /health/ now and then, plus `health` frames pushed over the
// live connection. /health/ answers 503 with the same JSON body when down.
//
// A pill that keeps saying "Healthy" while the page is cut off is worse than none:
// the reading is shown as stale once it is older than two refresh intervals or the
// live connection is down, and a fresh one is fetched as soon as it is back.

import { healthFreshness } from './health_rules.js';

const LABELS = { ok: 'Healthy', degraded: 'Degraded', down: 'Down' };

function componentItem(name, info) {
  const li = document.createElement('li');
  li.dataset.status = info?.status || 'unknown';
  li.dataset.component = name;
  const head = document.createElement('div');
  head.className = 'hc-head';
  const label = document.createElement('span');
  label.className = 'hc-name';
  label.textContent = name.replace(/_/g, ' ');
  const value = document.createElement('span');
  value.className = 'hc-value';
  const points = Number.isFinite(info?.points) && Number.isFinite(info?.max) ? `${info.points}/${info.max}` : '';
  const latency = Number.isFinite(info?.latency_ms) ? `${info.latency_ms} ms` : '';
  value.textContent = [info?.status || 'unknown', points || latency].filter(Boolean).join(' · ');
  head.append(label, value);
  li.append(head);
  if (Number.isFinite(info?.points) && Number.isFinite(info?.max) && info.max > 0) {
    const bar = document.createElement('span');
    bar.className = 'hc-bar';
    const fill = document.createElement('i');
    fill.style.width = `${Math.max(0, Math.min(100, (100 * info.points) / info.max))}%`;
    bar.append(fill);
    li.append(bar);
  }
  const reason = info?.reason || info?.error || info?.detail;
  if (reason) {
    const p = document.createElement('p');
    p.className = 'hc-reason';
    p.textContent = reason;
    li.append(p);
  }
  return li;
}

export class HealthPanel {
  constructor({ root, textEl, listEl, updatedEl, url, refreshMs = 30000, onHealth = null }) {
    Object.assign(this, { root, textEl, listEl, updatedEl, url, refreshMs, onHealth });
    this.timer = null;
    this.staleTimer = null;
    this.last = null;         // the last reading {status, score, ...}
    this.receivedAt = 0;      // when it arrived (ms)
    this.connected = true;    // live connection (or polling) working
    this.reachable = true;    // the last /health/ request answered
  }

  start() {
    this.refresh();
    this.staleTimer = setInterval(() => this._paint(), 1000);
  }

  /** The feed's badge state changed: 'live' | 'polling' | 'reconnecting' | ... */
  connection(state) {
    // 'connecting' (the first attempt) is not an outage: no "offline" flash on load.
    if (state === 'connecting') return;
    const connected = state === 'live' || state === 'polling';
    const back = connected && !this.connected;
    this.connected = connected;
    this._paint();
    if (back) this.refresh(); // a reading from before the outage says nothing now
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const res = await fetch(this.url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      const body = await res.json();
      this.reachable = true;
      this.render(body, 'Checked');
    } catch (err) {
      // Keep the last reading on screen, marked as not current (see _paint).
      this.reachable = false;
      this._paint();
    } finally {
      this.timer = setTimeout(() => this.refresh(), this.refreshMs);
    }
  }

  render(health, note = 'Pushed live') {
    this.last = health && typeof health === 'object' ? health : { status: 'unknown' };
    this.receivedAt = Date.now();
    this.note = note;
    // The six scored components, then the dependencies reported beside them.
    const parts = { ...(this.last.components || {}) };
    for (const name of ['database', 'redis']) if (this.last[name] && typeof this.last[name] === 'object') parts[name] = this.last[name];
    const items = Object.entries(parts).map(([name, info]) => componentItem(name, info));
    this.listEl.replaceChildren(...items);
    this._paint();
    this.onHealth?.(this.last);
  }

  _paint() {
    const fresh = healthFreshness({
      receivedAt: this.receivedAt, now: Date.now(), maxAgeMs: 2 * this.refreshMs,
      connected: this.connected && this.reachable,
    });
    const status = this.last && typeof this.last.status === 'string' ? this.last.status : 'unknown';
    const known = LABELS[status];
    const score = Number.isFinite(this.last?.score) ? ` · ${this.last.score}` : '';
    let text; let shown;
    if (!known) {
      text = 'Health unknown'; shown = 'unknown';
    } else if (fresh === 'fresh') {
      text = `${known}${score}`; shown = status;
    } else {
      // Keep the old figure visible but say plainly it is not current.
      text = fresh === 'disconnected' ? 'Health unknown · offline' : `Stale · ${known}${score}`;
      shown = 'stale';
    }
    if (this.root.dataset.status !== shown) this.root.dataset.status = shown;
    if (this.textEl.textContent !== text) this.textEl.textContent = text;
    this.root.querySelector('summary')?.setAttribute('aria-label', `System health: ${text}`);
    const when = this.receivedAt ? new Date(this.receivedAt).toLocaleTimeString() : '';
    let updated = this.note && when ? `${this.note} ${when}` : 'Checking…';
    if (fresh === 'stale') updated += ' · out of date';
    if (fresh === 'disconnected') updated += ' · connection down';
    if (this.updatedEl.textContent !== updated) this.updatedEl.textContent = updated;
  }
}
