// The panel beside the chart for the signal the user clicked: its levels (ladder
// with one badge per leg, the stop in force), outcome, amendment history, and for
// users who may publish, the amendment buttons (POST /api/signals/{id}/events/).
// The server decides who may amend what; its refusal is shown as it is worded.

import { el, outcomeBadge } from './table.js';
import { formatPrice, formatR, utcStamp } from './format.js';
import { effectiveStop, rewardRisk, targetsOf } from './levels.js';

const LEG_LABELS = {
  open: 'Open', tp_hit: 'Hit', sl_hit: 'Stopped', closed: 'Closed', cancelled: 'Cancelled', expired: 'Expired',
};
const EVENT_LABELS = { move_stop: 'Stop moved', close: 'Closed', cancel: 'Cancelled' };
const CONFIRM_MS = 4000;

function time(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toISOString().slice(5, 16).replace('T', ' ');
}

function levelRow(label, value, cls = '', extra = []) {
  return el('li', { class: `lv ${cls}` }, [el('span', { class: 'lv-name', text: label }),
    el('span', { class: 'lv-price', text: formatPrice(value) }), ...extra]);
}

function legBadge(leg, target) {
  const status = leg?.status || 'open';
  const r = leg && leg.r !== null && leg.r !== undefined ? ` ${formatR(leg.r)}` : '';
  return el('span', {
    class: `badge leg leg-${status}`,
    title: leg?.closed_at ? `${LEG_LABELS[status] || status} at ${leg.exit_price ?? ''} · ${utcStamp(leg.closed_at)}` : `Target ${target.index}`,
    text: `${LEG_LABELS[status] || status}${r}`,
  });
}

export class SignalDetail {
  constructor({ root, body, hint, urls, csrfToken, canPublish, onChanged }) {
    Object.assign(this, { root, body, hint, urls, csrfToken, canPublish, onChanged });
    this.signal = null;
    this.message = null;
    this.draft = { price: '', reason: '' }; // what the user typed survives live re-renders
  }

  /** `auto`: not picked by the user (the newest on the chart), said in the hint. */
  show(signal, { auto = false } = {}) {
    if (this.signal?.id !== signal?.id) {
      this.message = null;
      this.draft = { price: '', reason: '' };
    }
    this.signal = signal;
    this.auto = auto;
    this.render();
  }

  render() {
    const s = this.signal;
    this.hint.textContent = s && !this.auto ? '' : (s ? 'newest on the chart · click a row to pick another'
      : 'Click a row to inspect it on the chart');
    if (!s) {
      this.body.replaceChildren();
      return;
    }
    const rr = rewardRisk(s);
    const head = el('div', { class: 'detail-head' }, [
      el('span', { class: 'symbol', text: s.symbol }),
      el('span', { class: `badge dir dir-${s.direction}`, text: s.direction === 'long' ? '▲ Long' : '▼ Short' }),
      outcomeBadge(s.outcome),
      el('span', { class: 'muted small', text: `#${s.id} · ${s.timeframe} · ${s.source} · ${s.confidence}%` }),
    ]);
    const targets = targetsOf(s);
    const legs = s.outcome?.legs || [];
    const ladder = el('ul', { class: 'levels' }, [
      ...targets.slice().reverse().map((t) => levelRow(
        targets.length > 1 ? `TP${t.index}` : 'Take-profit', t.price, `lv-target lv-${t.status}`,
        [el('span', { class: 'muted small', text: targets.length > 1 ? `${Math.round(t.portion * 100)}%` : '' }),
          legBadge(legs[t.index - 1], t)],
      )),
      levelRow('Entry', s.entry_price, 'lv-entry', [el('span', { class: 'muted small', text: rr === null ? '' : `R:R ${rr.toFixed(1)}` })]),
      ...this._stopRows(s),
    ]);
    const parts = [head, ladder];
    const o = s.outcome || {};
    const facts = [];
    if (o.r_multiple !== null && o.r_multiple !== undefined) facts.push(`Result ${formatR(o.r_multiple)}`);
    if (o.mfe_r !== null && o.mfe_r !== undefined) facts.push(`best ${formatR(o.mfe_r)}`);
    if (o.mae_r !== null && o.mae_r !== undefined) facts.push(`worst ${formatR(o.mae_r)}`);
    if (s.stop_rule && s.stop_rule.type && s.stop_rule.type !== 'fixed') facts.push(`stop rule: ${s.stop_rule.type.replace(/_/g, ' ')}`);
    if (s.expires_at) facts.push(`expires ${utcStamp(s.expires_at)}`);
    if (facts.length) parts.push(el('p', { class: 'facts muted small', text: facts.join(' · ') }));
    if (s.note) parts.push(el('p', { class: 'note', text: s.note }));
    parts.push(this._history(s));
    if (this.canPublish && (o.status || 'open') === 'open') parts.push(this._amendForm(s));
    if (this.message) parts.push(el('p', { class: `amend-msg ${this.message.ok ? 'ok' : 'err'}`, role: 'status', text: this.message.text }));
    const focused = this.body.contains(document.activeElement) ? document.activeElement.name : null;
    this.body.replaceChildren(...parts);
    if (focused) this.body.querySelector(`input[name="${focused}"]`)?.focus();
  }

