// The RSI and MACD panes under the price chart. They show the candles the price
// chart shows: it hands them over after each fetch and merge, so the panes never
// fetch and follow the live candle as it forms. One time axis for all three (same
// width, y-axis width and right padding, and the price chart's zoom), one cursor
// (uPlot cursor sync). RSI(14) with its 30/70 guides and MACD(12, 26, 9) with the
// signal line and the histogram, computed by overlays.js exactly as
// pipeline.indicators computes them, so they read what the strategies read. A pane
// with too few candles says so rather than drawing a line out of nothing. Which
// panes show is a choice of this browser, kept by prefs.js.
//
// The markup is built here, not in the page template: without the script there is
// no price chart for the panes to sit under.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { AXIS, COLORS, CURSOR_SYNC, PAD_RIGHT, Y_AXIS_SIZE } from './chart_base.js';
import { drawGuides, drawHistogram } from './chart_draw.js';
import { macd, macdWarmup, rsi, rsiWarmup } from './overlays.js';
import { switchPref, switchPrefSet } from './prefs.js';

// A fixed plot height, and the pane as tall as plot and legend: in a narrow window
// the legend wraps onto a second line and the pane grows instead of cutting it.
const PLOT_HEIGHT = 100; // px
const RSI_PERIOD = 14;
const [MACD_FAST, MACD_SLOW, MACD_SIGNAL] = [12, 26, 9];

/** Decimals that show an axis step of `incr` (0.2 -> 1, 5 -> 0, 0.00002 -> 5). */
function decimalsFor(incr) {
  if (!(incr > 0)) return 2;
  return Math.min(10, Math.max(0, -Math.floor(Math.log10(incr) + 1e-9)));
}

/**
 * An oscillator reading for a legend: four significant digits and at least two
 * decimals, thousands grouped (RSI 56.23; MACD 12.35 on BTC, 0.0001234 on EURUSD);
 * '—' when there is none.
 */
