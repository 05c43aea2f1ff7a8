// Latest prices for the symbols on screen (the chart's and the open signals'),
// one request every few seconds to /dashboard/prices/. A symbol with no price yet
// is simply absent from the answer: nothing is logged as an error.

export class PriceTicker {
  /**
   * @param {object} args {url, symbols() -> string[], onPrices({symbol: {price, ts_ms}}), intervalMs}
   */
  constructor({ url, symbols, onPrices, intervalMs = 5000 }) {
    Object.assign(this, { url, symbols, onPrices, intervalMs });
    this.timer = null;
    this.inFlight = false;
  }

  start() {
    this.tick();
  }

  /** Fetch now (a new symbol appeared) unless a request is already out. */
  async tick() {
    clearTimeout(this.timer);
    const symbols = [...new Set(this.symbols())].slice(0, 50);
    if (symbols.length && !this.inFlight && !document.hidden) {
      this.inFlight = true;
      try {
        const res = await fetch(`${this.url}?${new URLSearchParams({ symbols: symbols.join(',') })}`, {
          credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' },
        });
        if (res.ok) this.onPrices((await res.json()).prices || {});
      } catch (err) {
        // The next tick tries again; the connection badge reports outages.
      } finally {
        this.inFlight = false;
      }
    }
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }
}
