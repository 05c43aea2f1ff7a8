// When a health reading may still be shown as current (pure, so the rule is
// testable on its own): never while the live connection is down, and never once
// it is older than `maxAgeMs` (two refresh intervals).

/** 'fresh' | 'stale' | 'disconnected' | 'none' */
export function healthFreshness({ receivedAt, now, maxAgeMs, connected }) {
  if (!receivedAt) return 'none';
  if (!connected) return 'disconnected';
  return now - receivedAt > maxAgeMs ? 'stale' : 'fresh';
}
