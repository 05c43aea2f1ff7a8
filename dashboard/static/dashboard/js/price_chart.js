// The price chart: candles for one symbol from /api/market/candles/, with the
// signals drawn on them (entry markers, and the newest signal's entry, stop and
// take-profit levels). We draw candles and markers in uPlot's draw hook. The
// market-data API may be missing (503), empty or slow: the chart says so instead.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { AXIS, COLORS, LEGEND_SPACE, observeResize, sizeOf, toEpochSeconds } from './chart_base.js';
import { formatPrice } from './format.js';

/** Candle payloads (any of the shapes the API may use) -> uPlot columns. */
export function candleColumns(candles) {
  const cols = [[], [], [], [], []];
  for (const c of candles) {
    const t = toEpochSeconds(c.open_time ?? c.time ?? c.t);
    const o = Number(c.open); const h = Number(c.high); const l = Number(c.low); const cl = Number(c.close);
    if (t === null || ![o, h, l, cl].every(Number.isFinite)) continue;
    cols[0].push(t); cols[1].push(o); cols[2].push(h); cols[3].push(l); cols[4].push(cl);
  }
  return cols;
}

function drawCandles(u) {
  const [xs, opens, highs, lows, closes] = u.data;
  if (!xs || xs.length === 0) return;
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const [i0, i1] = [u.series[0].idxs?.[0] ?? 0, u.series[0].idxs?.[1] ?? xs.length - 1];
  const span = xs.length > 1 ? Math.abs(u.valToPos(xs[1], 'x', true) - u.valToPos(xs[0], 'x', true)) : width / 2;
  const bodyWidth = Math.max(1, Math.min(18 * devicePixelRatio, span * 0.68));
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  for (let i = i0; i <= i1; i += 1) {
    const x = Math.round(u.valToPos(xs[i], 'x', true));
    const yO = u.valToPos(opens[i], 'y', true);
    const yC = u.valToPos(closes[i], 'y', true);
    const yH = u.valToPos(highs[i], 'y', true);
    const yL = u.valToPos(lows[i], 'y', true);
    const color = closes[i] >= opens[i] ? COLORS.up : COLORS.down;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    ctx.beginPath();
    ctx.moveTo(x + 0.5, yH);
    ctx.lineTo(x + 0.5, yL);
    ctx.stroke();
    ctx.fillRect(Math.round(x - bodyWidth / 2), Math.min(yO, yC), Math.round(bodyWidth), Math.max(1, Math.abs(yC - yO)));
  }
  ctx.restore();
}

function drawSignals(u, signals) {
  const xs = u.data[0];
  if (!xs || xs.length === 0 || signals.length === 0) return;
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const dpr = devicePixelRatio;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  // Levels of the newest signal: entry, stop and take-profit as dashed lines.
  const latest = signals[0];
  const levels = [
    [Number(latest.take_profit), COLORS.up, 'TP'],
    [Number(latest.entry_price), COLORS.entry, 'Entry'],
    [Number(latest.stop_loss), COLORS.down, 'SL'],
  ];
  ctx.lineWidth = dpr;
  ctx.font = `600 ${10 * dpr}px system-ui, sans-serif`;
  // uPlot leaves its own axis text settings on the context: set ours explicitly.
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  for (const [price, color, label] of levels) {
    if (!Number.isFinite(price)) continue;
    const y = Math.round(u.valToPos(price, 'y', true)) + 0.5;
    ctx.strokeStyle = color;
    ctx.globalAlpha = 0.7;
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);
    const text = `${label} ${formatPrice(String(price))}`;
    const w = ctx.measureText(text).width + 8 * dpr;
    const h = 15 * dpr;
    ctx.fillStyle = COLORS.bg;
    ctx.fillRect(left + 4 * dpr, y - h / 2, w, h);
    ctx.strokeStyle = color;
    ctx.strokeRect(left + 4 * dpr + 0.5, y - h / 2 + 0.5, w - 1, h - 1);
    ctx.fillStyle = color;
    ctx.fillText(text, left + 8 * dpr, y + 0.5 * dpr);
  }
  ctx.setLineDash([]);
  // Every signal in view: a triangle at its entry price and time.
  const xMin = u.scales.x.min; const xMax = u.scales.x.max;
  for (const s of signals) {
    const t = toEpochSeconds(s.created_at);
    if (t === null || t < xMin || t > xMax) continue;
    const x = u.valToPos(t, 'x', true);
    const y = u.valToPos(Number(s.entry_price), 'y', true);
    const up = s.direction === 'long';
    const size = 6 * dpr;
    ctx.fillStyle = up ? COLORS.up : COLORS.down;
    ctx.strokeStyle = COLORS.bg;
    ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath();
    if (up) {
      ctx.moveTo(x, y - size); ctx.lineTo(x - size, y + size * 0.8); ctx.lineTo(x + size, y + size * 0.8);
    } else {
      ctx.moveTo(x, y + size); ctx.lineTo(x - size, y - size * 0.8); ctx.lineTo(x + size, y - size * 0.8);
    }
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
  }
  ctx.restore();
}

