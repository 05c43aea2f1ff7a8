// HTTP polling, the last fallback: GET /api/signals/?after_id=N (oldest first),
// following `next` until caught up, then again every few seconds. Each request
// resumes from the feed's cursor, so a lost response only delays, never loses.

export class Poller {
  /**
   * @param {object} args
   * @param {() => string} args.url   the first page's URL (built from the current cursor)
   * @param {number} args.intervalMs  pause between rounds
   * @param {number} args.maxPages    pages per round; the next round continues
   * @param {(signal) => void} args.onSignal
   * @param {(ok: boolean) => void} args.onRound     after each round
   * @param {() => void} args.onUnauthorized          401/403: the session is gone
   */
  constructor({ url, intervalMs, maxPages, onSignal, onRound, onUnauthorized }) {
    Object.assign(this, { url, intervalMs, maxPages, onSignal, onRound, onUnauthorized });
    this.running = false;
    this.ok = null;       // null until the first round ends
    this.timer = null;
    this.abort = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.ok = null;
    this.pollNow();
  }

  stop() {
    this.running = false;
    this.ok = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.abort) this.abort.abort();
    this.abort = null;
  }

  /** Poll now (a round in flight schedules the next one itself). */
  pollNow() {
    if (!this.running) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.abort) return;
    this._round().finally(() => {
      if (this.running) this.timer = setTimeout(() => { this.timer = null; this.pollNow(); }, this.intervalMs);
    });
  }

  async _round() {
    const abort = new AbortController();
    this.abort = abort;
    let url = this.url();
    try {
      for (let page = 0; url && page < this.maxPages; page += 1) {
        const res = await fetch(url, {
          credentials: 'same-origin', cache: 'no-store', signal: abort.signal,
          headers: { Accept: 'application/json' },
        });
        if (res.status === 401 || res.status === 403) {
          this.stop();
          this.onUnauthorized();
          return;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const body = await res.json();
        for (const signal of body.results || []) this.onSignal(signal);
        url = body.next ? relative(body.next) : null;
      }
      this.ok = true;
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      this.ok = false;
    } finally {
      if (this.abort === abort) this.abort = null;
    }
    if (this.running) this.onRound(this.ok);
  }
}

/** `next` is absolute; keep path + query so the page's scheme (behind TLS) is kept. */
function relative(absolute) {
  const u = new URL(absolute, window.location.href);
  return u.pathname + u.search;
}
