// Canvas drawing for the price chart, called from uPlot's draw hook: volume,
// candles, a signal's levels (entry, stop in force, the original stop when it
// moved, every target of the ladder) and markers (entries, exits, legs); and for
// the oscillator panes under it: guide lines and the MACD histogram, with bars as
// wide as the candles above them.
// Everything is clipped to the plot area; level labels are spread so they never
// overlap and never leave the plot (levels.spreadLabels).

import { COLORS, toEpochSeconds } from './chart_base.js';
import { formatPrice } from './format.js';
import { effectiveStop, spreadLabels, targetsOf } from './levels.js';

const VOLUME_SHARE = 0.18; // of the plot height, at the bottom

function clip(u) {
  const { left, top, width, height } = u.bbox;
  u.ctx.save();
  u.ctx.beginPath();
  u.ctx.rect(left, top, width, height);
  u.ctx.clip();
}

function visibleRange(u) {
  const xs = u.data[0];
  return [u.series[0].idxs?.[0] ?? 0, u.series[0].idxs?.[1] ?? xs.length - 1];
}

function candleWidth(u) {
  const xs = u.data[0];
  const span = xs.length > 1 ? Math.abs(u.valToPos(xs[1], 'x', true) - u.valToPos(xs[0], 'x', true)) : u.bbox.width / 2;
  return Math.max(1, Math.min(18 * devicePixelRatio, span * 0.68));
}

export function drawVolume(u, volumes) {
  const xs = u.data[0];
  if (!xs?.length || !volumes?.length) return;
  const [i0, i1] = visibleRange(u);
  let max = 0;
  for (let i = i0; i <= i1; i += 1) if (volumes[i] > max) max = volumes[i];
  if (!(max > 0)) return;
  const { top, height } = u.bbox;
  const base = top + height;
  const w = candleWidth(u);
  const { ctx } = u;
  clip(u);
  ctx.globalAlpha = 0.28;
  for (let i = i0; i <= i1; i += 1) {
    const h = (volumes[i] / max) * height * VOLUME_SHARE;
    if (!(h > 0)) continue;
    ctx.fillStyle = u.data[4][i] >= u.data[1][i] ? COLORS.up : COLORS.down;
    const x = Math.round(u.valToPos(xs[i], 'x', true) - w / 2);
    ctx.fillRect(x, base - h, Math.round(w), h);
  }
  ctx.restore();
}

export function drawCandles(u) {
  const [xs, opens, highs, lows, closes] = u.data;
  if (!xs || xs.length === 0) return;
  const { ctx } = u;
  const [i0, i1] = visibleRange(u);
  const bodyWidth = candleWidth(u);
  clip(u);
  for (let i = i0; i <= i1; i += 1) {
    const x = Math.round(u.valToPos(xs[i], 'x', true));
    const yO = u.valToPos(opens[i], 'y', true);
    const yC = u.valToPos(closes[i], 'y', true);
    const color = closes[i] >= opens[i] ? COLORS.up : COLORS.down;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    ctx.beginPath();
    ctx.moveTo(x + 0.5, u.valToPos(highs[i], 'y', true));
    ctx.lineTo(x + 0.5, u.valToPos(lows[i], 'y', true));
    ctx.stroke();
    ctx.fillRect(Math.round(x - bodyWidth / 2), Math.min(yO, yC), Math.round(bodyWidth), Math.max(1, Math.abs(yC - yO)));
  }
  ctx.restore();
}

/** [{price, color, label, dash, alpha}] for a signal: targets, entry, stops. */
export function levelLines(signal) {
  if (!signal) return [];
  const lines = [];
  const targets = targetsOf(signal);
  for (const t of targets) {
    const hit = t.status === 'tp_hit';
    const name = targets.length > 1 ? `TP${t.index}` : 'TP';
    lines.push({ price: Number(t.price), text: `${name} ${formatPrice(t.price)}${hit ? ' ✓' : ''}`,
      color: COLORS.up, dash: true, alpha: hit ? 0.45 : 0.8, kind: 'target' });
  }
  lines.push({ price: Number(signal.entry_price), text: `Entry ${formatPrice(signal.entry_price)}`,
    color: COLORS.entry, dash: true, alpha: 0.8, kind: 'entry' });
  const stop = effectiveStop(signal);
  if (stop && stop !== signal.stop_loss) {
    lines.push({ price: Number(signal.stop_loss), text: `SL was ${formatPrice(signal.stop_loss)}`,
      color: COLORS.down, dash: true, alpha: 0.35, kind: 'original-stop' });
    lines.push({ price: Number(stop), text: `SL ${formatPrice(stop)}`, color: COLORS.down, dash: false, alpha: 0.9, kind: 'stop' });
  } else {
    lines.push({ price: Number(signal.stop_loss), text: `SL ${formatPrice(signal.stop_loss)}`,
      color: COLORS.down, dash: true, alpha: 0.8, kind: 'stop' });
  }
  return lines.filter((l) => Number.isFinite(l.price));
}

