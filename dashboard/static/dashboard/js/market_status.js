// Feed status per market, in the health panel: session open or closed, the
// readiness state, and the age of each symbol's newest data (GET /dashboard/markets/).
// Read with the health checks and again on reconnect.

import { el } from './table.js';
import { capitalise } from './format.js';

const FRESH_SECONDS = 120; // newer data than this reads as flowing

function age(seconds) {
  if (seconds === null || seconds === undefined) return 'no data';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

/** 'ok' | 'degraded' | 'down' | 'closed' for one market. */
export function marketTone(m) {
  if (!m.open) return 'closed';
  if (m.state === 'ERROR' || m.state === 'STOPPED') return 'down';
  const stale = m.symbols.filter((s) => s.age_seconds === null || s.age_seconds > FRESH_SECONDS);
  if (m.symbols.length && stale.length === m.symbols.length) return 'down';
  if (stale.length || (m.state && m.state !== 'ACTIVE' && m.state !== 'READY')) return 'degraded';
  return 'ok';
}

export class MarketStatus {
  constructor({ listEl, url }) {
    Object.assign(this, { listEl, url });
    this.markets = [];
  }

  async refresh() {
    try {
      const res = await fetch(this.url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!res.ok) return;
      this.render((await res.json()).markets || []);
    } catch (err) { /* the health pill already says the server is unreachable */ }
  }

  render(markets) {
    this.markets = markets;
    this.listEl.replaceChildren(...markets.map((m) => {
      const tone = marketTone(m);
      const session = m.open ? 'open' : `closed${m.next_open ? ` · opens ${new Date(m.next_open).toUTCString().slice(0, 22)} UTC` : ''}`;
      const state = m.state ? ` · ${m.state.toLowerCase().replace('_', ' ')}` : '';
      return el('li', { 'data-status': tone, 'data-market': m.market }, [
        el('div', { class: 'hc-head' }, [
          el('span', { class: 'hc-name', text: capitalise(m.market) }),
          el('span', { class: 'hc-value', text: `${session}${state}` }),
        ]),
        el('p', { class: 'hc-reason', text: m.symbols.map((s) => `${s.symbol} ${age(s.age_seconds)}`).join(' · ') || 'no symbols followed' }),
        ...(m.reason && tone !== 'ok' ? [el('p', { class: 'hc-reason', text: m.reason })] : []),
      ]);
    }));
  }
}
