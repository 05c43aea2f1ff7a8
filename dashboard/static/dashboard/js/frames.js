// The wire format shared by the WebSocket and SSE transports (see the contract in
// ARCHITECTURE.md): query strings we send and frames we accept.

/** after_id plus the server-side filters (symbol, market) and any extra params. */
export function streamQuery(cursor, filters, extra = {}) {
  const params = new URLSearchParams({ after_id: String(cursor) });
  if (filters.symbol) params.set('symbol', filters.symbol);
  if (filters.market) params.set('market', filters.market);
  for (const [key, value] of Object.entries(extra)) if (value) params.set(key, value);
  return params.toString();
}

/** A parsed frame we understand, or null for anything malformed. */
export function parseFrame(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch (err) {
    return null;
  }
  if (!message || typeof message !== 'object' || typeof message.type !== 'string') return null;
  if (message.type === 'new_signal' && !(message.signal && Number.isInteger(message.signal.id))) return null;
  if (message.type === 'outcome' && !Number.isInteger(message.signal_id)) return null;
  if (message.type === 'signal_event'
      && !(Number.isInteger(message.signal_id) && message.event && Number.isInteger(message.event.id))) return null;
  return message;
}

/**
 * What a WebSocket close code from the server asks of the client:
 * {action: 'fatal', detail}   4400, the query was refused: retrying cannot help;
 * {action: 'resync'}          4409, our cursor is ahead of the server's newest
 *                             signal (history restored from an older copy): start over;
 * {action: 'later', seconds}  4503, overloaded: come back after `retry_after` seconds;
 * {action: 'retry'}           anything else: reconnect with backoff.
 */
export function closeVerdict(code, reason = '') {
  if (code === 4400) return { action: 'fatal', detail: reason ? `rejected: ${reason}` : 'rejected by the server' };
  if (code === 4409) return { action: 'resync' };
  if (code === 4503) {
    const seconds = Number(/retry_after=(\d+(?:\.\d+)?)/.exec(reason || '')?.[1]);
    return { action: 'later', seconds: Number.isFinite(seconds) ? seconds : 5 };
  }
  return { action: 'retry' };
}
