// The user's browser-notification preferences (GET /api/subscriptions/browser/,
// managed on the subscriptions page): which markets, sources and minimum
// confidence they want to hear about. Notifications follow them, and the feed can
// be narrowed to them with the "My subscriptions" switch.

/** Whether `signal` is one the preferences ask for (events aside). No preferences
 *  (an older server, or not answered yet) narrow nothing. */
export function matchesPrefs(signal, prefs) {
  if (!prefs) return true;
  if (Array.isArray(prefs.markets) && prefs.markets.length && !prefs.markets.includes(signal.market)) return false;
  if (Array.isArray(prefs.sources) && prefs.sources.length && !prefs.sources.includes(signal.source)) return false;
  return !(Number(prefs.min_confidence) > Number(signal.confidence));
}

/** Whether a new signal should raise a browser notification. */
export function notifies(signal, prefs) {
  if (!prefs) return true;
  if (prefs.notify === false) return false;
  if (Array.isArray(prefs.events) && !prefs.events.includes('signal.created')) return false;
  return matchesPrefs(signal, prefs);
}

export async function prefsLoad(url) {
  try {
    const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
    return res.ok ? await res.json() : null;
  } catch (err) {
    return null;
  }
}
