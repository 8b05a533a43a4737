// vigil web console: plain JavaScript, no build step, no CDN. Talks only to the API it is
// served by. Texts come from the gateway's gettext catalogs (/i18n/<lang>.json); times are shown
// in the gateway's zone (gateway.timezone) and every time column names it.
"use strict";

const POLL_MS = 5000;
const TOKEN_KEY = "vigil.token";
const LANG_KEY = "vigil.lang";
const ANNUNCIATED = new Set(["unacknowledged", "acknowledged", "rtn_unacknowledged"]);
const ACKABLE = new Set(["unacknowledged", "rtn_unacknowledged"]);
const STATES = ["unacknowledged", "acknowledged", "rtn_unacknowledged", "shelved", "suppressed", "out_of_service", "normal"];
const SEVERITIES = ["critical", "high", "medium", "low"];
const CLOSE_MEANINGS = [
  _m("alarm reviewed, no impact on product quality"),
  _m("excursion assessed, product released"),
  _m("excursion assessed, product quarantined"),
];
const APPROVE_MEANINGS = [
  _m("reviewed and approved"),
  _m("excursion assessed, product released"),
];
const REJECT_MEANINGS = [
  _m("reviewed and rejected"),
  _m("excursion assessed, product rejected"),
];
const LOT_DECISIONS = {
  release: { text: _m("released"), button: "lot-release", title: _m("Release lot {id}"), comment: "optional",
             meanings: [_m("chain reviewed, lot released"), _m("excursions assessed, lot released")] },
  quarantine: { text: _m("quarantined"), button: "lot-quarantine", title: _m("Quarantine lot {id}"), comment: true,
                meanings: [_m("chain reviewed, lot quarantined pending investigation")] },
  reject: { text: _m("rejected"), button: "lot-reject", title: _m("Reject lot {id}"), comment: true,
            meanings: [_m("chain reviewed, lot rejected")] },
};
const VERDICTS = { pass: _m("PASS"), review: _m("REVIEW"), fail: _m("FAIL") };
const LEG_KINDS = { storage: _m("storage"), transport: _m("transport"), cross_dock: _m("cross-dock"), destination: _m("destination") };
const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"];
const LIMIT_COLOURS = ["#d62728", "#ff7f0e", "#1f3fbf", "#6a0dad", "#e377c2"];

let me = null;
let timer = null;
let lang = "en";
let zone = "UTC";
let messages = {};
let tab = "alerts";
let auditOldest = null;
let charts = [];
const missing = new Set();
window.vigilMissing = missing;  // msgids shown without a translation (tests read it)

const $ = (id) => document.getElementById(id);

// -- texts --------------------------------------------------------------------------------------
function _m(msgid) { return msgid; }  // marks a msgid; translated where it is shown

function _(msgid) {
  if (lang === "en" || !msgid) return msgid;
  const t = messages[msgid];
  if (t) return t;
  missing.add(msgid);
  return msgid;
}

function fmt(msgid, args) {
  return _(msgid).replace(/\{(\w+)\}/g, (m, k) => (k in args ? String(args[k]) : m));
}

async function loadLanguage(code) {
  const resp = await fetch(`/i18n/${encodeURIComponent(code)}.json`);
  const body = resp.ok ? await resp.json() : { language: "en", messages: {} };
  lang = body.language;
  messages = body.messages;
  document.documentElement.lang = lang;
  $("lang-select").value = lang;
  applyTexts(document);
}

function applyTexts(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = _(el.dataset.i18n) + (el.hasAttribute("data-zone") ? " (" + zoneLabel() + ")" : "");
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = _(el.dataset.i18nPlaceholder);
  }
}

// -- times --------------------------------------------------------------------------------------
function zoneLabel(date) {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
    .formatToParts(date || new Date());
  const off = (parts.find((p) => p.type === "timeZoneName") || {}).value || "GMT";
  return off === "GMT" ? "UTC" : off.replace("GMT", "UTC");
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return new Intl.DateTimeFormat("sv-SE", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).format(d);
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  s = Math.round(s);
  const parts = [];
  for (const [unit, size] of [["{n}d", 86400], ["{n}h", 3600], ["{n}m", 60], ["{n}s", 1]]) {
    if (s >= size) { parts.push(fmt(unit, { n: Math.floor(s / size) })); s %= size; }
  }
  return parts.join("") || fmt("{n}s", { n: 0 });
}

// a datetime-local input's value is a wall time in the gateway's zone: to UTC ISO
function localInputToIso(value) {
  if (!value) return null;
  const guess = new Date(value + "Z");
  const offsetMin = (() => {
    const l = zoneLabel(guess).match(/UTC([+-])(\d\d):(\d\d)/);
    return l ? (l[1] === "-" ? -1 : 1) * (+l[2] * 60 + +l[3]) : 0;
  })();
  return new Date(guess.getTime() - offsetMin * 60000).toISOString();
}

function num(v, digits = 2) {
  return v === null || v === undefined ? "" : (typeof v === "number" ? (+v.toFixed(digits)).toString() : String(v));
}

