// Indicator overlays for the price chart: the lines a symbol's strategies look at,
// computed here from the candles on screen (pure). Series are aligned with the
// candles; null until the indicator has warmed up. EMA seeds with the SMA of its
// first `period` values, Bollinger uses the population deviation, as
// pipeline.indicators does.

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

export function ema(values, period) {
  const out = new Array(values.length).fill(null);
  if (values.length < period) return out;
  const alpha = 2 / (period + 1);
  let value = values.slice(0, period).reduce((a, b) => a + b, 0) / period;
  out[period - 1] = value;
  for (let i = period; i < values.length; i += 1) {
    value = alpha * values[i] + (1 - alpha) * value;
    out[i] = value;
  }
  return out;
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

const PALETTE = ['#d2a8ff', '#ffa657', '#79c0ff', '#56d4dd'];

/**
 * Overlay lines for one strategy config {strategy, params}: [{label, values}].
 * Oscillators (RSI) have no line on the price scale and give none.
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
