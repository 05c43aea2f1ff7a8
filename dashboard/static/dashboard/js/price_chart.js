// The price chart: candles and volume for one symbol from /api/market/candles/,
// kept live by fetching the newest candles every few seconds and merging them in;
// the overlays of the symbol's strategies; and the signals drawn on it: every
// entry in view, and the focused signal's (the clicked row, else the newest)
// levels and exits. The market-data API may be missing (503), empty or slow: the
// chart says so instead. The oscillator panes under it (oscillator_panes.js) are
// handed the same candles after every change, and share its time axis and cursor.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import {
  AXIS, COLORS, CURSOR_SYNC, LEGEND_SPACE, PAD_RIGHT, Y_AXIS_SIZE, observeResize, sizeOf, toEpochSeconds,
} from './chart_base.js';
import { drawCandles, drawLevels, drawMarkers, drawVolume, levelLines } from './chart_draw.js';
import { formatPrice } from './format.js';
import { overlaysFor } from './overlays.js';

const TIMEFRAME_SECONDS = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '4h': 14400, '1d': 86400 };
const CANDLES = 150;

/** Candle payloads -> uPlot columns [t, open, high, low, close] plus volumes. */
export function candleColumns(candles) {
  const cols = [[], [], [], [], []];
  const volumes = [];
  for (const c of candles) {
    const t = toEpochSeconds(c.open_time ?? c.time ?? c.t);
    const o = Number(c.open); const h = Number(c.high); const l = Number(c.low); const cl = Number(c.close);
    if (t === null || ![o, h, l, cl].every(Number.isFinite)) continue;
    cols[0].push(t); cols[1].push(o); cols[2].push(h); cols[3].push(l); cols[4].push(cl);
    volumes.push(Number(c.volume) || 0);
  }
  return { cols, volumes };
}

/**
 * The timeframe to show a signal created at `createdAt` (epoch s) with: the one on
 * screen when `CANDLES` of it reach back to the signal (with room before it), else
 * the shortest offered that does, else the longest offered.
 */
export function timeframeCovering(createdAt, current, offered, now = Date.now() / 1000) {
  const fits = (tf) => TIMEFRAME_SECONDS[tf] && (now - createdAt) < TIMEFRAME_SECONDS[tf] * CANDLES * 0.85;
  if (offered.includes(current) && fits(current)) return current;
  const sorted = offered.filter((tf) => TIMEFRAME_SECONDS[tf]).sort((a, b) => TIMEFRAME_SECONDS[a] - TIMEFRAME_SECONDS[b]);
  return sorted.find(fits) || sorted[sorted.length - 1] || current;
}

export class PriceChart {
  /**
   * @param {object} args {el, placeholder, latestEl, sessionEl, overlayEl, urls,
   *   signalsFor(symbol) -> signals newest first, liveMs, fullReloadMs,
   *   panes: the oscillator panes (optional)}
   */
  constructor({ el, placeholder, latestEl, sessionEl, overlayEl, urls, signalsFor, liveMs = 4000, fullReloadMs = 60000,
    panes = null }) {
    Object.assign(this, { el, placeholder, latestEl, sessionEl, overlayEl, urls, signalsFor, liveMs, fullReloadMs, panes });
    this.plot = null;
    this.symbol = null;
    this.market = null;
    this.timeframe = '1m';
    this.timer = null;
    this.focusId = null;
    this.configs = [];          // strategy configs of this symbol (for overlays)
    this.volumes = [];
    this.overlayKey = '';
    this.lastFull = 0;
    this.drawn = { labels: [], markers: [] };
    this.candleUpdates = 0;     // merges that changed the data (tests watch it)
    observeResize(el, () => this.plot, 280, LEGEND_SPACE);
  }

  show({ symbol, market, timeframe }) {
    const changed = symbol !== this.symbol || (timeframe && timeframe !== this.timeframe);
    this.symbol = symbol;
    this.market = market;
    this.timeframe = timeframe || this.timeframe;
    if (changed) {
      this._destroy();
      this.lastFull = 0;
      if (this.latestEl) this.latestEl.textContent = '';
      this._placeholder('Loading market data…', 'loading');
    }
    return this.refresh();
  }

  /** Show one signal's levels (a row click); null goes back to the newest signal. */
  focus(signal) {
    this.focusId = signal ? signal.id : null;
    this.redraw();
  }

  focused() {
    const signals = this.signalsFor(this.symbol);
    return signals.find((s) => s.id === this.focusId) || signals[0] || null;
  }

