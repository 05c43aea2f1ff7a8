// Opt-in desktop notifications for new signals while the tab is in the background.
// The choice is a preference (kept in localStorage); signal history never is.

const KEY = 'signals.notifications';
const BURST_WINDOW_MS = 400;

export class Notifier {
  constructor(button) {
    this.button = button;
    this.queue = [];
    this.flushTimer = null;
    this.supported = typeof window.Notification !== 'undefined';
    if (!this.supported) return;
    this.enabled = localStorage.getItem(KEY) === 'on' && Notification.permission === 'granted';
    button.hidden = false;
    button.addEventListener('click', () => this.toggle());
    this._render();
  }

  async toggle() {
    if (this.enabled) {
      this.enabled = false;
      localStorage.setItem(KEY, 'off');
    } else {
      let permission = Notification.permission;
      if (permission === 'default') permission = await Notification.requestPermission();
      this.enabled = permission === 'granted';
      localStorage.setItem(KEY, this.enabled ? 'on' : 'off');
    }
    this._render();
  }

  _render() {
    const denied = Notification.permission === 'denied';
    this.button.setAttribute('aria-pressed', String(Boolean(this.enabled)));
    this.button.querySelector('span').textContent = denied ? 'Alerts blocked' : (this.enabled ? 'Alerts on' : 'Alerts off');
    this.button.title = denied
      ? 'Notifications are blocked for this site in the browser settings'
      : 'Desktop notifications for new signals while this tab is in the background';
    this.button.disabled = denied;
  }

  /** Called for each new signal; only notifies when enabled and the tab is hidden. */
  signal(signal) {
    if (!this.supported || !this.enabled || !document.hidden) return;
    if (this.accepts && !this.accepts(signal)) return; // the user's subscription preferences
    this.queue.push(signal);
    if (this.flushTimer === null) this.flushTimer = setTimeout(() => this._flush(), BURST_WINDOW_MS);
  }

  _flush() {
    this.flushTimer = null;
    const batch = this.queue.splice(0);
    if (batch.length === 0) return;
    try {
      if (batch.length > 3) {
        // A catch-up after a reconnect can bring many at once: one summary, not a storm.
        new Notification(`${batch.length} new signals`, { body: batch.slice(-5).map(describe).join('\n'), tag: 'signals-burst' });
      } else {
        for (const s of batch) {
          new Notification(`${s.direction === 'long' ? '▲ Long' : '▼ Short'} ${s.symbol} @ ${s.entry_price}`,
            { body: `SL ${s.stop_loss} · TP ${s.take_profit} · ${s.confidence}% · ${s.source}`, tag: `signal-${s.id}` });
        }
      }
    } catch (err) {
      // Some platforms only allow notifications from a service worker: stay quiet.
    }
  }
}

function describe(s) {
  return `${s.direction === 'long' ? '▲' : '▼'} ${s.symbol} @ ${s.entry_price} (${s.source})`;
}
