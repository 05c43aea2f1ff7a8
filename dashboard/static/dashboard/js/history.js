// Scrolling back through history: older pages of the filtered feed from
// /dashboard/history/?before=<oldest id on screen>, loaded when the "Load older"
// row scrolls into view (or its button is pressed). Keyset pages on id never
// overlap or skip, however many live signals arrive meanwhile.

export class HistoryPager {
  constructor({ url, table, moreEl, button, statusEl, filters }) {
    Object.assign(this, { url, table, moreEl, button, statusEl });
    this.filters = filters;
    this.older = null;
    this.loading = false;
    this.seq = 0;
    button.addEventListener('click', () => this.load());
    if (typeof IntersectionObserver !== 'undefined') {
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) this.load();
      }, { rootMargin: '200px' }).observe(moreEl);
    }
  }

  /** New filters or snapshot: `older` is where the first page ended (null: nothing older). */
  reset({ older, filters }) {
    this.seq += 1;
    this.filters = filters;
    this.older = older;
    this.loading = false;
    this.statusEl.textContent = '';
    this.moreEl.hidden = older === null || older === undefined;
  }

  /** Live arrivals pushed rows off the bottom: there is history to page back to. */
  trimmed(oldestTrimmedId) {
    if (this.older === null || this.older === undefined) this.older = oldestTrimmedId;
    this.moreEl.hidden = false;
  }

  async load() {
    if (this.loading || this.older === null || this.older === undefined) return;
    const seq = this.seq;
    this.loading = true;
    this.table.holdTrim = true;
    this.button.disabled = true;
    this.statusEl.textContent = 'Loading…';
    try {
      // From the oldest row on screen: rows trimmed off the bottom by live arrivals
      // are read again rather than skipped.
      const before = this.table.oldestId() ?? this.older;
      const query = new URLSearchParams({ ...this.filters, before: String(before) });
      const res = await fetch(`${this.url}?${query}`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const page = await res.json();
      if (seq !== this.seq) return;
      this.table.append(page.signals || []);
      this.older = page.older ?? null;
      this.statusEl.textContent = '';
      this.moreEl.hidden = this.older === null;
    } catch (err) {
      if (seq === this.seq) this.statusEl.textContent = 'Could not load older signals. Try again.';
    } finally {
      this.table.holdTrim = false;
      if (seq === this.seq) {
        this.loading = false;
        this.button.disabled = false;
      }
    }
  }
}
