// What the connection badge says, as a pure function of the feed's state, so the
// rules live in one place: a working transport wins; otherwise tell the user when
// the next attempt is due, and only call it "Offline" when that is the truth
// (no network, signed out, or many failures in a row).

/**
 * @returns {{state: 'connecting'|'live'|'reconnecting'|'polling'|'offline',
 *            transport: ''|'ws'|'sse'|'poll', seconds?: number|null, detail?: string}}
 */
export function feedStatus({
  fatal = null, wsOpen = false, sseOpen = false, polling = false, pollOk = null, online = true,
  retryInMs = null, sseRetrying = false, sseRetryHintMs = 3000, failures = 0, offlineAfterFailures = 6,
  everConnected = false,
}) {
  if (fatal) return { state: 'offline', transport: '', detail: fatal };
  if (wsOpen) return { state: 'live', transport: 'ws' };
  if (sseOpen) return { state: 'live', transport: 'sse' };
  if (polling && pollOk) return { state: 'polling', transport: 'poll' };
  if (!online) return { state: 'offline', transport: '', detail: 'no network' };
  let seconds = null;
  if (retryInMs !== null) seconds = Math.max(0, Math.ceil(retryInMs / 1000));
  else if (sseRetrying) seconds = Math.ceil(sseRetryHintMs / 1000);
  if (failures >= offlineAfterFailures) {
    return { state: 'offline', transport: '', seconds, detail: seconds ? `retrying in ${seconds}s` : 'retrying' };
  }
  if (everConnected || failures > 0 || pollOk === false) {
    return { state: 'reconnecting', transport: '', seconds: seconds ?? 0 };
  }
  return { state: 'connecting', transport: '' };
}
