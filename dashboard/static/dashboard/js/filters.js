// The feed's filters on the client: read from and written to the filter form, and
// applied to live frames. The server applies the same filters to the snapshot,
// the history pages and the export (dashboard/forms.py); the stream itself only
// filters by symbol and market, so the rest is checked here for live arrivals.

export const FILTER_NAMES = ['market', 'symbol', 'source', 'direction', 'outcome', 'min_confidence', 'date_from', 'date_to'];

const DAY_MS = 86400000;

/** {name: value} for every filter with a value. */
export function readFilters(form) {
  const out = {};
  for (const name of FILTER_NAMES) {
    const field = form.elements.namedItem(name);
    const value = field ? String(field.value || '').trim() : '';
    if (value) out[name] = value;
  }
  return out;
}

export function clearFilters(form) {
  for (const name of FILTER_NAMES) {
    const field = form.elements.namedItem(name);
    if (field) field.value = '';
  }
}

/** Whether a signal (a live arrival) belongs in the filtered view. */
export function matchesFilters(signal, filters) {
  if (filters.symbol && signal.symbol !== filters.symbol) return false;
  if (filters.market && signal.market !== filters.market) return false;
  if (filters.source && signal.source !== filters.source) return false;
  if (filters.direction && signal.direction !== filters.direction) return false;
  if (filters.outcome && (signal.outcome?.status || 'open') !== filters.outcome) return false;
  if (filters.min_confidence && Number(signal.confidence) < Number(filters.min_confidence)) return false;
  const t = Date.parse(signal.created_at);
  if (filters.date_from && !(t >= Date.parse(`${filters.date_from}T00:00:00Z`))) return false;
  if (filters.date_to && !(t < Date.parse(`${filters.date_to}T00:00:00Z`) + DAY_MS)) return false;
  return true;
}