// -- API ----------------------------------------------------------------------------------------
function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) { showLogin(_("Your session has ended; log in again.")); throw new Error("401"); }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { const b = await resp.json(); detail = typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail); } catch (e) { /* not JSON */ }
    throw new Error(detail || String(resp.status));
  }
  return resp.status === 204 ? null : resp.json();
}

function can(perm) { return me && me.permissions.includes(perm); }

// -- DOM helpers --------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v === null || v === undefined ? "" : String(v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function cell(text, cls) { return el("td", { text, class: cls || "" }); }

function button(label, cls, onclick) {
  return el("button", { type: "button", class: cls, text: label, onclick });
}

function fill(tableId, emptyId, rows) {
  $(tableId).querySelector("tbody").replaceChildren(...rows);
  if (emptyId) $(emptyId).hidden = rows.length > 0;
}

function showError(message) { $("action-error").textContent = message || ""; }

// -- alerts -------------------------------------------------------------------------------------
function alertOrder(a) {
  if (a.state === "unacknowledged") return a.active ? 0 : 2;
  if (a.active && ANNUNCIATED.has(a.state)) return 1;
  if (a.state === "rtn_unacknowledged") return 3;
  return 4;
}

function alertRow(a) {
  const tr = el("tr", { class: a.state, "data-alert-id": a.id });
  const sev = el("td", {}, el("span", { class: "sev-" + a.severity, text: _(a.severity) }));
  const clock = a.clock === "gateway" ? " ⏱" : "";
  const activated = a.activations > 1 ? fmtTime(a.activated_at) + " (×" + a.activations + ")" : fmtTime(a.activated_at);
  tr.append(
    cell("#" + a.id + " " + a.rule), sev, cell(_(a.state), "state"),
    cell(a.active ? _("active") : _("returned to normal"), a.active ? "cond-active" : "cond-rtn"),
    cell(a.source), cell(a.text, "message"),
    el("td", { text: fmtTime(a.started_at) + clock, title: a.clock === "gateway" ? _("gateway clock (receive time)") : _("device clock (event time)") }),
    cell(activated), cell(fmtTime(a.ended_at)), cell(num(a.value)), cell(num(a.peak), "peak"),
  );
  const actions = el("td", { class: "actions" });
  if (can("alert.ack") && ACKABLE.has(a.state)) actions.append(button(_("Acknowledge"), "ack", () => act(a, "ack", { comment: _("acknowledged in the web console") })));
  if (can("alert.shelve") && ANNUNCIATED.has(a.state)) actions.append(button(_("Shelve"), "shelve", () => shelve(a)));
  if (can("alert.shelve") && a.state === "shelved") actions.append(button(_("Unshelve"), "unshelve", () => act(a, "unshelve", {})));
  if (can("alert.close") && !a.active && !a.closed_at) actions.append(button(_("Close"), "close", () => closeAlert(a)));
  actions.append(button(_("Trail"), "trail", () => showTrail(a.id)));
  tr.append(actions);
  return tr;
}

async function act(a, action, body) {
  showError("");
  try {
    await api(`/api/v1/alerts/${a.id}/${action}`, { method: "POST", body: JSON.stringify(body) });
  } catch (e) {
    if (e.message !== "401") showError(fmt("alert {id}: {error}", { id: a.id, error: e.message }));
  }
  await refresh();
}

function shelve(a) {
  const dlg = $("shelve-dialog");
  $("shelve-error").textContent = "";
  $("shelve-reason").value = "";
  $("shelve-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await api(`/api/v1/alerts/${a.id}/shelve`, { method: "POST", body: JSON.stringify({ reason: $("shelve-reason").value, duration_s: 60 * +$("shelve-minutes").value }) });
      dlg.close();
      await refresh();
    } catch (e) { $("shelve-error").textContent = e.message; }
  };
  dlg.showModal();
}

// the e-signature dialog: password again, meaning chosen (21 CFR 11.50, 11.200); needReason:
// true (a reason is required), false (none asked), "optional" (a comment may be given)
function sign(title, meanings, needReason, submit) {
  const dlg = $("sign-dialog");
  $("sign-title").textContent = title;
  $("sign-signer").textContent = fmt("Signer: {name} ({user})", { name: me.name, user: me.username });
  $("sign-error").textContent = "";
  $("sign-password").value = "";
  $("sign-reason").value = "";
  $("sign-reason-label").hidden = !needReason;
  $("sign-reason").required = needReason === true;
  $("sign-reason-label").querySelector("span").textContent = needReason === "optional" ? _("Comment") : _("Reason");
  $("sign-meaning").replaceChildren(...meanings.map((m) => el("option", { value: _(m), text: _(m) })));
  $("sign-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await submit({ password: $("sign-password").value, meaning: $("sign-meaning").value, reason: $("sign-reason").value });
      dlg.close();
      await refresh();
    } catch (e) { $("sign-error").textContent = e.message; }
  };
  dlg.showModal();
}

