// Subscriptions and webhooks pages: plain JS over the same REST API bots use
// (/api/channels/, /api/webhooks/, /api/subscriptions/browser/). Session auth with
// the CSRF header; every user-supplied text goes in through textContent.

const boot = JSON.parse(document.getElementById("integrations-boot").textContent);
const page = document.querySelector("script[data-page]").dataset.page;

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  return { ok: response.ok, status: response.status, data };
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(node, rest);
  Object.assign(node.dataset, dataset || {});
  for (const child of children) node.append(child);
  return node;
}

function readFilters(form) {
  const checked = (name) => [...form.querySelectorAll(`[data-filters] input[name="${name}"]:checked`)].map((i) => i.value);
  const sources = form.querySelector('[data-filters] input[name="sources"]').value
    .split(",").map((s) => s.trim()).filter(Boolean);
  return {
    events: checked("events"),
    markets: checked("markets"),
    sources,
    min_confidence: Number(form.querySelector('[data-filters] input[name="min_confidence"]').value || 0),
  };
}

function writeFilters(form, values) {
  for (const name of ["events", "markets"]) {
    for (const input of form.querySelectorAll(`[data-filters] input[name="${name}"]`)) {
      input.checked = (values[name] || []).includes(input.value);
    }
  }
  form.querySelector('[data-filters] input[name="sources"]').value = (values.sources || []).join(", ");
  form.querySelector('[data-filters] input[name="min_confidence"]').value = values.min_confidence ?? 0;
}

function describeFilters(item) {
  const markets = item.markets.length ? item.markets.join(", ") : "all markets";
  const sources = item.sources.length ? item.sources.join(", ") : "all sources";
  return `${item.events.join(", ")} · ${markets} · ${sources} · confidence ≥ ${item.min_confidence}`;
}

function showErrors(form, status, answer) {
  for (const node of form.querySelectorAll("[data-error]")) node.textContent = "";
  if (answer.ok) return;
  const errors = answer.data || {};
  let unplaced = [];
  for (const [field, messages] of Object.entries(errors)) {
    const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
    const slot = form.querySelector(`[data-error="${field}"]`);
    if (slot) slot.textContent = text; else unplaced.push(text);
  }
  status.textContent = unplaced.length ? unplaced.join(" ") : `Not saved (HTTP ${answer.status}).`;
}

function stateCell(item) {
  if (item.paused_reason) return el("td", { className: "int-state int-paused", textContent: item.paused_reason });
  return el("td", { className: "int-state", textContent: item.enabled ? "Active" : "Disabled" });
}

function actionButtons(item, url, reload, extra = []) {
  const toggle = el("button", {
    type: "button", className: "btn btn-ghost btn-sm",
    textContent: item.enabled && !item.paused_reason ? "Disable" : "Enable",
  });
  toggle.addEventListener("click", async () => {
    await api("PATCH", `${url}${item.id}/`, { enabled: !(item.enabled && !item.paused_reason) });
    reload();
  });
  const remove = el("button", { type: "button", className: "btn btn-ghost btn-sm", textContent: "Delete" });
  remove.addEventListener("click", async () => {
    await api("DELETE", `${url}${item.id}/`);
    reload();
  });
  return el("td", { className: "int-actions" }, [...extra, toggle, remove]);
}

// --- subscriptions page ------------------------------------------------------------------