export function formatOscillator(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  if (value === 0) return '0.00';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.min(10, Math.max(2, 3 - magnitude));
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function plotWidth(el) {
  return Math.max(200, Math.floor(el.getBoundingClientRect().width));
}

function newest(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

/** Legend value: the one under the cursor, else the newest (what a trader reads at a glance). */
function legendValue(u, value, sidx, idx) {
  return formatOscillator(idx === null || idx === undefined ? newest(u.data[sidx]) : value);
}

const PANES = [
  {
    name: 'rsi',
    toggle: 'RSI',
    title: `RSI (${RSI_PERIOD})`,
    warmup: rsiWarmup(RSI_PERIOD),
    scale: 'rsi',
    compute: (closes) => [rsi(closes, RSI_PERIOD)],
    series: [{ label: `RSI ${RSI_PERIOD}`, stroke: '#d2a8ff', width: 1.5 }],
    range: () => [0, 100],
    axis: { splits: () => [30, 50, 70], values: (u, splits) => splits.map(String), grid: { show: false } },
    underlay: (u) => drawGuides(u, 'rsi', [
      { value: 70, color: COLORS.down, dash: true, alpha: 0.7 },
      { value: 50, color: COLORS.axis, dash: true, alpha: 0.3 },
      { value: 30, color: COLORS.up, dash: true, alpha: 0.7 },
    ], { from: 30, to: 70, color: 'rgba(210, 168, 255, 0.05)' }),
  },
  {
    name: 'macd',
    toggle: 'MACD',
    title: `MACD (${MACD_FAST}, ${MACD_SLOW}, ${MACD_SIGNAL})`,
    warmup: macdWarmup(MACD_FAST, MACD_SLOW, MACD_SIGNAL),
    scale: 'macd',
    compute: (closes) => {
      const m = macd(closes, MACD_FAST, MACD_SLOW, MACD_SIGNAL);
      return [m.macd, m.signal, m.hist];
    },
    series: [
      { label: 'MACD', stroke: COLORS.entry, width: 1.5 },
      { label: 'Signal', stroke: '#ffa657', width: 1.25 },
      // Drawn as bars by the underlay; a series so the legend reads it and the
      // y range includes it.
      { label: 'Histogram', stroke: COLORS.axis, width: 1, paths: () => null },
    ],
    range: (u, min, max) => {
      if (!Number.isFinite(min) || !Number.isFinite(max)) return [-1, 1];
      // Zero always in view: the histogram grows from it and the lines cross it.
      const lo = Math.min(min, 0); const hi = Math.max(max, 0);
      const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
      return [lo - pad, hi + pad];
    },
    axis: {
      space: 20, // a 100 px pane: uPlot's 30 px between labels often leaves only the 0
      values: (u, splits, axisIdx, space, incr) => splits.map((v) => v.toLocaleString('en-US', {
        minimumFractionDigits: decimalsFor(incr), maximumFractionDigits: decimalsFor(incr) })),
    },
    underlay: (u) => {
      drawGuides(u, 'macd', [{ value: 0, color: COLORS.axis, alpha: 0.35 }]);
      drawHistogram(u, u.data[3], 'macd');
    },
  },
];

export class OscillatorPanes {
  /**
   * @param {object} args {host: the price chart's box (the panes go after it),
   *   controls: the chart's controls (the toggles go after them),
   *   xRange() -> the price chart's [min, max] time range or null}
   */
  constructor({ host, controls, xRange = () => null }) {
    this.xRange = xRange;
    this.times = [];
    this.closes = [];
    this.context = '';
    this.waiting = 'Loading…';
    this.root = document.createElement('div');
    this.root.className = 'osc-panes';
    const toggles = document.createElement('div');
    toggles.className = 'pane-toggles';
    toggles.setAttribute('role', 'group');
    toggles.setAttribute('aria-label', 'Indicator panes under the chart');
    this.panes = {};
    for (const spec of PANES) {
      const pane = this._build(spec);
      this.panes[spec.name] = pane;
      this.root.append(pane.section);
      toggles.append(pane.toggleLabel);
    }
    host.after(this.root);
    controls.after(toggles);
  }

  show(name, on) {
    const pane = this.panes[name];
    pane.shown = on;
    pane.input.checked = on;
    pane.section.hidden = !on;
    switchPrefSet(`signals.pane.${name}`, on);
    this._draw(pane);
  }

  /** The candles on the price chart (its time and close columns), after each change. */
  update(times, closes, context) {
    this.times = times;
    this.closes = closes;
    this.context = context || '';
    for (const pane of Object.values(this.panes)) this._draw(pane);
  }

  /** The price chart has no candles to show (loading, none, unavailable). */
  clear(text) {
    this.waiting = text;
    this.update([], [], this.context);
  }

  /** Follow the price chart's time range (its drag-zoom). */
  setX(min, max) {
    for (const pane of Object.values(this.panes)) {
      const x = pane.plot?.scales.x;
      if (x && (x.min !== min || x.max !== max)) pane.plot.setScale('x', { min, max });
    }
  }

  _build(spec) {
    const section = document.createElement('section');
    section.className = 'osc-pane';
    section.dataset.pane = spec.name;
    section.setAttribute('role', 'group');
    section.setAttribute('aria-label', `${spec.title} pane`);
    const el = document.createElement('div');
    el.className = 'chart osc-chart';
    const placeholder = document.createElement('p');
    placeholder.className = 'osc-placeholder';
    placeholder.setAttribute('role', 'status');
    placeholder.textContent = `${spec.title}: ${this.waiting}`;
    section.append(el, placeholder);

    const label = document.createElement('label');
    label.className = 'pane-toggle';
    label.title = `Show the ${spec.title} pane under the chart`;
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.id = `pane-toggle-${spec.name}`;
    label.append(input, ` ${spec.toggle}`);
    input.addEventListener('change', () => this.show(spec.name, input.checked));

    // On unless this browser turned it off.
    const pane = { spec, section, el, placeholder, input, toggleLabel: label, plot: null,
      shown: switchPref(`signals.pane.${spec.name}`, true) };
    input.checked = pane.shown;
    section.hidden = !pane.shown;
    // Width only: the price chart's box sets it (same padding), the height is fixed.
    if (typeof ResizeObserver !== 'undefined') {
      let frame = 0;
      new ResizeObserver(() => {
        cancelAnimationFrame(frame);
        frame = requestAnimationFrame(() => {
          const width = plotWidth(el);
          if (pane.plot && pane.plot.width !== width) pane.plot.setSize({ width, height: PLOT_HEIGHT });
        });
      }).observe(el);
    }
    return pane;
  }

  _destroy(pane) {
    if (pane.plot) pane.plot.destroy();
    pane.plot = null;
  }

  _draw(pane) {
    if (!pane.shown) {
      this._destroy(pane);
      return;
    }
    const n = this.closes.length;
    const { spec } = pane;
    // The legend under the plot is text: the values are read from there.
    pane.section.setAttribute('aria-label', this.context ? `${spec.title} of ${this.context}` : `${spec.title} pane`);
    if (n < spec.warmup) {
      this._destroy(pane);
      pane.el.replaceChildren();
      const text = n === 0
        ? `${spec.title}: ${this.waiting}`
        : `Not enough candles for ${spec.title}: the chart has ${n}, it needs ${spec.warmup}.`;
      // A status region: rewriting the same words every refresh would be read out again.
      if (pane.placeholder.textContent !== text) pane.placeholder.textContent = text;
      pane.placeholder.hidden = false;
      pane.section.dataset.state = 'waiting';
      return;
    }
    pane.placeholder.hidden = true;
    pane.section.dataset.state = 'chart';
    const data = [this.times, ...spec.compute(this.closes)];
    if (pane.plot) pane.plot.setData(data);
    else this._create(pane, data);
    const range = this.xRange();
    if (range) this.setX(...range);
  }

  _create(pane, data) {
    const { spec } = pane;
    const opts = {
      width: plotWidth(pane.el),
      height: PLOT_HEIGHT,
      padding: [8, PAD_RIGHT, 4, 0],
      legend: { show: true, live: true },
      cursor: { sync: { key: CURSOR_SYNC }, drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: true }, [spec.scale]: { range: spec.range } },
      axes: [
        // The time labels are the price chart's; this axis only draws the grid
        // at the same times.
        { ...AXIS, size: 0, ticks: { show: false }, values: (u, splits) => splits.map(() => '') },
        { ...AXIS, scale: spec.scale, size: Y_AXIS_SIZE, ...spec.axis },
      ],
      series: [
        {},
        ...spec.series.map((s) => ({ scale: spec.scale, points: { show: false }, value: legendValue, ...s })),
      ],
      hooks: { drawAxes: [(u) => spec.underlay(u)] },
    };
    pane.el.replaceChildren();
    pane.plot = new uPlot(opts, data, pane.el);
  }
}