function closeAlert(a) {
  sign(fmt("Close alert {id}", { id: a.id }), CLOSE_MEANINGS, true, (s) =>
    api(`/api/v1/alerts/${a.id}/close`, { method: "POST", body: JSON.stringify(s) }));
}

async function showTrail(id) {
  const [a, audit] = await Promise.all([
    api(`/api/v1/alerts/${id}`),
    api(`/api/v1/audit?entity=alert&entity_id=${id}&limit=500`),
  ]);
  $("alert-detail").hidden = false;
  $("alert-detail-title").textContent = `#${a.id} ${a.rule} · ${a.source} · ${a.text}`;
  const sigs = {};
  for (const row of audit) if (row.signature) sigs[row.action.replace("alert.", "")] = row.signature;
  const rows = a.history.map((h) => {
    const sg = h.kind === "closed" ? sigs["close"] : null;
    return el("tr", { "data-kind": h.kind },
      cell(fmtTime(h.wall)), cell(_(h.kind)), cell(h.old_state ? _(h.old_state) : ""), cell(_(h.new_state)),
      cell(h.by || ""), cell(h.reason || ""),
      cell(sg ? `${sg.name} (${sg.username}) · ${sg.meaning} · ${fmtTime(sg.signed_at)}` : "", "signature"));
  });
  fill("alert-trail", null, rows);
  $("alert-detail").scrollIntoView({ block: "nearest" });
}

async function refreshAlerts() {
  const alerts = await api("/api/v1/alerts?open=true&limit=500");
  const current = alerts.filter((a) => a.state !== "normal");
  current.sort((x, y) => alertOrder(x) - alertOrder(y) || (y.activated_at > x.activated_at ? 1 : -1));
  fill("alerts", "no-alerts", current.map(alertRow));
  $("alert-count").textContent = current.filter((a) => ACKABLE.has(a.state)).length || "";
}

async function searchHistory() {
  const q = new URLSearchParams({ limit: "500" });
  for (const [id, key] of [["h-state", "state"], ["h-severity", "severity"], ["h-active", "active"], ["h-source", "source"], ["h-rule", "rule"]]) {
    if ($(id).value) q.set(key, $(id).value);
  }
  const since = localInputToIso($("h-since").value);
  const until = localInputToIso($("h-until").value);
  if (since) q.set("since", since);
  if (until) q.set("until", until);
  const alerts = await api("/api/v1/alerts?" + q);
  fill("history", null, alerts.map(alertRow));
}

// -- charts -------------------------------------------------------------------------------------
function destroyCharts(container) {
  charts = charts.filter((c) => { if (container.contains(c.root)) { c.destroy(); return false; } return true; });
  container.replaceChildren();
}

// One chart per field: the readings, the limits of the rules (dashed, one colour each), and
// alert bands shaded from their start to their end; drag to zoom.
function drawSeries(container, series, bands, extraLimits) {
  for (const s of series) {
    for (const [field, values] of Object.entries(s.fields)) {
      if (!values.some((v) => v !== null)) continue;
      const xs = s.ts.map((t) => new Date(t).getTime() / 1000);
      const unit = s.units[field] || "";
      const limits = (s.limits && s.limits[field]) || (extraLimits && extraLimits[field]) || [];
      const fieldBands = bands.filter((b) => !b.field || b.field === field);
      const box = el("div", { class: "chart", "data-device": s.device, "data-field": field });
      box.append(el("h4", { text: `${s.device} · ${s.labels[field] || field}${unit ? " (" + unit + ")" : ""}` }));
      const data = [xs, values];
      const seriesOpts = [{ label: _("Time") }, { label: s.labels[field] || field, stroke: PALETTE[0], width: 1.5, spanGaps: false }];
      limits.forEach((b, i) => {
        data.push(xs.map(() => b.limit));
        seriesOpts.push({ label: fmt("limit {band}", { band: b.label }), stroke: LIMIT_COLOURS[i % LIMIT_COLOURS.length], dash: [6, 4], width: 1 });
      });
      const opts = {
        width: Math.max(600, Math.min(1100, container.clientWidth || 900)), height: 240,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
        scales: { x: { time: true } },
        axes: [{ label: fmt("time ({zone})", { zone: zone + ", " + zoneLabel() }), values: (u, splits) => axisTimes(splits) }, { label: unit }],
        series: seriesOpts,
        cursor: { drag: { x: true, y: false } },
        hooks: {
          draw: [(u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.fillStyle = "rgba(214, 39, 40, 0.15)";
            for (const b of fieldBands) {
              const x0 = u.valToPos(b.start, "x", true);
              const x1 = u.valToPos(b.end, "x", true);
              const left = Math.max(u.bbox.left, Math.min(x0, x1));
              const right = Math.min(u.bbox.left + u.bbox.width, Math.max(x0, x1));
              if (right > left) ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
            }
            ctx.restore();
          }],
        },
      };
      container.append(box);
      const plot = new uPlot(opts, data, box);
      plot.over.addEventListener("dblclick", () => plot.setScale("x", { min: xs[0], max: xs[xs.length - 1] }));
      charts.push(plot);
      if (fieldBands.length) {
        box.append(el("ul", { class: "bands" }, ...fieldBands.map((b) => el("li", {
          class: "band", "data-alert-id": b.id || "",
          text: `${b.title}: ${fmtTime(new Date(b.start * 1000).toISOString())} – ${b.open ? _("still active") : fmtTime(new Date(b.end * 1000).toISOString())}`,
        }))));
      }
    }
  }
  if (!container.children.length) container.append(el("p", { class: "muted", text: _("No readings in this period.") }));
}

