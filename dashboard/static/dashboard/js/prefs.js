// The user's preferences. From the server: the browser-notification preferences
// (GET /api/subscriptions/browser/, managed on the subscriptions page), which
// markets, sources and minimum confidence they want to hear about; notifications
// follow them, and the feed can be narrowed to them with the "My subscriptions"
// switch. In this browser: the dashboard's on/off choices (which indicator panes
// show), kept in localStorage as 'on'/'off' like the other switches of the page.

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

/** An on/off choice of this browser (`fallback` when never made, or when storage
 *  is refused, as in some private windows: the page works, it just forgets). */
export function switchPref(key, fallback) {
  try {
    const stored = localStorage.getItem(key);
    return stored === null ? fallback : stored === 'on';
  } catch (err) {
    return fallback;
  }
}

export function switchPrefSet(key, on) {
  try {
    localStorage.setItem(key, on ? 'on' : 'off');
  } catch (err) { /* remembered for this page only */ }
}
