// One Server-Sent Events connection (GET /api/signals/stream/): opens an
// EventSource, hands each frame's text on, counts errors in a row. What to do about
// errors (wait for the browser's own retry, start over, or fall back to polling) is
// the feed's decision (feed.js).

const FRAME_TYPES = ['new_signal', 'outcome', 'signal_event', 'health', 'resync'];

export class SseStream {
  /** @param {object} args {onOpen(), onText(text), onError(closed: boolean)} */
  constructor({ onOpen, onText, onError }) {
    Object.assign(this, { onOpen, onText, onError });
    this.es = null;
    this.open = false;
    this.errors = 0; // in a row; an open stream resets it
  }

  get active() {
    return this.es !== null;
  }

  /** Connect to `url`. Returns false when this browser cannot open an event stream. */
  start(url) {
    if (typeof EventSource === 'undefined') return false;
    let es;
    try {
      es = new EventSource(url);
    } catch (err) {
      return false;
    }
    this.es = es;
    this.open = false;
    es.onopen = () => {
      if (this.es !== es) return;
      this.open = true;
      this.errors = 0;
      this.onOpen();
    };
    for (const kind of FRAME_TYPES) {
      es.addEventListener(kind, (event) => {
        if (this.es === es) this.onText(event.data);
      });
    }
    es.onerror = () => {
      if (this.es !== es) return;
      this.open = false;
      this.errors += 1;
      this.onError(es.readyState === EventSource.CLOSED);
    };
    return true;
  }

  close() {
    const es = this.es;
    this.es = null;
    this.open = false;
    if (es) es.close();
  }
}