// tick labels in the gateway's zone, 24-hour: "16:05", or "11-30 16:05" over several days
function axisTimes(splits) {
  const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
  return splits.map((v) => {
    const full = fmtTime(new Date(v * 1000).toISOString());
    return span > 86400 ? full.slice(5, 16) : full.slice(11, 16);
  });
}

function alertBands(alerts, until) {
  return alerts.map((a) => {
    const end = a.ended_at ? new Date(a.ended_at).getTime() / 1000 : until;
    return { id: a.id, field: a.field, start: new Date(a.started_at).getTime() / 1000, end, open: !a.ended_at, title: `#${a.id} ${a.rule}` };
  });
}

async function showTrend(device, seconds) {
  const until = Date.now() / 1000;
  const since = new Date((until - seconds) * 1000).toISOString();
  const container = $("trend-charts");
  const [series, devices] = await Promise.all([
    api(`/api/v1/readings/history?device=${encodeURIComponent(device)}&since=${since}`),
    api("/api/v1/devices"),
  ]);
  const dev = devices.find((d) => d.device === device);
  const alerts = dev ? await api(`/api/v1/alerts?source=${encodeURIComponent(dev.source)}&limit=500`) : [];
  const inRange = alerts.filter((a) => !a.ended_at || new Date(a.ended_at).getTime() / 1000 >= until - seconds);
  destroyCharts(container);
  drawSeries(container, series, alertBands(inRange, until), null);
}

// -- devices ------------------------------------------------------------------------------------
function deviceRow(d) {
  const tr = el("tr", { "data-device": d.device });
  const values = el("td", { class: "values" });
  let lastMeasurement = null;
  for (const v of d.values || []) {
    if (v.measurement !== lastMeasurement && (d.measurements || []).length > 1) values.append(el("span", { class: "measurement", text: v.measurement }));
    lastMeasurement = v.measurement;
    const shown = typeof v.value === "boolean" ? (v.value ? _("yes") : _("no")) : num(v.value);
    values.append(el("span", { class: "value", "data-field": v.field, title: v.field, text: `${v.label} ${shown}${v.unit && typeof v.value !== "boolean" ? " " + v.unit : ""}` }));
  }
  tr.append(cell(d.device), cell(d.source), cell(_(d.state), "state-" + d.state), cell(fmtTime(d.last_ts)), values,
            cell(d.open_alerts || ""), cell(d.shipment || ""), cell(d.address ? `${d.collector || ""} ${d.address}` : ""));
  const actions = el("td");
  if (d.kind === "device") actions.append(button(_("Trend"), "trend", () => { openTab("trends"); selectTrendDevice(d.device); }));
  tr.append(actions);
  return tr;
}

async function refreshDevices() {
  const devices = await api("/api/v1/devices");
  fill("devices", "no-devices", devices.map(deviceRow));
  return devices;
}

async function loadTrendDevices() {
  const devices = await api("/api/v1/devices");
  const sel = $("trend-device");
  const current = sel.value;
  sel.replaceChildren(...devices.filter((d) => d.kind === "device").map((d) => el("option", { value: d.device, text: `${d.device} (${d.source})` })));
  if (current) sel.value = current;
}

async function selectTrendDevice(device) {
  await loadTrendDevices();
  $("trend-device").value = device;
  await showTrend(device, +$("trend-range").value);
}

// -- cycles -------------------------------------------------------------------------------------
function holdOf(c) {
  for (const r of Object.values(c.results || {})) if (r.hold_s !== undefined) return r.hold_s;
  return null;
}

function cycleRow(c) {
  const tr = el("tr", { "data-cycle-id": c.id, class: "verdict-" + (c.verdict || "none") });
  const verdict = c.verdict === "pass" ? _("Passed") : c.verdict === "fail" ? _("Failed") : (c.status === "running" ? _("running") : _("Not judged"));
  const alerts = el("td");
  for (const id of c.alert_ids) alerts.append(el("a", { href: "#", text: "#" + id, onclick: (ev) => { ev.preventDefault(); openTab("alerts"); showTrail(id); } }), " ");
  const report = el("td");
  for (const f of ["pdf", "csv"]) report.append(button(f.toUpperCase(), "report-" + f, () => download(`/api/v1/cycles/${c.id}/report?format=${f}`, `cycle-${c.id}.${f}`)));
  tr.append(cell(c.batch || "-"), cell(c.device), cell(fmtTime(c.start)), cell(fmtTime(c.end)), cell(fmtDuration(c.duration_s)),
            cell(verdict, "verdict"), cell(num(c.f0_min)), cell(fmtDuration(holdOf(c))), cell((c.reasons_text || []).join("; ")), alerts, report);
  tr.addEventListener("click", (ev) => { if (ev.target.tagName !== "BUTTON" && ev.target.tagName !== "A") showCycle(c.id); });
  return tr;
}

