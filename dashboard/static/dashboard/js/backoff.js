// Reconnect delays: exponential from 1 s, capped at 30 s, with "full jitter"
// (a uniform random delay between 0 and the cap of this attempt). Full jitter
// spreads a crowd of clients that lost the same server over the whole window,
// so a restarted server is not hit by every browser in the same second.

export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 30000;

/** Upper bound of the delay for this attempt (0-based): 1 s, 2 s, 4 s, … 30 s. */
export function backoffCeiling(attempt, { baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS } = {}) {
  const n = Math.max(0, Math.min(30, Math.floor(attempt)));
  return Math.min(capMs, baseMs * 2 ** n);
}

/** A delay in ms drawn uniformly from [0, ceiling(attempt)). */
export function backoffDelay(attempt, { baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS, random = Math.random } = {}) {
  return Math.floor(random() * backoffCeiling(attempt, { baseMs, capMs }));
}

/** A server's "come back in `seconds`" plus up to a second (or a quarter) of jitter,
 *  so clients told the same time do not all return in the same instant. */
export function retryAfterDelay(seconds, { random = Math.random } = {}) {
  const base = Math.max(0, seconds) * 1000;
  return Math.floor(base + random() * Math.max(1000, base / 4));
}