  _stopRows(s) {
    const stop = effectiveStop(s);
    if (!stop || stop === s.stop_loss) return [levelRow('Stop', s.stop_loss, 'lv-stop')];
    return [levelRow('Stop now', stop, 'lv-stop'), levelRow('Original stop', s.stop_loss, 'lv-stop lv-old')];
  }

  _history(s) {
    const events = Array.isArray(s.events) ? s.events : [];
    const items = [el('li', { class: 'ev' }, [el('time', { datetime: s.created_at, title: utcStamp(s.created_at), text: time(s.created_at) }),
      el('span', { text: 'Published' })])];
    for (const e of events) {
      const what = e.type === 'move_stop' ? `${EVENT_LABELS[e.type]} to ${formatPrice(e.price)}` : (EVENT_LABELS[e.type] || e.type);
      const by = e.created_by ? ` by ${typeof e.created_by === 'object' ? e.created_by.username : e.created_by}` : '';
      items.push(el('li', { class: `ev ev-${e.type}`, 'data-event-id': String(e.id) }, [
        el('time', { datetime: e.created_at, title: utcStamp(e.created_at), text: time(e.created_at) }),
        el('span', { text: `${what}${by}${e.reason ? ` — ${e.reason}` : ''}` }),
      ]));
    }
    const o = s.outcome || {};
    if (o.status && o.status !== 'open' && o.closed_at) {
      items.push(el('li', { class: 'ev ev-outcome' }, [el('time', { datetime: o.closed_at, title: utcStamp(o.closed_at), text: time(o.closed_at) }),
        el('span', { text: `Outcome: ${o.status.replace('_', ' ')}${o.exit_price ? ` at ${formatPrice(o.exit_price)}` : ''}` })]));
    }
    return el('div', { class: 'history' }, [el('h3', { class: 'subhead', text: 'History' }), el('ol', { class: 'events' }, items)]);
  }

  _amendForm(s) {
    const price = el('input', { type: 'text', inputmode: 'decimal', name: 'price', placeholder: 'New stop', 'aria-label': 'New stop price', class: 'input-sm' });
    const reason = el('input', { type: 'text', name: 'reason', placeholder: 'Reason (optional)', 'aria-label': 'Reason', class: 'input-sm', maxlength: '500' });
    for (const input of [price, reason]) {
      input.value = this.draft[input.name];
      input.addEventListener('input', () => { this.draft[input.name] = input.value; });
    }
    const button = (type, text, cls) => {
      const b = el('button', { type: 'button', class: `btn btn-sm ${cls}`, 'data-amend': type, text });
      b.addEventListener('click', () => {
        // Close and cancel reach every subscriber and cannot be undone: the first
        // click asks, a second one within a few seconds sends.
        if (type !== 'move_stop' && b.dataset.armed !== 'true') {
          b.dataset.armed = 'true';
          b.textContent = `Confirm ${text.toLowerCase()}`;
          setTimeout(() => { b.dataset.armed = 'false'; b.textContent = text; }, CONFIRM_MS);
          return;
        }
        this._post(s.id, type, { price: price.value.trim(), reason: reason.value.trim() }, b);
      });
      return b;
    };
    return el('div', { class: 'amend' }, [
      el('h3', { class: 'subhead', text: 'Amend' }),
      el('div', { class: 'amend-row' }, [price, button('move_stop', 'Move stop', '')]),
      el('div', { class: 'amend-row' }, [reason, button('close', 'Close', ''), button('cancel', 'Cancel', 'btn-danger')]),
    ]);
  }

  async _post(id, type, { price, reason }, buttonEl) {
    const body = { type };
    if (type === 'move_stop') body.price = price;
    if (reason) body.reason = reason;
    buttonEl.disabled = true;
    let text; let ok = false;
    try {
      const res = await fetch(`${this.urls.signals}${id}/events/`, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': this.csrfToken },
        body: JSON.stringify(body),
      });
      let payload = null;
      try { payload = await res.json(); } catch (err) { payload = null; }
      ok = res.ok;
      if (ok) {
        text = `${EVENT_LABELS[type] || type}: recorded.`;
        this.draft = { price: '', reason: '' };
        if (payload && payload.id) this.onChanged?.(id, payload);
      } else if (res.status === 404 || res.status === 405) {
        text = 'Amendments are not available on this server yet.';
      } else {
        text = payload?.detail || Object.entries(payload || {}).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`).join('; ') || `HTTP ${res.status}`;
      }
    } catch (err) {
      text = 'Could not reach the server. Try again.';
    }
    if (this.signal?.id !== id) return;
    this.message = { ok, text };
    this.render();
  }
}
