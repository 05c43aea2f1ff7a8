// Display rules shared with the server-rendered rows
// (dashboard/templatetags/dashboard_format.py): keep the two in step.

const OUTCOME_LABELS = {
  open: 'Open', tp_hit: 'TP hit', sl_hit: 'SL hit', expired: 'Expired', closed: 'Closed', cancelled: 'Cancelled',
};

/** 'just now', '12s ago', '5m ago', '3h ago', '2d ago'. */
export function compactAge(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 2) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** 'in 5m', 'in 3h', 'in 2d', or 'passed' for an expiry time. */
export function untilLabel(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const seconds = (t - now) / 1000;
  if (seconds <= 0) return 'passed';
  return `in ${compactAge(seconds).replace(' ago', '').replace('just now', '1s')}`;
}

/** '+1.25R' / '-0.5R' (two decimals at most), '' for null. */
export function formatR(value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '';
  const r = Math.round(Number(value) * 100) / 100;
  return `${r > 0 ? '+' : ''}${r}R`;
}

/** 'Open', 'TP hit +2R', 'SL hit -1R', 'Expired'. */
export function outcomeLabel(outcome) {
  if (!outcome) return 'Open';
  let label = OUTCOME_LABELS[outcome.status] ?? String(outcome.status ?? '');
  const r = outcome.r_multiple;
  if (outcome.status !== 'open' && r !== null && r !== undefined && r !== '') {
    const value = Math.round(Number(r) * 100) / 100;
    if (Number.isFinite(value)) label += ` ${value > 0 ? '+' : ''}${value}R`;
  }
  return label;
}

/** '2024-05-01 12:00:00 UTC' from an ISO string. */
export function utcStamp(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export function capitalise(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : '';
}

/** A price string for headers: keeps the API's precision, groups thousands. */
export function formatPrice(value) {
  if (value === null || value === undefined || value === '') return '';
  const text = String(value);
  const [whole, frac] = text.split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac ? `${grouped}.${frac}` : grouped;
}