async function refreshCycles() {
  const cycles = await api("/api/v1/cycles?limit=200");
  fill("cycles", "no-cycles", cycles.map(cycleRow));
}

async function showCycle(id) {
  const [c, series] = await Promise.all([api(`/api/v1/cycles/${id}`), api(`/api/v1/cycles/${id}/readings`)]);
  $("cycle-detail").hidden = false;
  $("cycle-detail-title").textContent = `${c.batch || "#" + c.id} · ${c.device} · ${(c.reasons_text || []).join("; ")}`;
  const range = (o) => Object.entries(o || {}).map(([k, v]) => `${k} ${num(v)}`).join(", ");
  fill("cycle-phases", null, c.phases.map((p) => el("tr", {}, cell(p.phase), cell(fmtTime(p.start)), cell(fmtTime(p.end)), cell(range(p.min)), cell(range(p.max)))));
  const end = c.end ? new Date(c.end).getTime() / 1000 : Date.now() / 1000;
  const container = $("cycle-charts");
  destroyCharts(container);
  const alerts = await Promise.all(c.alert_ids.map((i) => api(`/api/v1/alerts/${i}`)));
  drawSeries(container, series.map((s) => ({ ...s, fields: Object.fromEntries(Object.entries(s.fields).slice(0, 6)) })), alertBands(alerts, end), null);
}

// -- shipments ----------------------------------------------------------------------------------
function shipmentRow(s) {
  const tr = el("tr", { "data-shipment": s.id });
  tr.append(cell(s.id), cell(s.product), cell([s.origin, s.destination].filter(Boolean).join(" → ")), cell(s.asset), cell(s.profile),
            cell(_(s.status), "status"), cell(fmtTime(s.started_at)), cell(fmtTime(s.stopped_at)), cell(s.readings));
  const actions = el("td", { class: "actions" });
  actions.append(button(_("Review"), "review", () => review(s.id)));
  for (const f of ["pdf", "csv"]) actions.append(button(f.toUpperCase(), "report-" + f, () => download(`/api/v1/reports/shipments/${encodeURIComponent(s.id)}?format=${f}`, `shipment-${s.id}.${f}`)));
  if (can("shipment.write") && s.status === "active") actions.append(button(_("Stop"), "stop", async () => {
    try { await api(`/api/v1/shipments/${encodeURIComponent(s.id)}/stop`, { method: "POST", body: JSON.stringify({}) }); } catch (e) { showError(e.message); }
    await refresh();
  }));
  tr.append(actions);
  return tr;
}

async function refreshShipments() {
  const shipments = await api("/api/v1/shipments?limit=100");
  fill("shipments", "no-shipments", shipments.map(shipmentRow));
  $("start-form").hidden = !can("shipment.write");
}

async function review(id) {
  const sid = encodeURIComponent(id);
  const [s, r, series] = await Promise.all([
    api(`/api/v1/shipments/${sid}`), api(`/api/v1/shipments/${sid}/review`), api(`/api/v1/shipments/${sid}/readings`),
  ]);
  const panel = $("shipment-review");
  panel.hidden = false;
  panel.dataset.shipment = id;
  $("review-title").textContent = `${s.id} · ${s.product || s.profile} · ${[s.origin, s.destination].filter(Boolean).join(" → ")} · ${_(s.status)}`;
  const v = $("review-verdict");
  v.className = "verdict verdict-" + r.verdict.code;
  v.replaceChildren(el("strong", { text: _("Verdict") + ": " + r.verdict.title }), ...r.verdict.reasons.map((x) => el("div", { class: "reason", text: x })));
  const bands = r.excursions.map((x) => ({ id: x.alert_ids.join(","), field: "temp_c", start: new Date(x.start).getTime() / 1000, end: new Date(x.end).getTime() / 1000, title: fmt("excursion on {device}, peak {peak}", { device: x.device, peak: num(x.peak) }) }));
  const limits = { temp_c: r.limits.bands.map((b) => ({ op: b.op, limit: b.limit, label: b.label })) };
  const container = $("review-charts");
  destroyCharts(container);
  drawSeries(container, series.map((x) => ({ ...x, fields: Object.fromEntries(Object.entries(x.fields).filter(([k]) => k === "temp_c" || k === "rh_pct")) })), bands, limits);
  fill("review-stats", null, [r.summary, ...r.devices].map((d) => el("tr", {}, cell(d.device), cell(d.serial || ""), cell(d.interval_s ? fmtDuration(d.interval_s) : ""),
    cell(d.readings), cell(num(d.min)), cell(num(d.max)), cell(num(d.mean)), cell(num(d.mkt), "mkt"),
    cell(d.completeness === undefined ? "" : num(d.completeness * 100, 1) + " %"), cell(d.gaps ? d.gaps.length : ""))));
  fill("review-excursions", null, r.excursions.map((x) => el("tr", {}, cell(x.device), cell(fmtTime(x.start)), cell(fmtTime(x.end)),
    cell(fmtDuration(x.duration_s)), cell(num(x.peak)), cell(x.alert_ids.map((i) => "#" + i).join(" ")))));
  const sig = s.signature || s.rejection;
  $("review-signature").textContent = sig
    ? fmt("{status} by {name} ({user}) at {time}: {meaning}", { status: _(s.status), name: sig.name, user: sig.username, time: fmtTime(sig.signed_at) + " " + zoneLabel(), meaning: sig.meaning })
    : _("Not signed yet.");
  const open = s.status === "stopped" && can("report.sign");
  $("approve-button").hidden = !open;
  $("reject-button").hidden = !open;
  $("approve-button").onclick = () => sign(fmt("Approve shipment {id}", { id }), APPROVE_MEANINGS, false, async (x) => {
    await api(`/api/v1/shipments/${sid}/approve`, { method: "POST", body: JSON.stringify({ password: x.password, meaning: x.meaning }) });
    await review(id);
  });
  $("reject-button").onclick = () => sign(fmt("Reject shipment {id}", { id }), REJECT_MEANINGS, true, async (x) => {
    await api(`/api/v1/shipments/${sid}/reject`, { method: "POST", body: JSON.stringify(x) });
    await review(id);
  });
}

