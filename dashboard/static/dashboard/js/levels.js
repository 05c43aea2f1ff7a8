// A signal's price levels and the trader's figures built from them (pure: no DOM).
// Fields the server may not send yet (targets, effective_stop, legs) fall back to
// the original contract's single take-profit and fixed stop.

const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));

/** [{price, portion, index, status}] in ladder order; one target when absent. */
export function targetsOf(signal) {
  const legs = signal?.outcome?.legs || [];
  const raw = Array.isArray(signal?.targets) && signal.targets.length
    ? signal.targets : [{ price: signal?.take_profit, portion: '1' }];
  return raw.map((t, i) => ({
    price: String(t.price),
    portion: Number(t.portion),
    index: i + 1,
    status: legs[i]?.status || 'open',
  })).filter((t) => Number.isFinite(num(t.price)));
}

/** The stop in force now, as a string: the server's figure, else the original. */
export function effectiveStop(signal) {
  const stop = signal?.effective_stop ?? signal?.outcome?.stop_price ?? signal?.stop_loss;
  return stop === null || stop === undefined ? '' : String(stop);
}

/** Risk per unit: entry to the original stop (what R is measured against). */
function risk(signal) {
  const entry = num(signal?.entry_price);
  const stop = num(signal?.stop_loss);
  const r = signal?.direction === 'short' ? stop - entry : entry - stop;
  return Number.isFinite(r) && r > 0 ? r : NaN;
}

/** Reward to risk of the final target (take_profit is always the last one). */
export function rewardRisk(signal) {
  const entry = num(signal?.entry_price);
  const tp = num(signal?.take_profit);
  const reward = signal?.direction === 'short' ? entry - tp : tp - entry;
  const value = reward / risk(signal);
  return Number.isFinite(value) ? value : null;
}

/** R the position would make if closed at `price` now (against the original stop). */
export function unrealizedR(signal, price) {
  const p = num(price);
  const entry = num(signal?.entry_price);
  const move = signal?.direction === 'short' ? entry - p : p - entry;
  const value = move / risk(signal);
  return Number.isFinite(value) ? value : null;
}

/** Signed distance from the entry to `price`, in percent of the entry. */
export function distancePct(signal, price) {
  const p = num(price);
  const entry = num(signal?.entry_price);
  const value = ((p - entry) / entry) * 100;
  return Number.isFinite(value) && entry !== 0 ? value : null;
}

export function isOpen(signal) {
  return (signal?.outcome?.status || 'open') === 'open';
}

/**
 * Vertical positions for labels that must not overlap and must stay inside
 * [top, bottom]. `wanted` are the label centres (the price lines), `height` each
 * label's height. Returns centres in the same order as `wanted`. When there is not
 * room for all of them the labels are spread evenly over the space.
 */
export function spreadLabels(wanted, height, top, bottom, gap = 2) {
  const n = wanted.length;
  if (n === 0) return [];
  const step = height + gap;
  const lo = top + height / 2;
  const hi = bottom - height / 2;
  const order = wanted.map((y, i) => [y, i]).sort((a, b) => a[0] - b[0]);
  if ((n - 1) * step > hi - lo) {
    const even = n === 1 ? 0 : (hi - lo) / (n - 1);
    const out = new Array(n);
    order.forEach(([, i], k) => { out[i] = lo + k * even; });
    return out;
  }
  const ys = order.map(([y]) => Math.min(hi, Math.max(lo, y)));
  for (let k = 1; k < n; k += 1) ys[k] = Math.max(ys[k], ys[k - 1] + step);   // push down
  if (ys[n - 1] > hi) {
    ys[n - 1] = hi;
    for (let k = n - 2; k >= 0; k -= 1) ys[k] = Math.min(ys[k], ys[k + 1] - step); // then up
  }
  const out = new Array(n);
  order.forEach(([, i], k) => { out[i] = ys[k]; });
  return out;
}
