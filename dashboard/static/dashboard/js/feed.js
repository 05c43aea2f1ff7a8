// The live connection: WebSocket first, Server-Sent Events when WebSockets cannot
// connect (proxies often break them), HTTP polling when SSE fails too, while the
// WebSocket keeps being retried in the background and wins back as soon as it opens.
//
// The server is the source of truth: every transport resumes from `cursor`, the
// highest signal id this page holds, and the server replays everything after it in
// id order. Duplicates across transports or reconnects are possible by design
// (at-least-once); the table drops them by id.

import { backoffDelay, retryAfterDelay } from './backoff.js';
import { closeVerdict, parseFrame, streamQuery } from './frames.js';
import { Heartbeat } from './heartbeat.js';
import { Poller } from './poller.js';
import { SseStream } from './sse_stream.js';
import { feedStatus } from './status.js';

export const TRANSPORTS = ['auto', 'ws', 'sse', 'poll'];

const DEFAULTS = {
  pingIntervalMs: 20000,        // how often we ask the server for a pong
  pongTimeoutMs: 10000,         // no pong by then: the connection is dead
  wsFailuresBeforeFallback: 3,  // WebSocket attempts that never opened, in a row
  sseErrorsBeforePolling: 2,
  pollIntervalMs: 3000,
  pollPageSize: 200,
  pollMaxPages: 20,             // per tick; the next tick continues from the cursor
  backoffBaseMs: 1000,
  backoffCapMs: 30000,
  stableAfterMs: 5000,          // a socket open this long resets the backoff
  offlineAfterFailures: 6,      // failed attempts in a row before we say "Offline"
  sseRetryHintMs: 3000,         // matches the server's `retry:` field
};

export class LiveFeed {
  /**
   * @param {object} args
   * @param {object} args.urls      {ws, stream, signals}
   * @param {number} args.cursor    highest signal id the page already holds
   * @param {number} args.eventCursor highest amendment id the page already holds
   *                                (null: amendments live only)
   * @param {object} args.filters   {symbol, market, source}; symbol/market go to the
   *                                server, source is applied by the page
   * @param {string} args.transport 'auto' | 'ws' | 'sse' | 'poll' (the last three
   *                                force one transport, for tests and diagnosis)
   * @param {object} args.handlers  {signal(s, via), outcome(id, o), event(id, e),
   *                                health(h), status(st), resumed(via), resync(lastId)}
   */
  constructor({ urls, cursor = 0, eventCursor = null, filters = {}, transport = 'auto', handlers = {}, options = {} }) {
    this.urls = urls;
    this.cursor = Number(cursor) || 0;
    this.eventCursor = eventCursor === null || eventCursor === undefined ? null : Number(eventCursor) || 0;
    this.filters = { ...filters };
    this.transport = TRANSPORTS.includes(transport) ? transport : 'auto';
    this.handlers = handlers;
    this.opts = { ...DEFAULTS, ...options };
    this._reset();
    this._lastStatusKey = '';
    this._onOnline = () => this.reconnectNow();
    this._onOffline = () => this._emitStatus();
    this._onVisible = () => {
      // Back from sleep or a background tab: do not wait out a long backoff.
      if (document.visibilityState === 'visible' && !this.isLive() && !this.fatal) this.reconnectNow();
    };
  }

  _reset() {
    this.stopped = false;
    this.fatal = null;
    this.ws = null;
    this.wsOpen = false;
    this.wsOpenedAt = 0;
    this.wsAttempt = 0;       // backoff exponent
    this.wsFailures = 0;      // attempts in a row that never opened
    this.retryTimer = null;
    this.retryAt = 0;
    this.heartbeat = new Heartbeat({
      intervalMs: this.opts.pingIntervalMs,
      timeoutMs: this.opts.pongTimeoutMs,
      send: () => this.ws.send('{"type":"ping"}'),
      onDead: (reason) => this._dropDeadWs(reason),
    });
    this.sse = new SseStream({
      onOpen: () => {
        this._stopPolling();
        this._opened('sse');
        this._emitStatus();
      },
      onText: (text) => this._onText(text, 'sse'),
      onError: (closed) => this._sseError(closed),
    });
    this.poller = new Poller({
      url: () => `${this.urls.signals}?${this._query({ source: this.filters.source, page_size: String(this.opts.pollPageSize) })}`,
      intervalMs: this.opts.pollIntervalMs,
      maxPages: this.opts.pollMaxPages,
      onSignal: (signal) => this._deliverSignal(signal, 'poll'),
      onRound: (ok) => {
        if (ok && this.lastPollOk !== true) this._opened('poll');
        this.lastPollOk = ok;
        this._emitStatus();
      },
      onUnauthorized: () => this._setFatal('signed out: log in again'),
    });
    this.lastPollOk = null;
    this.everConnected = false;
    this.tickTimer = null;
  }

  // --- public ------------------------------------------------------------------

