// vigil live page: plain JavaScript, no build step. Talks only to the API it is served by.
"use strict";

const POLL_MS = 3000;
const TOKEN_KEY = "vigil.token";
const ACKABLE = new Set(["unacknowledged", "rtn_unacknowledged"]);
let me = null;
let timer = null;

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) { showLogin("Your session has ended; log in again."); throw new Error("401"); }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { const b = await resp.json(); detail = typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail); } catch (e) { /* not JSON */ }
    throw new Error(detail || String(resp.status));
  }
  return resp.status === 204 ? null : resp.json();
}

function fmtTime(iso) {
  if (!iso) return "";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", "");
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fill(tableId, emptyId, rows) {
  const tbody = $(tableId).querySelector("tbody");
  tbody.replaceChildren(...rows);
  $(emptyId).hidden = rows.length > 0;
}

function can(perm) { return me && me.permissions.includes(perm); }

function alertRow(a) {
  const tr = document.createElement("tr");
  tr.dataset.alertId = a.id;
  tr.className = a.state;
  tr.append(cell(fmtTime(a.raised_at)));
  const sev = cell(""); const span = document.createElement("span");
  span.className = "sev-" + a.severity; span.textContent = a.severity; sev.append(span);
  tr.append(sev, cell(a.state, "state"), cell(a.source), cell(a.rule), cell(a.message),
            cell(a.value === null ? "" : a.value.toFixed(2)));
  const actions = cell("");
  if (can("alert.ack") && ACKABLE.has(a.state)) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "ack"; b.dataset.alertId = a.id; b.textContent = "Acknowledge";
    b.addEventListener("click", () => acknowledge(a.id, b));
    actions.append(b);
  } else if (a.acked_by) {
    actions.textContent = "acked by " + a.acked_by;
  }
  tr.append(actions);
  return tr;
}

function deviceRow(d) {
  const tr = document.createElement("tr");
  tr.dataset.device = d.device;
  const values = Object.entries(d.fields).map(([k, v]) => k + "=" + (typeof v === "number" ? +v.toFixed(2) : v)).join("  ");
  tr.append(cell(d.device), cell(d.source), cell(d.state, "state-" + d.state),
            cell(fmtTime(d.last_ts)), cell(values), cell(d.open_alerts || ""), cell(d.shipment || ""));
  return tr;
}

function shipmentRow(s) {
  const tr = document.createElement("tr");
  tr.dataset.shipment = s.id;
  tr.append(cell(s.id), cell(s.asset), cell(s.profile), cell(s.status),
            cell(fmtTime(s.started_at)), cell(fmtTime(s.stopped_at)), cell(s.readings));
  const rep = cell("");
  for (const fmt of ["pdf", "csv"]) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = fmt.toUpperCase();
    b.addEventListener("click", () => download(s.id, fmt));
    rep.append(b, " ");
  }
  tr.append(rep);
  return tr;
}

async function download(id, fmt) {
  const resp = await fetch(`/api/v1/reports/shipments/${encodeURIComponent(id)}?format=${fmt}`,
                           { headers: { "Authorization": "Bearer " + token() } });
  if (!resp.ok) { $("action-error").textContent = "report failed: " + resp.status; return; }
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url; a.download = `shipment-${id}.${fmt}`; a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function acknowledge(id, button) {
  button.disabled = true;
  $("action-error").textContent = "";
  try {
    await api(`/api/v1/alerts/${id}/ack`, { method: "POST", body: JSON.stringify({ comment: "acknowledged on the live page" }) });
  } catch (e) {
    $("action-error").textContent = `alert ${id}: ${e.message}`;
  }
  await refresh();
}

async function refresh() {
  try {
    const [alerts, devices, shipments] = await Promise.all([
      api("/api/v1/alerts?open=true&limit=200"),
      api("/api/v1/devices"),
      api("/api/v1/shipments?limit=50"),
    ]);
    const visible = alerts.filter((a) => a.state !== "normal");
    fill("alerts", "no-alerts", visible.map(alertRow));
    $("alert-count").textContent = visible.filter((a) => ACKABLE.has(a.state)).length || "";
    fill("devices", "no-devices", devices.map(deviceRow));
    fill("shipments", "no-shipments", shipments.map(shipmentRow));
    $("status-line").textContent = "updated " + new Date().toISOString().replace("T", " ").slice(0, 19) + " UTC";
  } catch (e) {
    if (e.message !== "401") $("status-line").textContent = "update failed: " + e.message;
  }
}

function showLogin(message) {
  clearInterval(timer); timer = null; me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("live-view").hidden = true; $("whoami").hidden = true; $("logout").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
}

async function showLive() {
  me = await api("/api/v1/me");
  $("whoami").textContent = `${me.name} (${me.role})`;
  $("whoami").hidden = false; $("logout").hidden = false;
  $("login-view").hidden = true; $("live-view").hidden = false;
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, POLL_MS);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const resp = await fetch("/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  if (!resp.ok) {
    $("login-error").textContent = resp.status === 429 ? "Too many failed logins; wait and retry." : "Wrong user name or password.";
    return;
  }
  const body = await resp.json();
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  $("password").value = "";
  try { await showLive(); } catch (e) { showLogin(e.message); }
});

$("logout").addEventListener("click", async () => {
  try { await api("/api/v1/auth/logout", { method: "POST" }); } catch (e) { /* already gone */ }
  showLogin("Logged out.");
});

fetch("/health").then((r) => r.json()).then((h) => { $("gateway-name").textContent = h.gateway; }).catch(() => {});
if (token()) { showLive().catch(() => showLogin()); } else { showLogin(); }