/** Dashed/solid level lines across the plot with labels that never overlap. */
export function drawLevels(u, lines) {
  if (!lines.length || !u.data[0]?.length) return [];
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const dpr = devicePixelRatio;
  ctx.save();
  ctx.font = `600 ${10 * dpr}px system-ui, sans-serif`;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  const h = 15 * dpr;
  const ys = lines.map((l) => Math.round(u.valToPos(l.price, 'y', true)) + 0.5);
  const labelYs = spreadLabels(ys, h, top, top + height, 2 * dpr);
  lines.forEach((line, i) => {
    const y = ys[i];
    if (y >= top && y <= top + height) {
      ctx.strokeStyle = line.color;
      ctx.globalAlpha = line.alpha;
      ctx.lineWidth = (line.dash ? 1 : 1.5) * dpr;
      ctx.setLineDash(line.dash ? [4 * dpr, 4 * dpr] : []);
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
    }
    ctx.globalAlpha = Math.max(line.alpha, 0.6);
    ctx.setLineDash([]);
    const w = ctx.measureText(line.text).width + 8 * dpr;
    const ly = labelYs[i];
    ctx.fillStyle = COLORS.bg;
    ctx.fillRect(left + 4 * dpr, ly - h / 2, w, h);
    ctx.strokeStyle = line.color;
    ctx.lineWidth = dpr;
    ctx.strokeRect(left + 4 * dpr + 0.5, ly - h / 2 + 0.5, w - 1, h - 1);
    ctx.fillStyle = line.color;
    ctx.fillText(line.text, left + 8 * dpr, ly + 0.5 * dpr);
  });
  ctx.restore();
  // Label boxes in CSS pixels, for tests and hit-checks.
  return lines.map((line, i) => ({ kind: line.kind, text: line.text, y: labelYs[i] / dpr, h: h / dpr, top: top / dpr,
    bottom: (top + height) / dpr }));
}

function triangle(ctx, x, y, size, up) {
  ctx.beginPath();
  if (up) {
    ctx.moveTo(x, y - size); ctx.lineTo(x - size, y + size * 0.8); ctx.lineTo(x + size, y + size * 0.8);
  } else {
    ctx.moveTo(x, y + size); ctx.lineTo(x - size, y - size * 0.8); ctx.lineTo(x + size, y - size * 0.8);
  }
  ctx.closePath();
}

const EXIT_COLORS = { tp_hit: COLORS.up, sl_hit: COLORS.down };

/**
 * Entry triangles for every signal in view; for closed ones an exit marker at
 * (closed_at, exit_price); for the focused one also its legs' exits and a ring.
 * Returns the markers drawn, in CSS pixels (tests read them).
 */
