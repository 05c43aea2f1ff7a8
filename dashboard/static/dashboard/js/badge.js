// The connection badge: what feed.status() says, in words, with a state history
// the tests read (window.signalsDashboard.statusHistory). Changes are announced
// to screen readers; the per-second countdown is not.

function statusText(st) {
  switch (st.state) {
    case 'live': return ['Live', st.transport === 'sse' ? 'via SSE' : ''];
    case 'reconnecting': return [st.seconds > 0 ? `Reconnecting in ${st.seconds}s` : 'Reconnecting…', ''];
    case 'polling': return ['Polling', 'every few seconds'];
    case 'offline': return ['Offline', st.detail || ''];
    default: return ['Connecting…', ''];
  }
}

export class ConnectionBadge {
  constructor({ badge, textEl, viaEl, announcer }) {
    Object.assign(this, { badge, textEl, viaEl, announcer });
    this.history = [];
  }

  render(st) {
    const [text, via] = statusText(st);
    const { badge } = this;
    const changed = badge.dataset.state !== st.state || badge.dataset.transport !== (st.transport || '');
    badge.dataset.state = st.state;
    badge.dataset.transport = st.transport || '';
    this.textEl.textContent = text;
    this.viaEl.textContent = via;
    badge.title = st.state === 'live' ? `Live over ${st.transport === 'ws' ? 'WebSocket' : 'Server-Sent Events'}` : text;
    if (changed) {
      this.history.push({ state: st.state, transport: st.transport || '', text, at: Date.now() });
      if (this.history.length > 200) this.history.shift();
      this.announcer.textContent = `Connection ${text.replace(/ in \d+s$/, '')}${via ? ` ${via}` : ''}`;
    }
    return changed;
  }
}