  start() {
    this.stopped = false;
    window.addEventListener('online', this._onOnline);
    window.addEventListener('offline', this._onOffline);
    document.addEventListener('visibilitychange', this._onVisible);
    this._begin();
  }

  _begin() {
    this.tickTimer = setInterval(() => this._emitStatus(), 500); // drives the countdown
    if (this.transport === 'sse') this._startSse();
    else if (this.transport === 'poll') this._startPolling();
    else this._connectWs();
    this._emitStatus();
  }

  stop() {
    this.stopped = true;
    this._teardown();
    window.removeEventListener('online', this._onOnline);
    window.removeEventListener('offline', this._onOffline);
    document.removeEventListener('visibilitychange', this._onVisible);
    clearInterval(this.tickTimer);
    this.tickTimer = null;
  }

  /** Manual "Reconnect": drop the backoff and try the preferred transport now. */
  reconnectNow() {
    if (this.stopped) return;
    this.fatal = null;
    this.wsAttempt = 0;
    this._clearRetry();
    if (this.transport === 'sse') {
      this.sse.close();
      this._startSse();
    } else if (this.transport === 'poll') {
      this._stopPolling();
      this._startPolling();
    } else {
      // A running fallback keeps going (and polls once now) until the socket opens.
      if (this.poller.running) this.poller.pollNow();
      this._closeWs();
      this._connectWs();
    }
    this._emitStatus();
  }

  /** New filters (and the cursor of the rows the page now holds): start over. */
  restart({ filters, cursor, eventCursor }) {
    this._teardown();
    clearInterval(this.tickTimer);
    this._reset();
    this.filters = { ...filters };
    this.cursor = Number(cursor) || 0;
    if (eventCursor !== undefined && eventCursor !== null) this.eventCursor = Number(eventCursor) || 0;
    this._begin();
  }

  isLive() {
    return this.wsOpen || this.sse.open;
  }

  /** Send a client frame over the open WebSocket. Returns false when none is open. */
  send(frame) {
    if (!this.wsOpen || !this.ws) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch (err) {
      return false;
    }
  }

  /** {state: connecting|live|reconnecting|polling|offline, transport, seconds, detail} */
  status() {
    return feedStatus({
      fatal: this.fatal,
      wsOpen: this.wsOpen,
      sseOpen: this.sse.open,
      polling: this.poller.running,
      pollOk: this.poller.ok,
      online: navigator.onLine !== false,
      retryInMs: this.retryAt ? this.retryAt - Date.now() : null,
      sseRetrying: this.transport === 'sse' && this.sse.active && this.everConnected,
      sseRetryHintMs: this.opts.sseRetryHintMs,
      failures: Math.max(this.wsFailures, this.transport === 'sse' ? this.sse.errors : 0),
      offlineAfterFailures: this.opts.offlineAfterFailures,
      everConnected: this.everConnected,
    });
  }

  // --- WebSocket -------------------------------------------------------------------

  _query(extra = {}) {
    const events = this.eventCursor === null ? {} : { after_event_id: String(this.eventCursor) };
    return streamQuery(this.cursor, this.filters, { ...events, ...extra });
  }