export function drawMarkers(u, signals, focusedId, stepSeconds = 60) {
  const xs = u.data[0];
  if (!xs?.length || !signals.length) return [];
  const { ctx } = u;
  const dpr = devicePixelRatio;
  const xMin = u.scales.x.min; const xMax = u.scales.x.max;
  // A time inside the newest candle (which opened at xMax) belongs to that candle.
  const inView = (t) => t !== null && t >= xMin && t < xMax + stepSeconds;
  const xOf = (t) => u.valToPos(Math.min(t, xMax), 'x', true);
  const drawn = [];
  clip(u);
  for (const s of signals) {
    const t = toEpochSeconds(s.created_at);
    const focused = s.id === focusedId;
    if (inView(t)) {
      const x = xOf(t);
      const y = u.valToPos(Number(s.entry_price), 'y', true);
      const up = s.direction === 'long';
      ctx.fillStyle = up ? COLORS.up : COLORS.down;
      ctx.strokeStyle = COLORS.bg;
      ctx.lineWidth = 1.5 * dpr;
      triangle(ctx, x, y, (focused ? 8 : 6) * dpr, up);
      ctx.fill();
      ctx.stroke();
      if (focused) {
        ctx.strokeStyle = COLORS.text;
        ctx.lineWidth = dpr;
        ctx.beginPath();
        ctx.arc(x, y, 12 * dpr, 0, 2 * Math.PI);
        ctx.stroke();
      }
      drawn.push({ kind: 'entry', id: s.id, x: x / dpr, y: y / dpr });
    }
    const exits = [];
    const o = s.outcome || {};
    if (o.status && o.status !== 'open' && o.closed_at && o.exit_price !== null && o.exit_price !== undefined) {
      exits.push({ kind: 'exit', t: toEpochSeconds(o.closed_at), price: Number(o.exit_price), status: o.status });
    }
    if (focused) {
      for (const leg of o.legs || []) {
        if (leg.closed_at && leg.exit_price !== null && leg.exit_price !== undefined) {
          exits.push({ kind: 'leg', t: toEpochSeconds(leg.closed_at), price: Number(leg.exit_price), status: leg.status });
        }
      }
    }
    for (const e of exits) {
      if (!inView(e.t) || !Number.isFinite(e.price)) continue;
      const x = xOf(e.t);
      const y = u.valToPos(e.price, 'y', true);
      ctx.fillStyle = EXIT_COLORS[e.status] || COLORS.axis;
      ctx.strokeStyle = COLORS.bg;
      ctx.lineWidth = 1.5 * dpr;
      ctx.beginPath();
      if (e.kind === 'leg') {
        const r = 4.5 * dpr;
        ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y); ctx.closePath();
      } else {
        ctx.arc(x, y, 5.5 * dpr, 0, 2 * Math.PI);
      }
      ctx.fill();
      ctx.stroke();
      drawn.push({ kind: e.kind, id: s.id, status: e.status, x: x / dpr, y: y / dpr });
    }
  }
  ctx.restore();
  return drawn;
}

/**
 * Horizontal guide lines across a pane, [{value, color, dash, alpha, fill}], on
 * the y scale `scale`; a `band` {from, to, color} is shaded between two values
 * first (RSI's 30-70 zone).
 */
export function drawGuides(u, scale, lines, band = null) {
  if (!u.data[0]?.length) return;
  const { ctx } = u;
  const { left, width } = u.bbox;
  const dpr = devicePixelRatio;
  clip(u);
  if (band) {
    const y0 = u.valToPos(band.from, scale, true);
    const y1 = u.valToPos(band.to, scale, true);
    ctx.fillStyle = band.color;
    ctx.fillRect(left, Math.min(y0, y1), width, Math.abs(y1 - y0));
  }
  for (const line of lines) {
    const y = Math.round(u.valToPos(line.value, scale, true)) + 0.5;
    ctx.strokeStyle = line.color;
    ctx.globalAlpha = line.alpha ?? 1;
    ctx.lineWidth = dpr;
    ctx.setLineDash(line.dash ? [3 * dpr, 3 * dpr] : []);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
  }
  ctx.restore();
}

/**
 * MACD histogram bars from zero, green above and red below; a bar shrinking
 * towards zero is paler, so momentum fading shows before the lines cross.
 */
export function drawHistogram(u, values, scale) {
  const xs = u.data[0];
  if (!xs?.length || !values?.length) return;
  const [i0, i1] = visibleRange(u);
  const w = candleWidth(u);
  const zero = u.valToPos(0, scale, true);
  const { ctx } = u;
  clip(u);
  for (let i = i0; i <= i1; i += 1) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    const prev = values[i - 1];
    const fading = prev !== null && prev !== undefined && Math.abs(v) < Math.abs(prev);
    ctx.fillStyle = v >= 0 ? COLORS.up : COLORS.down;
    ctx.globalAlpha = fading ? 0.4 : 0.8;
    const y = u.valToPos(v, scale, true);
    const x = Math.round(u.valToPos(xs[i], 'x', true) - w / 2);
    ctx.fillRect(x, Math.min(y, zero), Math.round(w), Math.max(1, Math.abs(zero - y)));
  }
  ctx.restore();
}