  setStrategies(configs) {
    this.configs = configs || [];
    if (this.plot) this._render({ cols: this.plot.data.slice(0, 5), volumes: this.volumes }, true);
  }

  setLatest(price) {
    if (this.latestEl) this.latestEl.textContent = price === null || price === undefined ? '' : formatPrice(price);
  }

  /** Redraw markers and levels (a signal, outcome or amendment changed). */
  redraw() {
    // setData re-runs the y range, which depends on the focused signal's levels.
    if (this.plot) this.plot.setData(this.plot.data);
  }

  async refresh() {
    clearTimeout(this.timer);
    if (!this.symbol) return;
    const symbol = this.symbol; const timeframe = this.timeframe;
    const full = !this.plot || Date.now() - this.lastFull > this.fullReloadMs;
    try {
      await Promise.all([this._loadCandles(symbol, timeframe, full), full ? this._loadSession() : null]);
    } finally {
      if (!document.hidden) {
        this.timer = setTimeout(() => this.refresh(), this.liveMs);
      } else if (!this.waitingVisible) {
        // No point polling prices for a hidden tab; catch up when it is shown.
        this.waitingVisible = true;
        document.addEventListener('visibilitychange', () => { this.waitingVisible = false; this.refresh(); }, { once: true });
      }
    }
  }

  async _get(url) {
    const res = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body = null;
    try { body = await res.json(); } catch (err) { body = null; }
    return { status: res.status, ok: res.ok, body };
  }

  async _loadCandles(symbol, timeframe, full) {
    const params = new URLSearchParams({ symbol, timeframe, limit: full ? String(CANDLES) : '3' });
    let res;
    try {
      res = await this._get(`${this.urls.candles}?${params}`);
    } catch (err) {
      if (!this.plot) this._placeholder('Cannot reach the server for prices. Retrying…', 'error');
      return;
    }
    if (symbol !== this.symbol || timeframe !== this.timeframe) return;
    if (res.status === 503) {
      this._destroy();
      this._placeholder('Market data is not available right now. Prices will appear when the feed is running.', 'unavailable');
      return;
    }
    if (!res.ok) {
      this._destroy();
      const detail = res.body?.detail || Object.values(res.body || {}).flat()[0] || '';
      this._placeholder(`Could not load ${symbol} ${timeframe} candles (HTTP ${res.status})${detail ? `: ${detail}` : ''}.`, 'error');
      return;
    }
    const list = Array.isArray(res.body) ? res.body : (res.body?.candles ?? res.body?.results ?? []);
    const fresh = candleColumns(list);
    if (full) {
      this.lastFull = Date.now();
      if (fresh.cols[0].length === 0) {
        this._destroy();
        this._placeholder(`No ${timeframe} candles for ${symbol} yet.`, 'empty');
        return;
      }
      this._render(fresh);
    } else if (this.plot) {
      this._merge(fresh);
    }
  }

  /** Fold the newest candles into the data: replace by open time, append new ones. */
  _merge({ cols, volumes }) {
    const data = this.plot.data.slice(0, 5).map((c) => [...c]);
    const vols = [...this.volumes];
    let changed = false;
    cols[0].forEach((t, k) => {
      let i = data[0].lastIndexOf(t);
      if (i === -1) {
        if (data[0].length && t < data[0][data[0].length - 1]) return; // older than the view
        for (const c of data) c.push(null);
        vols.push(0);
        i = data[0].length - 1;
        changed = true;
      }
      for (let col = 0; col < 5; col += 1) {
        if (data[col][i] !== cols[col][k]) { data[col][i] = cols[col][k]; changed = true; }
      }
      if (vols[i] !== volumes[k]) { vols[i] = volumes[k]; changed = true; }
    });
    if (!changed) return;
    while (data[0].length > CANDLES) { for (const c of data) c.shift(); vols.shift(); }
    this.candleUpdates += 1;
    this._render({ cols: data, volumes: vols });
  }

  async _loadSession() {
    if (!this.sessionEl || !this.market) return;
    try {
      const res = await this._get(`${this.urls.session}?${new URLSearchParams({ market: this.market })}`);
      const body = res.body || {};
      const open = body.is_open ?? body.open;
      if (!res.ok || typeof open !== 'boolean') {
        this.sessionEl.hidden = true;
        return;
      }
      this.sessionEl.hidden = false;
      this.sessionEl.dataset.open = String(open);
      let text = open ? 'Market open' : 'Market closed';
      if (!open && body.next_open) {
        const next = new Date(body.next_open);
        if (!Number.isNaN(next.getTime())) text += ` · opens ${next.toUTCString().slice(0, 22)} UTC`;
      }
      this.sessionEl.textContent = text;
    } catch (err) {
      this.sessionEl.hidden = true;
    }
  }