async function download(path, name) {
  showError("");
  const resp = await fetch(path, { headers: { "Authorization": "Bearer " + token() } });
  if (!resp.ok) { showError(fmt("report failed: {status}", { status: resp.status })); return; }
  const url = URL.createObjectURL(await resp.blob());
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// -- lots ----------------------------------------------------------------------------------------
function decisionText(d) {
  return d ? _((LOT_DECISIONS[d] || { text: d }).text) : _("not decided");
}

function lotRow(l) {
  const tr = el("tr", { "data-lot": l.id });
  const decision = el("td", { class: "decision" }, el("span", { text: decisionText(l.decision) }));
  if (l.needs_review) decision.append(" ", el("span", { class: "needs-review", text: _("needs review") }));
  tr.append(cell(l.id), cell(l.product), cell(l.profile), cell(l.expiry), decision);
  const actions = el("td", { class: "actions" });
  actions.append(button(_("Chain"), "chain", () => openLot(l.id).catch((e) => showError(e.message))));
  tr.append(actions);
  return tr;
}

async function refreshLots() {
  const lots = await api("/api/v1/lots?limit=200");
  fill("lots", "no-lots", lots.map(lotRow));
}

function pct(share, digits = 0) { return share === null || share === undefined ? "" : num(share * 100, digits) + " %"; }

function lines(items) { return el("td", {}, ...items.map((t) => el("div", { text: t }))); }

function legRow(g) {
  const leg = g.leg, s = g.summary;
  const where = (leg.site ? leg.site + "/" : "") + leg.asset + (leg.origin || leg.destination ? ` (${leg.origin} → ${leg.destination})` : "");
  const out = Object.entries(s.out_of_range_s).map(([band, secs]) => `${band}: ${fmtDuration(secs)}`);
  const exc = s.excursions.map((x) => `${fmtTime(x.start)} – ${fmtTime(x.end)} (${fmtDuration(x.seconds)})`);
  return el("tr", { "data-leg": leg.id }, cell(leg.id), cell(_(LEG_KINDS[leg.kind] || leg.kind)), cell(where),
    cell(fmtTime(leg.started_at)), cell(leg.stopped_at ? fmtTime(leg.stopped_at) : _("open")), cell(s.readings),
    cell(num(s.min_c)), cell(num(s.max_c)), cell(num(s.mean_c)), cell(num(s.mkt_c), "mkt"), lines(out),
    lines([String(s.excursions.length), ...exc]), cell(s.completeness ? pct(s.completeness.share, 1) : ""));
}

function budgetRows(b) {
  const state = (bad) => (bad ? _("exhausted") : _("within"));
  const rows = b.bands.map((x) => el("tr", { "data-band": x.name, class: x.exhausted ? "exhausted" : "" },
    cell(x.name), cell(x.band), cell(fmtDuration(x.allowed_s)), cell(fmtDuration(x.consumed_s)),
    cell(fmtDuration(x.remaining_s), "remaining"), cell(pct(x.share)), cell(state(x.exhausted), "state")));
  const ft = b.freeze_thaw;
  if (ft) rows.push(el("tr", { "data-band": "freeze_thaw", class: ft.exhausted ? "exhausted" : "" },
    cell(_("freeze/thaw")), cell(`T < ${ft.below_c} °C`), cell(ft.allowed), cell(ft.count), cell(ft.remaining, "remaining"),
    cell(pct(ft.share)), cell(state(ft.exhausted), "state")));
  const m = b.mkt;
  if (m) rows.push(el("tr", { "data-band": "mkt", class: m.exceeded ? "exhausted" : "" },
    cell("MKT"), cell(`≤ ${m.limit_c} °C`), cell(`${m.limit_c} °C`), cell(m.mkt_c === null ? "" : num(m.mkt_c) + " °C"),
    cell(""), cell(""), cell(m.exceeded ? _("exceeded") : _("within"), "state")));
  return rows;
}

async function openLot(id) {
  const lid = encodeURIComponent(id);
  const c = await api(`/api/v1/lots/${lid}/chain?lang=${encodeURIComponent(lang)}`);
  const panel = $("lot-chain");
  panel.hidden = false;
  panel.dataset.lot = id;
  const lot = c.lot;
  $("chain-title").textContent = `${lot.id} · ${lot.product} · ${lot.profile} · ` + fmt("expires {date}", { date: lot.expiry });
  const v = $("chain-verdict");
  v.className = "verdict verdict-" + c.verdict;
  v.replaceChildren(el("strong", { text: _("Verdict") + ": " + _(VERDICTS[c.verdict] || c.verdict) }),
    ...c.reasons.map((x) => el("div", { class: "reason", text: x })));
  $("no-budget").hidden = c.budget !== null;
  fill("chain-budget", null, c.budget ? budgetRows(c.budget) : []);
  fill("chain-legs", null, c.legs.map(legRow));
  const t = c.totals;
  const out = Object.entries(t.out_of_range_s).map(([band, secs]) => `${band}: ${fmtDuration(secs)}`);
  $("chain-legs").querySelector("tfoot").replaceChildren(el("tr", { class: "totals" }, cell(_("whole chain")), cell(""), cell(""),
    cell(fmtTime(t.first)), cell(fmtTime(t.last)), cell(t.readings), cell(num(t.min_c)), cell(num(t.max_c)), cell(num(t.mean_c)),
    cell(num(t.mkt_c), "mkt"), lines(out), lines([String(t.excursions), t.excursion_s ? fmtDuration(t.excursion_s) : ""]), cell(pct(t.completeness, 1))));
  $("chain-gaps").textContent = t.gaps_between_legs.length
    ? fmt("Gaps between legs: {gaps}", { gaps: t.gaps_between_legs.map((g) => fmt("{start} to {end}", { start: fmtTime(g.start), end: fmtTime(g.end) })).join(_("; ")) })
    : "";
  const d = c.decision;
  const dp = $("chain-decision");
  if (d) {
    dp.replaceChildren(el("span", { class: "decided", "data-decision": d.decision, text: fmt("{status} by {name} ({user}) at {time}: {meaning}", {
      status: decisionText(d.decision), name: d.signer_name, user: d.decided_by, time: fmtTime(d.decided_at) + " " + zoneLabel(), meaning: d.meaning,
    }) + (d.comment ? " · " + d.comment : "") }));
    if (d.needs_review) dp.append(el("div", { class: "needs-review", text: _("Needs review") + ": " + (d.review_reason || "") }));
  } else {
    dp.replaceChildren(el("span", { class: "decided", text: _("No decision yet.") }));
  }
  for (const [code, spec] of Object.entries(LOT_DECISIONS)) {
    const b = $(spec.button);
    b.hidden = !can("report.sign");
    b.onclick = () => sign(fmt(spec.title, { id }), spec.meanings, spec.comment, async (x) => {
      const body = { decision: code, password: x.password, meaning: x.meaning, comment: x.reason || null };
      await api(`/api/v1/lots/${lid}/decision`, { method: "POST", body: JSON.stringify(body) });
      await openLot(id);
    });
  }
  for (const f of ["pdf", "csv"]) {
    $("chain-" + f).onclick = () => download(`/api/v1/reports/lots/${lid}?format=${f}&lang=${encodeURIComponent(lang)}`, `chain-${id}.${f}`);
  }
}

// -- audit trail --------------------------------------------------------------------------------
function auditRow(r) {
  const sig = r.signature ? `${r.signature.name} (${r.signature.username}) · ${r.signature.meaning}` : "";
  const change = el("td");
  if (r.old_value !== null || r.new_value !== null) {
    const d = el("details", {}, el("summary", { text: _("show") }));
    d.append(el("pre", { text: JSON.stringify({ old: r.old_value, new: r.new_value }, null, 1) }));
    change.append(d);
  }
  return el("tr", { "data-seq": r.seq }, cell(r.seq), cell(fmtTime(r.at)), cell(r.actor), cell(r.action),
    cell(`${r.entity} ${r.entity_id}`), cell(r.reason || ""), cell(sig, "signature"), change);
}

async function searchAudit(older) {
  const q = new URLSearchParams({ limit: "100", newest_first: "true" });
  for (const [id, key] of [["a-actor", "actor"], ["a-action", "action"], ["a-entity", "entity"], ["a-entity-id", "entity_id"]]) {
    if ($(id).value) q.set(key, $(id).value);
  }
  if (older && auditOldest) q.set("before_seq", auditOldest);
  const [rows, verify] = await Promise.all([api("/api/v1/audit?" + q), api("/api/v1/audit/verify")]);
  const body = $("audit").querySelector("tbody");
  if (!older) body.replaceChildren();
  body.append(...rows.map(auditRow));
  auditOldest = rows.length ? rows[rows.length - 1].seq : auditOldest;
  $("audit-older").hidden = rows.length < 100;
  const v = $("audit-verify");
  v.className = "verdict " + (verify.ok ? "verdict-within_limits" : "verdict-broken");
  v.replaceChildren(
    el("strong", { text: verify.ok ? fmt("Audit chain verified: {rows} rows intact", { rows: verify.rows }) : fmt("Audit chain BROKEN at row {row}: {problem}", { row: verify.first_broken, problem: verify.problem }) }),
    el("div", { class: "head", text: fmt("Recorded head: row {seq}, hash {hash}", { seq: verify.head_seq, hash: verify.head_hash }) }),
  );
}

// -- navigation and polling ----------------------------------------------------------------------
async function refresh() {
  if (!me) return;
  try {
    if (tab === "alerts") await refreshAlerts();
    else if (tab === "devices") await refreshDevices();
    else if (tab === "shipments") await refreshShipments();
    else if (tab === "lots") await refreshLots();
    else if (tab === "cycles") await refreshCycles();
    $("status-line").textContent = fmt("updated {time}", { time: fmtTime(new Date().toISOString()) + " " + zoneLabel() });
  } catch (e) {
    if (e.message !== "401") $("status-line").textContent = fmt("update failed: {error}", { error: e.message });
  }
}

async function openTab(name) {
  tab = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("current", b.dataset.tab === name);
  for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== "tab-" + name;
  showError("");
  try {
    if (name === "alerts") { await refreshAlerts(); await searchHistory(); }
    else if (name === "trends") { await loadTrendDevices(); if ($("trend-device").value) await showTrend($("trend-device").value, +$("trend-range").value); }
    else if (name === "audit") { auditOldest = null; await searchAudit(false); }
    else await refresh();
  } catch (e) { if (e.message !== "401") showError(e.message); }
}

function fillSelect(id, values) {
  const sel = $(id);
  const first = sel.options[0];
  sel.replaceChildren(first, ...values.map((v) => el("option", { value: v, text: _(v) })));
}

function showLogin(message) {
  clearInterval(timer); timer = null; me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("live-view").hidden = true; $("whoami").hidden = true; $("logout").hidden = true; $("tabs").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
}

async function showLive() {
  me = await api("/api/v1/me");
  zone = me.timezone;
  await loadLanguage(me.display_language);
  fillSelect("h-state", STATES);
  fillSelect("h-severity", SEVERITIES);
  $("whoami").textContent = `${me.name} (${_(me.role)})`;
  $("gateway-name").textContent = me.gateway;
  $("whoami").hidden = false; $("logout").hidden = false; $("tabs").hidden = false;
  $("login-view").hidden = true; $("live-view").hidden = false;
  await openTab(tab);
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
    $("login-error").textContent = resp.status === 429 ? _("Too many failed logins; wait and retry.") : _("Wrong user name or password.");
    return;
  }
  const body = await resp.json();
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  $("password").value = "";
  try { await showLive(); } catch (e) { showLogin(e.message); }
});

