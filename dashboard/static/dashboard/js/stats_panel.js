// The performance panel: headline tiles and a per-source table (win rate, average
// R, counts) from GET /api/stats/?days=N, re-read shortly after outcomes and new
// signals arrive so the figures move live with the table. The server computes the
// figures (docs/methodology.md says how); this module only shows them.

import { el } from './table.js';
import { formatR } from './format.js';

const num = (v) => (v === null || v === undefined || v === '' || !Number.isFinite(Number(v)) ? null : Number(v));

/** One source's figures from whichever shape the server uses ({all_time, recent} or flat). */
function figures(entry, period) {
  if (!entry || typeof entry !== 'object') return {};
  const scoped = period === 'all'
    ? (entry.all_time || entry.all || entry)
    : (entry.last_days || entry.recent || entry.last_n_days || entry.window || entry[`last_${period}_days`] || entry);
  const wins = num(scoped.wins); const losses = num(scoped.losses);
  const winRate = num(scoped.win_rate);
  return {
    signals: num(scoped.signals ?? scoped.count ?? scoped.total),
    closed: num(scoped.closed ?? (wins !== null && losses !== null ? wins + losses : null)),
    wins, losses, winRate,
    avgR: num(scoped.avg_r ?? scoped.average_r ?? scoped.mean_r),
    open: num(scoped.open),
  };
}

/** [{source, ...figures}] sorted by signal count (then name). */
export function perSource(stats, period) {
  const raw = stats?.per_source ?? stats?.sources ?? stats?.performance ?? stats?.win_rate_by_source ?? {};
  const entries = Array.isArray(raw) ? raw.map((r) => [r.source ?? r.name, r]) : Object.entries(raw);
  return entries.filter(([name]) => name)
    .map(([source, entry]) => ({ source, ...figures(entry, period) }))
    .sort((a, b) => (b.signals ?? b.closed ?? 0) - (a.signals ?? a.closed ?? 0) || a.source.localeCompare(b.source));
}

/** Headline figures over all sources. */
export function totals(rows) {
  const sum = (key) => rows.reduce((acc, r) => acc + (r[key] ?? 0), 0);
  const wins = sum('wins'); const closed = sum('closed');
  const closedWithR = rows.filter((r) => r.avgR !== null && r.closed);
  const rWeight = closedWithR.reduce((acc, r) => acc + r.closed, 0);
  // Win rate as docs/methodology.md defines it per source: wins among closed signals.
  return {
    signals: sum('signals'),
    closed,
    winRate: closed > 0 ? wins / closed : null,
    avgR: rWeight ? closedWithR.reduce((acc, r) => acc + r.avgR * r.closed, 0) / rWeight : null,
  };
}

const pct = (v) => (v === null || v === undefined ? '—' : `${Math.round(v * 1000) / 10}%`);

export class StatsPanel {
  constructor({ tilesEl, bodyEl, daysEl, updatedEl, url, refreshMs = 60000, debounceMs = 1200 }) {
    Object.assign(this, { tilesEl, bodyEl, daysEl, updatedEl, url, refreshMs, debounceMs });
    this.timer = null;
    this.soon = null;
    this.seq = 0;
    this.loads = 0;
    daysEl?.addEventListener('change', () => this.refresh());
  }

  start() {
    this.refresh();
  }

  /** Something that changes the figures happened: re-read shortly (bursts coalesce). */
  nudge() {
    clearTimeout(this.soon);
    this.soon = setTimeout(() => this.refresh(), this.debounceMs);
  }

  async refresh() {
    clearTimeout(this.timer);
    const seq = ++this.seq;
    const period = this.daysEl?.value || '30';
    const query = period === 'all' ? '' : `?${new URLSearchParams({ days: period })}`;
    try {
      const res = await fetch(`${this.url}${query}`, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const stats = await res.json();
      if (seq !== this.seq) return;
      this.render(stats, period);
      this.loads += 1;
    } catch (err) {
      if (seq === this.seq && this.updatedEl) this.updatedEl.textContent = 'Statistics unavailable';
    } finally {
      if (seq === this.seq) this.timer = setTimeout(() => this.refresh(), this.refreshMs);
    }
  }

  render(stats, period) {
    const rows = perSource(stats, period);
    const all = totals(rows);
    const last24 = num(stats?.signals?.total);
    const tile = (label, value, cls = '') => el('div', { class: `tile ${cls}` }, [
      el('span', { class: 'tile-value', text: value }), el('span', { class: 'tile-label', text: label }),
    ]);
    this.tilesEl.replaceChildren(
      tile('signals · 24 h', last24 === null ? '—' : String(last24)),
      tile('closed', String(all.closed)),
      tile('win rate', pct(all.winRate), all.winRate === null ? '' : (all.winRate >= 0.5 ? 'pos' : 'neg')),
      tile('average R', all.avgR === null ? '—' : formatR(all.avgR), all.avgR === null ? '' : (all.avgR >= 0 ? 'pos' : 'neg')),
    );
    if (!rows.length) {
      this.bodyEl.replaceChildren(el('tr', {}, [el('td', { colspan: '5', class: 'muted', text: 'No signals yet.' })]));
    } else {
      this.bodyEl.replaceChildren(...rows.map((r) => {
        const bar = el('span', { class: 'wr-bar' }, [el('i')]);
        bar.firstChild.style.width = `${r.winRate === null ? 0 : Math.round(r.winRate * 100)}%`;
        return el('tr', { 'data-source': r.source }, [
          el('td', { class: 'src-name', text: r.source }),
          el('td', { class: 'num', text: r.signals === null ? '—' : String(r.signals) }),
          el('td', { class: 'num', text: r.closed === null ? '—' : String(r.closed) }),
          el('td', { class: 'c-wr' }, [bar, el('span', { class: 'wr-num', text: pct(r.winRate) })]),
          el('td', { class: `num ${r.avgR === null ? '' : (r.avgR >= 0 ? 'pos' : 'neg')}`, text: r.avgR === null ? '—' : formatR(r.avgR) }),
        ]);
      }));
    }
    if (this.updatedEl) this.updatedEl.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }
}