async function initSubscriptions() {
  const browserForm = document.getElementById("browser-form");
  const browserStatus = document.getElementById("browser-status");
  const prefs = await api("GET", boot.urls.browser);
  if (prefs.ok) {
    writeFilters(browserForm, prefs.data);
    browserForm.querySelector('input[name="notify"]').checked = prefs.data.notify;
  }
  browserForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { ...readFilters(browserForm), notify: browserForm.querySelector('input[name="notify"]').checked };
    const answer = await api("PUT", boot.urls.browser, body);
    showErrors(browserForm, browserStatus, answer);
    if (answer.ok) browserStatus.textContent = "Saved.";
  });

  const form = document.getElementById("channel-form");
  const status = document.getElementById("channel-status");
  const kindSelect = form.querySelector('select[name="kind"]');
  const syncKind = () => {
    for (const row of form.querySelectorAll("[data-kind]")) row.hidden = row.dataset.kind !== kindSelect.value;
  };
  kindSelect.addEventListener("change", syncKind);
  syncKind();

  const tbody = document.querySelector("#channels-table tbody");
  async function reload() {
    const answer = await api("GET", boot.urls.channels);
    tbody.replaceChildren();
    const rows = answer.ok ? answer.data : [];
    document.getElementById("channels-empty").hidden = rows.length > 0;
    for (const item of rows) {
      const target = item.kind === "telegram"
        ? `chat ${item.chat_id}${item.topic_id ? ` · topic ${item.topic_id}` : ""}`
        : item.url;
      tbody.append(el("tr", { dataset: { id: item.id } }, [
        el("td", { textContent: item.kind + (item.name ? ` · ${item.name}` : "") }),
        el("td", { textContent: target }),
        el("td", { textContent: describeFilters(item) }),
        stateCell(item),
        actionButtons(item, boot.urls.channels, reload),
      ]));
    }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const kind = kindSelect.value;
    const body = { kind, name: form.elements.name.value, ...readFilters(form) };
    if (kind === "telegram") {
      body.bot_token = form.elements.bot_token.value;
      body.chat_id = form.elements.chat_id.value;
      if (form.elements.topic_id.value) body.topic_id = Number(form.elements.topic_id.value);
    } else {
      body.url = form.elements.url.value;
    }
    const answer = await api("POST", boot.urls.channels, body);
    showErrors(form, status, answer);
    if (answer.ok) {
      status.textContent = "Channel added.";
      form.elements.bot_token.value = "";
      await reload();
    }
  });
  await reload();
}

// --- webhooks page -------------------------------------------------------------------------

async function showDeliveries(item) {
  const card = document.getElementById("deliveries-card");
  const tbody = document.querySelector("#deliveries-table tbody");
  const answer = await api("GET", `${boot.urls.webhooks}${item.id}/deliveries/`);
  const rows = answer.ok ? answer.data : [];
  card.hidden = false;
  document.getElementById("deliveries-title").textContent = `Deliveries of the last 24 h · ${item.url}`;
  document.getElementById("deliveries-empty").hidden = rows.length > 0;
  tbody.replaceChildren();
  for (const row of rows) {
    const redeliver = el("button", { type: "button", className: "btn btn-ghost btn-sm", textContent: "Redeliver" });
    redeliver.addEventListener("click", async () => {
      const sent = await api("POST", `${boot.urls.webhooks}${item.id}/redeliver/`, { event_id: row.event_id });
      redeliver.textContent = sent.ok ? "Queued" : "Refused";
      redeliver.disabled = true;
    });
    const result = row.success ? `OK ${row.status_code}` : (row.status_code ? `HTTP ${row.status_code}` : "No answer");
    tbody.append(el("tr", { dataset: { id: row.id } }, [
      el("td", { textContent: new Date(row.started_at).toLocaleString() }),
      el("td", { textContent: `${row.event_type} #${row.signal_id}` }),
      el("td", { textContent: String(row.attempt) }),
      el("td", { className: row.success ? "int-ok" : "int-fail", textContent: result }),
      el("td", { textContent: row.latency_ms === null ? "—" : `${row.latency_ms} ms` }),
      el("td", { textContent: row.error || row.response_excerpt }),
      el("td", { className: "int-actions" }, [redeliver]),
    ]));
  }
}

async function initWebhooks() {
  const form = document.getElementById("webhook-form");
  const status = document.getElementById("webhook-status");
  const tbody = document.querySelector("#webhooks-table tbody");
  async function reload() {
    const answer = await api("GET", boot.urls.webhooks);
    const rows = answer.ok ? answer.data : [];
    document.getElementById("webhooks-empty").hidden = rows.length > 0;
    tbody.replaceChildren();
    for (const item of rows) {
      const deliveries = el("button", { type: "button", className: "btn btn-ghost btn-sm", textContent: "Deliveries" });
      deliveries.addEventListener("click", () => showDeliveries(item));
      tbody.append(el("tr", { dataset: { id: item.id } }, [
        el("td", { textContent: item.url }),
        el("td", { textContent: describeFilters(item) }),
        stateCell(item),
        actionButtons(item, boot.urls.webhooks, reload, [deliveries]),
      ]));
    }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await api("POST", boot.urls.webhooks, { url: form.elements.url.value, ...readFilters(form) });
    showErrors(form, status, answer);
    if (answer.ok) {
      document.getElementById("secret-value").textContent = answer.data.secret;
      document.getElementById("secret-box").hidden = false;
      status.textContent = "Endpoint added.";
      form.reset();
      await reload();
    }
  });
  await reload();
}

(page === "subscriptions" ? initSubscriptions : initWebhooks)();
