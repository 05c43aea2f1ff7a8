// Delivery receipts: "N signals arrived while you were away" from GET /api/me/ on
// arrival, and {"type":"ack","id":N} for the newest signal this page has shown,
// sent at most every few seconds (the server keeps the highest per user).

export class Receipts {
  constructor({ url, banner, textEl, dismiss, send, throttleMs = 5000 }) {
    Object.assign(this, { url, banner, textEl, send, throttleMs });
    this.acked = 0;       // the highest id sent
    this.pending = 0;     // the highest id shown
    this.timer = null;
    this.lastSent = 0;
    this.ready = false;   // no ack before /api/me/ answered, or it would count nothing as unseen
    dismiss?.addEventListener('click', () => { this.banner.hidden = true; });
  }

  /** Ask the server what this user missed since their last acknowledged signal. */
  async greet() {
    try {
      const res = await fetch(this.url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!res.ok) return null;
      const me = await res.json();
      this.acked = Math.max(this.acked, Number(me.last_ack_id) || 0);
      const unseen = Number(me.unseen) || 0;
      // Nothing acknowledged yet is a first visit, not an absence: no banner then.
      if (unseen > 0 && Number(me.last_ack_id) > 0) {
        this.textEl.textContent = `${unseen} signal${unseen === 1 ? '' : 's'} arrived while you were away.`;
        this.banner.hidden = false;
      }
      return me;
    } catch (err) {
      return null;
    } finally {
      this.ready = true;
      this.flush();
    }
  }

  /** A signal is on screen; acknowledge the newest, throttled. */
  shown(id) {
    if (!(id > this.pending)) return;
    this.pending = id;
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastSent + this.throttleMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Send now (also after a reconnect, when the socket is new). */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.ready || !(this.pending > this.acked)) return;
    if (this.send({ type: 'ack', id: this.pending })) {
      this.acked = this.pending;
      this.lastSent = Date.now();
    } else {
      // No open socket: try again later (acks ride the WebSocket only).
      this.timer = setTimeout(() => this.flush(), this.throttleMs);
    }
  }
}
