// The health pill: GET /health/ now and then, plus `health` frames pushed over the
// live connection. /health/ answers 503 with the same JSON body when down.

const LABELS = { ok: 'Healthy', degraded: 'Degraded', down: 'Down' };

export class HealthPanel {
  constructor({ root, textEl, listEl, updatedEl, url, refreshMs = 30000 }) {
    Object.assign(this, { root, textEl, listEl, updatedEl, url, refreshMs });
    this.timer = null;
  }

  start() {
    this.refresh();
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const res = await fetch(this.url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      const body = await res.json();
      this.render(body);
    } catch (err) {
      this.render({ status: 'unknown', components: {} }, 'Health check unreachable');
    } finally {
      this.timer = setTimeout(() => this.refresh(), this.refreshMs);
    }
  }

  render(health, note) {
    const status = health && typeof health.status === 'string' ? health.status : 'unknown';
    this.root.dataset.status = status;
    const score = Number.isFinite(health?.score) ? ` · ${health.score}` : '';
    this.textEl.textContent = `${LABELS[status] || 'Health unknown'}${score}`;
    this.root.querySelector('summary')?.setAttribute('aria-label', `System health: ${LABELS[status] || 'unknown'}${score}`);
    const items = Object.entries(health?.components || {}).map(([name, info]) => {
      const li = document.createElement('li');
      li.dataset.status = info?.status || 'unknown';
      const label = document.createElement('span');
      label.textContent = name.replace(/_/g, ' ');
      const value = document.createElement('span');
      value.className = 'muted';
      const latency = Number.isFinite(info?.latency_ms) ? ` · ${info.latency_ms} ms` : '';
      value.textContent = `${info?.status || 'unknown'}${latency}`;
      if (info?.error || info?.detail) li.title = info.error || info.detail;
      li.append(label, value);
      return li;
    });
    this.listEl.replaceChildren(...items);
    this.updatedEl.textContent = note || `Checked ${new Date().toLocaleTimeString()}`;
  }
}
