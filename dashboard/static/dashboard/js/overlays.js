// Indicators for the price chart, computed here from the candles on screen (pure):
// the overlay lines a symbol's strategies look at, and the RSI and MACD of the
// panes under the chart. Series are aligned with the candles; null until the
// indicator has warmed up. Each repeats pipeline.indicators' seeding and
// arithmetic (the order of operations included), so the numbers on screen are the
// ones the strategies decided on: EMA seeds with the SMA of its first `period`
// values, Bollinger uses the population deviation, RSI uses Wilder's smoothing
// seeded by plain means, MACD seeds its fast EMA where the slow one starts.

export function sma(values, period) {
  const out = new Array(values.length).fill(null);
  let sum = 0;
  for (let i = 0; i < values.length; i += 1) {
    sum += values[i];
    if (i >= period) sum -= values[i - period];
    if (i >= period - 1) out[i] = sum / period;
  }
  return out;
}

/** EMA of `values` from index `start` on (earlier entries null), k = 2 / (period + 1). */
function emaFrom(values, period, start = 0) {
  const out = new Array(values.length).fill(null);
  if (values.length - start < period) return out;
  const k = 2 / (period + 1);
  let total = 0;
  for (let i = start; i < start + period; i += 1) total += values[i];
  let value = total / period;
  out[start + period - 1] = value;
  for (let i = start + period; i < values.length; i += 1) {
    // pipeline.indicators.EMA's form, not alpha*x + (1-alpha)*v: the same bits.
    value = (values[i] - value) * k + value;
    out[i] = value;
  }
  return out;
}

export function ema(values, period) {
  return emaFrom(values, period);
}

export function bollinger(values, period, k) {
  const mid = sma(values, period);
  const upper = new Array(values.length).fill(null);
  const lower = new Array(values.length).fill(null);
  for (let i = period - 1; i < values.length; i += 1) {
    let sq = 0;
    for (let j = i - period + 1; j <= i; j += 1) sq += (values[j] - mid[i]) ** 2;
    const sd = Math.sqrt(sq / period);
    upper[i] = mid[i] + k * sd;
    lower[i] = mid[i] - k * sd;
  }
  return { upper, mid, lower };
}

// TA-Lib (and so pipeline.indicators) calls gains + losses within this of zero
// "no movement" and answers RSI 0.
const NO_MOVEMENT = 1e-8;

/** Candles needed before the first value: RSI needs `period` changes. */
export function rsiWarmup(period = 14) {
  return period + 1;
}

/**
 * RSI with Wilder's smoothing: the first average gain and loss are plain means of
 * `period` changes, then avg = (avg * (period - 1) + x) / period.
 */
export function rsi(values, period = 14) {
  const out = new Array(values.length).fill(null);
  let gain = 0;
  let loss = 0;
  for (let i = 1; i < values.length; i += 1) {
    const change = values[i] - values[i - 1];
    const up = change > 0 ? change : 0;
    const down = change > 0 ? 0 : -change;
    if (i < period) {
      gain += up;
      loss += down;
      continue;
    }
    if (i === period) {
      gain = (gain + up) / period;
      loss = (loss + down) / period;
    } else {
      gain = (gain * (period - 1) + up) / period;
      loss = (loss * (period - 1) + down) / period;
    }
    const total = gain + loss;
    out[i] = total > -NO_MOVEMENT && total < NO_MOVEMENT ? 0 : 100 * (gain / total);
  }
  return out;
}

/** Candles needed before the first MACD value (all three parts start together). */
export function macdWarmup(fast = 12, slow = 26, signal = 9) {
  return Math.max(fast, slow) + signal - 1;
}

/**
 * MACD(fast, slow, signal) -> {macd, signal, hist}. As pipeline.indicators.MACD
 * (TA-Lib's rule): the slow EMA seeds with the SMA of the first `slow` values, the
 * fast EMA with the mean of the `fast` values ending there (not from the first
 * value), and the signal line is an EMA of the MACD line seeded by its first
 * `signal` values. All three are null until the signal line exists.
 */
export function macd(values, fast = 12, slow = 26, signal = 9) {
  if (slow < fast) [fast, slow] = [slow, fast]; // TA-Lib swaps them too
  const n = values.length;
  const out = { macd: new Array(n).fill(null), signal: new Array(n).fill(null), hist: new Array(n).fill(null) };
  const slowLine = emaFrom(values, slow);
  const fastLine = emaFrom(values, fast, slow - fast);
  const line = slowLine.map((s, i) => (s === null ? null : fastLine[i] - s));
  const signalLine = emaFrom(line, signal, slow - 1);
  for (let i = 0; i < n; i += 1) {
    if (signalLine[i] === null) continue;
    out.macd[i] = line[i];
    out.signal[i] = signalLine[i];
    out.hist[i] = line[i] - signalLine[i];
  }
  return out;
}

const PALETTE = ['#d2a8ff', '#ffa657', '#79c0ff', '#56d4dd'];

/**
 * Overlay lines for one strategy config {strategy, params}: [{label, values}].
 * Oscillators (RSI) have no line on the price scale and give none: the RSI and
 * MACD panes under the chart show them.
 */
export function overlayLines(config, closes) {
  const p = config?.params || {};
  const int = (v, d) => (Number.isInteger(Number(v)) && Number(v) > 0 ? Number(v) : d);
  switch (config?.strategy) {
    case 'ema_crossover':
    case 'macd_cross': {
      const fast = int(p.fast, config.strategy === 'macd_cross' ? 12 : 9);
      const slow = int(p.slow, config.strategy === 'macd_cross' ? 26 : 21);
      return [{ label: `EMA ${fast}`, values: ema(closes, fast) }, { label: `EMA ${slow}`, values: ema(closes, slow) }];
    }
    case 'bollinger_breakout': {
      const period = int(p.period, 20);
      const k = Number.isFinite(Number(p.k)) ? Number(p.k) : 2;
      const bands = bollinger(closes, period, k);
      return [
        { label: `BB ${period} upper`, values: bands.upper, group: 'bb' },
        { label: `BB ${period} mid`, values: bands.mid, group: 'bb' },
        { label: `BB ${period} lower`, values: bands.lower, group: 'bb' },
      ];
    }
    default:
      return [];
  }
}

/** Lines of several configs without repeats (two configs with EMA 21 draw it once), coloured. */
export function overlaysFor(configs, closes) {
  const seen = new Map();
  for (const config of configs) {
    for (const line of overlayLines(config, closes)) if (!seen.has(line.label)) seen.set(line.label, line);
  }
  let colour = 0;
  const groupColour = {};
  return [...seen.values()].map((line) => {
    let stroke;
    if (line.group) {
      if (!(line.group in groupColour)) { groupColour[line.group] = PALETTE[colour % PALETTE.length]; colour += 1; }
      stroke = groupColour[line.group];
    } else {
      stroke = PALETTE[colour % PALETTE.length];
      colour += 1;
    }
    return { ...line, stroke };
  });
}
