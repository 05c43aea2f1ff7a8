// Application-level keepalive for the WebSocket. A connection can die without a
// close event (laptop sleep, a NAT or proxy dropping idle flows); TCP would take
// minutes to notice. So we ask for a pong now and then and give up on the socket
// when none comes back in time.

export class Heartbeat {
  /**
   * @param {object} args
   * @param {number} args.intervalMs   time between pings
   * @param {number} args.timeoutMs    how long to wait for the pong
   * @param {() => void} args.send      sends {"type":"ping"}; may throw
   * @param {(reason: string) => void} args.onDead
   */
  constructor({ intervalMs, timeoutMs, send, onDead }) {
    Object.assign(this, { intervalMs, timeoutMs, send, onDead });
    this.pingTimer = null;
    this.pongTimer = null;
  }

  start() {
    this.stop();
    this.pingTimer = setInterval(() => this._ping(), this.intervalMs);
  }

  stop() {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    if (this.pongTimer !== null) clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  pong() {
    if (this.pongTimer !== null) clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  _ping() {
    if (this.pongTimer !== null) return; // still waiting for the last one
    try {
      this.send();
    } catch (err) {
      this.stop();
      this.onDead('send failed');
      return;
    }
    this.pongTimer = setTimeout(() => {
      this.stop();
      this.onDead('no pong');
    }, this.timeoutMs);
  }
}
