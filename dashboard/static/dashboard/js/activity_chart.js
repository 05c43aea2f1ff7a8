// Signals per hour over the last 24 hours (stacked long/short bars) and the
// per-source breakdown, both updated live as signals arrive.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { AXIS, observeResize, sizeOf, toEpochSeconds } from './chart_base.js';

/** Hourly buckets [{hour, long, short}] -> uPlot columns [t, total, long]. */
export function activityColumns(buckets) {
  const t = []; const total = []; const long = [];
  for (const b of buckets) {
    t.push(toEpochSeconds(b.hour));
    total.push(b.long + b.short);
    long.push(b.long);
  }
  return [t, total, long];
}

export class ActivityChart {
  constructor({ el, buckets }) {
    this.el = el;
    this.buckets = buckets.map((b) => ({ ...b }));
    this.plot = null;
    observeResize(el, () => this.plot, 150);
    this._render();
  }

  /** Count one more signal (a live arrival); rolls the 24 h window forward. */
  count(signal) {
    const t = Date.parse(signal.created_at);
    if (Number.isNaN(t)) return;
    const hour = new Date(t);
    hour.setUTCMinutes(0, 0, 0);
    const key = hour.getTime();
    let last = this.buckets.length ? Date.parse(this.buckets[this.buckets.length - 1].hour) : key;
    while (key > last) {
      last += 3600 * 1000;
      this.buckets.push({ hour: new Date(last).toISOString(), long: 0, short: 0 });
      this.buckets.shift();
    }
    const bucket = this.buckets.find((b) => Date.parse(b.hour) === key);
    if (!bucket) return;
    if (signal.direction === 'long') bucket.long += 1; else bucket.short += 1;
    this.plot?.setData(activityColumns(this.buckets));
  }

  reset(buckets) {
    this.buckets = buckets.map((b) => ({ ...b }));
    this.plot?.setData(activityColumns(this.buckets));
  }

  _render() {
    const bars = uPlot.paths.bars({ size: [0.72, 24], gap: 1 });
    // "Total" is drawn first in the short colour and "long" on top of it from zero,
    // which reads as a stacked bar: green = long, red remainder = short.
    this.plot = new uPlot({
      ...sizeOf(this.el, 150),
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(3, Math.ceil(max * 1.15))] } },
      axes: [
        { ...AXIS, space: 60 },
        { ...AXIS, size: 36, values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) ? v : '')) },
      ],
      series: [
        {},
        { label: 'All', fill: 'rgba(248,81,73,0.75)', stroke: 'rgba(248,81,73,0.9)', width: 0, paths: bars, points: { show: false } },
        { label: 'Long', fill: 'rgba(63,185,80,0.8)', stroke: 'rgba(63,185,80,0.95)', width: 0, paths: bars, points: { show: false } },
      ],
    }, activityColumns(this.buckets), this.el);
  }
}

/** Per-source counts and win rate among closed outcomes, as CSS bars. */
export function renderSourceBreakdown(listEl, signals) {
  const stats = new Map();
  for (const s of signals) {
    const row = stats.get(s.source) || { n: 0, wins: 0, losses: 0 };
    row.n += 1;
    if (s.outcome?.status === 'tp_hit') row.wins += 1;
    if (s.outcome?.status === 'sl_hit') row.losses += 1;
    stats.set(s.source, row);
  }
  const rows = [...stats.entries()].sort((a, b) => b[1].n - a[1].n).slice(0, 6);
  const max = Math.max(1, ...rows.map(([, r]) => r.n));
  listEl.replaceChildren(...rows.map(([source, r]) => {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'src-name';
    name.textContent = source;
    const bar = document.createElement('span');
    bar.className = 'src-bar';
    const fill = document.createElement('i');
    fill.style.width = `${Math.round((r.n / max) * 100)}%`;
    bar.append(fill);
    const n = document.createElement('span');
    n.className = 'src-n';
    n.textContent = String(r.n);
    const wr = document.createElement('span');
    wr.className = 'src-wr';
    const closed = r.wins + r.losses;
    wr.textContent = closed ? `${Math.round((r.wins / closed) * 100)}% win` : '—';
    wr.title = closed ? `${r.wins} take-profit, ${r.losses} stop-loss` : 'no closed outcomes yet';
    li.append(name, bar, n, wr);
    return li;
  }));
  if (rows.length === 0) {
    const li = document.createElement('li');
    li.className = 'muted small';
    li.textContent = 'No signals to break down yet.';
    listEl.append(li);
  }
}