export class PriceChart {
  /**
   * @param {object} args {el, placeholder, latestEl, sessionEl, urls, signalsFor(symbol)}
   */
  constructor({ el, placeholder, latestEl, sessionEl, urls, signalsFor, refreshMs = 15000 }) {
    Object.assign(this, { el, placeholder, latestEl, sessionEl, urls, signalsFor, refreshMs });
    this.plot = null;
    this.symbol = null;
    this.market = null;
    this.timeframe = '1m';
    this.timer = null;
    this.loading = null;
    observeResize(el, () => this.plot, 280, LEGEND_SPACE);
  }

  show({ symbol, market, timeframe }) {
    const changed = symbol !== this.symbol || timeframe !== this.timeframe;
    this.symbol = symbol;
    this.market = market;
    this.timeframe = timeframe || this.timeframe;
    if (changed) {
      this._destroy();
      this._placeholder('Loading market data…', 'loading');
    }
    return this.refresh();
  }

  /** Redraw markers (a new signal for this symbol arrived). */
  redraw() {
    if (this.plot) this.plot.redraw(false, false);
  }

  async refresh() {
    clearTimeout(this.timer);
    if (!this.symbol) return;
    const symbol = this.symbol; const timeframe = this.timeframe;
    try {
      await Promise.all([this._loadCandles(symbol, timeframe), this._loadLatest(symbol), this._loadSession()]);
    } finally {
      if (!document.hidden) {
        this.timer = setTimeout(() => this.refresh(), this.refreshMs);
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

  async _loadCandles(symbol, timeframe) {
    const params = new URLSearchParams({ symbol, timeframe, limit: '120' });
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
      const detail = res.body && res.body.detail ? `: ${res.body.detail}` : '';
      this._placeholder(`Could not load ${symbol} candles (HTTP ${res.status})${detail}.`, 'error');
      return;
    }
    const list = Array.isArray(res.body) ? res.body : (res.body?.candles ?? res.body?.results ?? []);
    const data = candleColumns(list);
    if (data[0].length === 0) {
      this._destroy();
      this._placeholder(`No ${timeframe} candles for ${symbol} yet.`, 'empty');
      return;
    }
    this._render(data);
  }

  async _loadLatest(symbol) {
    if (!this.latestEl) return;
    try {
      const res = await this._get(`${this.urls.latest}?${new URLSearchParams({ symbol })}`);
      const body = res.body || {};
      const price = body.price ?? body.last ?? body.close;
      this.latestEl.textContent = res.ok && price != null ? formatPrice(price) : '';
    } catch (err) {
      this.latestEl.textContent = '';
    }
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
  }

  _destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }

  _render(data) {
    this.placeholder.hidden = true;
    this.placeholder.dataset.kind = 'chart';
    const chart = this;
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const opts = {
      ...sizeOf(this.el, 280, LEGEND_SPACE),
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false }, points: { show: false } },
      scales: {
        x: { time: true },
        y: {
          range: (u, min, max) => {
            // Keep the newest signal's levels in view when they are near the price.
            const levels = chart._levels();
            let lo = min; let hi = max;
            for (const v of levels) {
              if (v > min - (max - min) && v < max + (max - min)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
            }
            const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.01 || 1;
            return [lo - pad, hi + pad];
          },
        },
      },
      axes: [
        { ...AXIS },
        { ...AXIS, size: 70, values: (u, ticks) => ticks.map((v) => formatPrice(String(+v.toPrecision(8)))) },
      ],
      series: [
        {},
        { label: 'Open', stroke: COLORS.axis, paths: () => null, points: { show: false } },
        { label: 'High', stroke: COLORS.up, paths: () => null, points: { show: false } },
        { label: 'Low', stroke: COLORS.down, paths: () => null, points: { show: false } },
        { label: 'Close', stroke: COLORS.text, paths: () => null, points: { show: false } },
      ],
      hooks: {
        draw: [
          (u) => drawCandles(u),
          (u) => drawSignals(u, chart.signalsFor(chart.symbol)),
        ],
      },
    };
    this.el.replaceChildren();
    this.plot = new uPlot(opts, data, this.el);
  }

  _levels() {
    const latest = this.signalsFor(this.symbol)[0];
    if (!latest) return [];
    return [latest.entry_price, latest.stop_loss, latest.take_profit].map(Number).filter(Number.isFinite);
  }
}
