// Shared pieces of the dashboard charts: palette, axis style, time parsing and
// sizing. uPlot (vendored, MIT) does axes, scales and the cursor.

export const COLORS = {
  up: '#3fb950', down: '#f85149', axis: '#8b949e', grid: 'rgba(240,246,252,0.06)',
  entry: '#58a6ff', text: '#c9d1d9', bg: '#161b22',
};

export const LEGEND_SPACE = 30; // px under the price plot for uPlot's hover legend

// The price chart and the oscillator panes under it share one time axis: the same
// width, the same y-axis width on the left and the same padding on the right
// (uPlot's automatic padding depends on which axes a plot shows, and the panes
// show no time labels), so a candle and its RSI sit on one vertical line.
export const Y_AXIS_SIZE = 70;
export const PAD_RIGHT = 24;
// uPlot cursor-sync group: hovering any of them moves the cursor in all.
export const CURSOR_SYNC = 'price-chart';

export const AXIS = {
  stroke: COLORS.axis,
  grid: { stroke: COLORS.grid, width: 1 },
  ticks: { stroke: COLORS.grid, width: 1 },
  font: '11px system-ui, -apple-system, "Segoe UI", sans-serif',
};

/** Seconds since the epoch from an ISO string or epoch seconds/milliseconds. */
export function toEpochSeconds(value) {
  if (typeof value === 'number') return value > 1e11 ? value / 1000 : value;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : parsed / 1000;
}

/** Plot size for a container; `reserve` leaves room under the plot for the legend. */
export function sizeOf(el, fallbackHeight, reserve = 0) {
  const rect = el.getBoundingClientRect();
  const height = (Math.floor(rect.height) || fallbackHeight) - reserve;
  return { width: Math.max(200, Math.floor(rect.width)), height: Math.max(100, height) };
}

export function observeResize(el, plotGetter, fallbackHeight, reserve = 0) {
  if (typeof ResizeObserver === 'undefined') return;
  let frame = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      const plot = plotGetter();
      if (plot) plot.setSize(sizeOf(el, fallbackHeight, reserve));
    });
  }).observe(el);
}