$("logout").addEventListener("click", async () => {
  try { await api("/api/v1/auth/logout", { method: "POST" }); } catch (e) { /* already gone */ }
  showLogin(_("Logged out."));
});

$("lang-select").addEventListener("change", async () => {
  const code = $("lang-select").value;
  localStorage.setItem(LANG_KEY, code);
  if (me) {
    try { await api("/api/v1/me/language", { method: "POST", body: JSON.stringify({ language: code }) }); } catch (e) { showError(e.message); }
    await showLive();
  } else {
    await loadLanguage(code);
  }
});

for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => openTab(b.dataset.tab));
for (const b of document.querySelectorAll("dialog .cancel")) b.addEventListener("click", () => b.closest("dialog").close());
$("history-form").addEventListener("submit", async (ev) => { ev.preventDefault(); try { await searchHistory(); } catch (e) { showError(e.message); } });
$("audit-form").addEventListener("submit", async (ev) => { ev.preventDefault(); auditOldest = null; try { await searchAudit(false); } catch (e) { showError(e.message); } });
$("audit-older").addEventListener("click", () => searchAudit(true).catch((e) => showError(e.message)));
$("trend-form").addEventListener("submit", async (ev) => { ev.preventDefault(); try { await showTrend($("trend-device").value, +$("trend-range").value); } catch (e) { showError(e.message); } });
$("start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { asset: $("s-asset").value, profile: $("s-profile").value, product: $("s-product").value, origin: $("s-origin").value, destination: $("s-destination").value };
  try { await api("/api/v1/shipments", { method: "POST", body: JSON.stringify(body) }); } catch (e) { showError(e.message); }
  await refresh();
});

(async () => {
  await loadLanguage(localStorage.getItem(LANG_KEY) || navigator.language || "zh-CN");
  if (token()) { showLive().catch(() => showLogin()); } else { showLogin(); }
})();