  _wsUrl() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${window.location.host}${this.urls.ws}?${this._query()}`;
  }

  _connectWs() {
    if (this.stopped || this.fatal) return;
    this._clearRetry();
    let sock;
    try {
      sock = new WebSocket(this._wsUrl());
    } catch (err) {
      // Some proxies/extensions make the constructor itself throw.
      this.wsFailures += 1;
      this._afterWsFailure();
      return;
    }
    this.ws = sock;
    sock.onopen = () => {
      if (this.ws !== sock) return;
      this.wsOpen = true;
      this.wsOpenedAt = Date.now();
      this.wsFailures = 0;
      this._stopFallbacks();
      this.heartbeat.start();
      this._opened('ws');
      this._emitStatus();
    };
    sock.onmessage = (event) => {
      if (this.ws !== sock) return;
      this._onText(event.data, 'ws');
    };
    sock.onclose = (event) => {
      if (this.ws !== sock) return;
      this._wsClosed(event.code, event.reason);
    };
    // onerror is always followed by onclose; nothing to do here.
    sock.onerror = () => {};
    this._emitStatus();
  }

  _wsClosed(code, reason) {
    const wasOpen = this.wsOpen;
    const openFor = wasOpen ? Date.now() - this.wsOpenedAt : 0;
    this.heartbeat.stop();
    this._detachWs();
    if (this.stopped) return;
    const verdict = closeVerdict(code, reason);
    if (verdict.action === 'fatal') {
      this._setFatal(verdict.detail);
      return;
    }
    if (verdict.action === 'resync') {
      this._resync();
      return;
    }
    if (verdict.action === 'later') {
      // Not a failure of WebSockets: it does not count towards the fallbacks.
      this._scheduleWsRetry(retryAfterDelay(verdict.seconds));
      this._emitStatus();
      return;
    }
    if (wasOpen) {
      if (openFor >= this.opts.stableAfterMs) this.wsAttempt = 0;
    } else {
      this.wsFailures += 1;
    }
    this._afterWsFailure();
  }

  _afterWsFailure() {
    if (this.stopped || this.fatal) return;
    if (this.transport === 'auto' && this.wsFailures >= this.opts.wsFailuresBeforeFallback
        && !this.sse.active && !this.poller.running) {
      this._startSse();
    }
    this._scheduleWsRetry();
    this._emitStatus();
  }

  _scheduleWsRetry(fixedDelay = null) {
    this._clearRetry();
    const delay = fixedDelay ?? backoffDelay(this.wsAttempt, { baseMs: this.opts.backoffBaseMs, capMs: this.opts.backoffCapMs });
    if (fixedDelay === null) this.wsAttempt += 1;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryAt = 0;
      this._connectWs();
    }, delay);
  }

  _clearRetry() {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
  }

  _detachWs() {
    const sock = this.ws;
    this.ws = null;
    this.wsOpen = false;
    if (sock) {
      sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
    }
    return sock;
  }

  _closeWs() {
    this.heartbeat.stop();
    const sock = this._detachWs();
    if (sock && sock.readyState <= WebSocket.OPEN) {
      try { sock.close(1000, 'client closing'); } catch (err) { /* already closing */ }
    }
  }

  /** A half-open socket never fires `close` on its own: treat it as closed now. */
  _dropDeadWs(reason) {
    if (!this.ws) return;
    const sock = this.ws;
    this._wsClosed(4000, reason);
    try { sock.close(4000, reason); } catch (err) { /* ignore */ }
  }

  // --- Server-Sent Events --------------------------------------------------------

  _startSse() {
    if (this.stopped || this.fatal || this.sse.active) return;
    if (!this.sse.start(`${this.urls.stream}?${this._query()}`)) this._startPolling();
  }

  _sseError(closed) {
    if (this.transport === 'sse') {
      // Forced SSE: the browser retries by itself (with Last-Event-ID) unless it
      // gave up (a non-stream answer); then start a fresh one after a backoff.
      if (closed) {
        this.sse.close();
        const delay = backoffDelay(this.sse.errors, { baseMs: this.opts.backoffBaseMs, capMs: this.opts.backoffCapMs });
        this.retryAt = Date.now() + delay;
        this.retryTimer = setTimeout(() => { this.retryTimer = null; this.retryAt = 0; this._startSse(); }, delay);
      }
    } else if (closed || this.sse.errors >= this.opts.sseErrorsBeforePolling) {
      this.sse.close();
      this._startPolling();
    }
    this._emitStatus();
  }

  // --- HTTP polling (poller.js) -------------------------------------------------------

  _startPolling() {
    if (this.stopped || this.fatal || this.poller.running) return;
    this.lastPollOk = null;
    this.poller.start();
  }

  _stopPolling() {
    this.poller.stop();
  }

  _stopFallbacks() {
    this.sse.close();
    this._stopPolling();
  }

  // --- shared ---------------------------------------------------------------------

  _onText(text, via) {
    const message = parseFrame(text);
    if (message === null) return;
    if (message.type === 'new_signal') this._deliverSignal(message.signal, via);
    else if (message.type === 'outcome') this.handlers.outcome?.(message.signal_id, message.outcome);
    else if (message.type === 'signal_event') this._deliverEvent(message.signal_id, message.event);
    else if (message.type === 'resync') {
      this.resyncTo = Number(message.last_id) || 0;
      // A WebSocket closes with 4409 next; an event stream just ends, so act now.
      if (via === 'sse') { this.sse.close(); this._resync(); }
    }
    else if (message.type === 'health') this.handlers.health?.(message);
    else if (message.type === 'pong') this.heartbeat.pong();
    else if (message.type === 'error') console.warn('signals stream error frame', message);
  }


  _deliverEvent(signalId, event) {
    if (this.eventCursor !== null && event.id > this.eventCursor) this.eventCursor = event.id;
    this.handlers.event?.(signalId, event);
  }

  _resync() {
    const lastId = this.resyncTo ?? 0;
    this.resyncTo = null;
    if (this.handlers.resync) {
      this.handlers.resync(lastId); // the page reloads its rows and restarts us
      return;
    }
    this.cursor = Math.min(this.cursor, lastId);
    this._scheduleWsRetry(0);
  }

  _deliverSignal(signal, via) {
    if (signal.id > this.cursor) this.cursor = signal.id;
    this.handlers.signal?.(signal, via);
  }

  _opened(via) {
    if (this.everConnected) this.handlers.resumed?.(via);
    this.everConnected = true;
  }

  _setFatal(detail) {
    this.fatal = detail;
    this._teardown();
    this._emitStatus();
  }

  _teardown() {
    this._clearRetry();
    this._closeWs();
    this._stopFallbacks();
  }

  _emitStatus() {
    const status = this.status();
    const key = JSON.stringify(status);
    if (key === this._lastStatusKey) return;
    this._lastStatusKey = key;
    this.handlers.status?.(status);
  }
}