  _placeholder(text, kind) {
    this.placeholder.textContent = text;
    this.placeholder.dataset.kind = kind;
    this.placeholder.hidden = false;
    // No candles on screen: the panes must not keep the previous symbol's lines.
    this.panes?.clear(kind === 'loading' ? 'Loading…' : 'No candles on the chart.');
  }

  _destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.overlayKey = '';
  }

  _renderOverlayLegend(lines) {
    if (!this.overlayEl) return;
    this.overlayEl.replaceChildren(...lines.map((line) => {
      const item = document.createElement('span');
      item.className = 'overlay-item';
      const swatch = document.createElement('i');
      swatch.style.background = line.stroke;
      item.append(swatch, line.label);
      return item;
    }));
  }

  _render({ cols, volumes }, rebuild = false) {
    this.placeholder.hidden = true;
    this.placeholder.dataset.kind = 'chart';
    this.volumes = volumes;
    const overlays = overlaysFor(this.configs, cols[4]);
    const key = overlays.map((o) => o.label).join('|');
    const data = [...cols, ...overlays.map((o) => o.values)];
    if (this.plot && key === this.overlayKey && !rebuild) {
      this.plot.setData(data);
      this._updatePanes(cols);
      return;
    }
    this._destroy();
    this.overlayKey = key;
    this._renderOverlayLegend(overlays);
    const chart = this;
    const hidden = { paths: () => null, points: { show: false } };
    const opts = {
      ...sizeOf(this.el, 280, LEGEND_SPACE),
      padding: [null, PAD_RIGHT, null, null],
      legend: { show: true, live: true },
      // The panes are in the same sync group; their y scales have other names, so
      // only the time is shared (no horizontal line at an RSI "price").
      cursor: { drag: { x: true, y: false }, points: { show: false }, sync: { key: CURSOR_SYNC } },
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => chart._yRange(min, max) },
      },
      axes: [
        { ...AXIS },
        { ...AXIS, size: Y_AXIS_SIZE, values: (u, ticks) => ticks.map((v) => formatPrice(String(+v.toPrecision(8)))) },
      ],
      series: [
        {},
        { label: 'Open', stroke: COLORS.axis, ...hidden },
        { label: 'High', stroke: COLORS.up, ...hidden },
        { label: 'Low', stroke: COLORS.down, ...hidden },
        { label: 'Close', stroke: COLORS.text, ...hidden },
        ...overlays.map((o) => ({ label: o.label, stroke: o.stroke, width: 1.25, points: { show: false } })),
      ],
      hooks: {
        setScale: [(u, key) => { if (key === 'x') chart.panes?.setX(u.scales.x.min, u.scales.x.max); }],
        drawClear: [(u) => drawVolume(u, chart.volumes)],
        draw: [
          (u) => drawCandles(u),
          (u) => {
            const focused = chart.focused();
            chart.drawn.labels = drawLevels(u, levelLines(focused));
            chart.drawn.markers = drawMarkers(u, chart.signalsFor(chart.symbol), focused?.id ?? null,
              TIMEFRAME_SECONDS[chart.timeframe] || 60);
            chart.drawn.focusId = focused?.id ?? null;
          },
        ],
      },
    };
    this.el.replaceChildren();
    this.plot = new uPlot(opts, data, this.el);
    this._updatePanes(cols);
  }

  _updatePanes(cols) {
    this.panes?.update(cols[0], cols[4], `${this.symbol} ${this.timeframe}`);
  }

  /** The time range on screen (the panes follow it). */
  xRange() {
    const x = this.plot?.scales.x;
    return x && Number.isFinite(x.min) && Number.isFinite(x.max) ? [x.min, x.max] : null;
  }

  /** The y range: the candles, plus the focused signal's levels (all of them for a
   *  clicked row; the newest signal's only when they are near the price). */
  _yRange(min, max) {
    const focused = this.focused();
    const levels = levelLines(focused).map((l) => l.price);
    const clicked = focused && focused.id === this.focusId;
    let lo = min; let hi = max;
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = Math.min(...levels); hi = Math.max(...levels); }
    for (const v of levels) {
      if (clicked || (v > min - (max - min) && v < max + (max - min))) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    // Room above and below so the outermost labels sit inside the plot.
    const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.01 || 1;
    return [lo - pad, hi + pad];
  }
}
