// The timeline page: every number on it comes from the service's JSON API.
"use strict";

const app = document.getElementById("app");
const $ = (id) => document.getElementById(id);
const DAY = 86400000;
const state = {
  country: app.dataset.country,
  commodity: app.dataset.commodity,
  asOf: app.dataset.asOf,
  knownAt: app.dataset.knownAt || null,
  today: app.dataset.today,
  events: [],
  moments: [],
  intervals: [],
  needsToken: false,
};

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) q.set(key, value);
  return q.toString();
}

// The reader token lives in this tab's sessionStorage only: never in the URL, never in
// localStorage. It is sent as `Authorization: Bearer` on every API call once given.
const TOKEN_KEY = "sanctions-timeline.reader-token";
const storedToken = () => { try { return sessionStorage.getItem(TOKEN_KEY); } catch (error) { return null; } };
const forgetToken = () => { try { sessionStorage.removeItem(TOKEN_KEY); } catch (error) { /* storage off */ } };
function keepToken(token) {
  try { sessionStorage.setItem(TOKEN_KEY, token); return true; } catch (error) { return false; }
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, params) {
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const search = query(params || {});
  const response = await fetch(search ? `${path}?${search}` : path, { headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.detail || response.statusText);
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

const keyParams = () => ({ country: state.country, commodity: state.commodity });
const toDay = (iso) => Date.parse(iso + "T00:00:00Z");
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

function syncUrl() {
  const params = { ...keyParams(), as_of: state.asOf, known_at: state.knownAt };
  history.replaceState(null, "", `/?${query(params)}`);
}

async function loadEvents() {
  const events = [];
  let after = null;
  for (let page = 0; page < 20; page++) {
    const body = await api("/v1/events", { ...keyParams(), limit: 1000, after });
    events.push(...body.events);
    if (body.next_after === null) break;
    after = body.next_after;
  }
  state.events = events;
  state.moments = [...new Set(events.map((e) => e.recorded_at))].sort();
  const slider = $("known_at_slider");
  slider.max = String(state.moments.length);
  const index = state.knownAt ? state.moments.filter((m) => m <= state.knownAt).length : state.moments.length;
  slider.value = String(index);
  describeKnownAt();
}

function describeKnownAt() {
  $("known_at_text").value = state.knownAt ? state.knownAt : "now";
  $("known_at_slider").setAttribute("aria-valuetext", state.knownAt ? `as recorded by ${state.knownAt}` : "as recorded now");
}

async function drawStatus() {
  const body = await api("/v1/status", { ...keyParams(), as_of: state.asOf, known_at: state.knownAt });
  $("status-date").textContent = body.as_of;
  $("status-known").textContent = `as recorded by ${state.knownAt ? body.known_at : "now"}`;
  const rows = body.results.map((r) =>
    el("tr", { "data-stream": r.stream },
      el("th", { scope: "row" }, r.stream),
      el("td", { class: `status status-${r.status}` }, r.status),
      el("td", {}, r.measures.join(", ") || "—"),
      el("td", {}, r.since || "—")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "4" }, "Nothing in force or recorded for this selection on this date.")));
  $("status-table").tBodies[0].replaceChildren(...rows);
}

async function drawTimeline() {
  const body = await api("/v1/timeline", { ...keyParams(), known_at: state.knownAt });
  state.intervals = body.intervals;
  const streams = [...new Set(body.intervals.map((i) => i.stream))];
  const chart = $("chart");
  if (!streams.length) {
    chart.replaceChildren(el("p", { class: "muted" }, "No sanctions recorded for this selection."));
    return;
  }
  const starts = body.intervals.map((i) => toDay(i.valid_from));
  const start = Math.min(...starts) - 120 * DAY;
  const end = Math.max(toDay(state.today), toDay(state.asOf), ...starts) + 240 * DAY;
  const left = 130, width = 1000, rowHeight = 34, top = 28;
  const x = (ms) => left + ((ms - start) / (end - start)) * (width - left - 10);
  const height = top + streams.length * rowHeight + 10;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-label": `Timeline of ${streams.length} sanctions streams for ${state.country}` });
  const axis = svg("g", { class: "axis" });
  for (let year = new Date(start).getUTCFullYear() + 1; year <= new Date(end).getUTCFullYear(); year++) {
    const at = x(Date.UTC(year, 0, 1));
    axis.append(svg("line", { x1: at, x2: at, y1: top - 6, y2: height - 8 }),
                svg("text", { x: at + 3, y: top - 10 }, String(year)));
  }
  root.append(axis);
  const known = new Set(streams);
  streams.forEach((stream, row) => {
    const y = top + row * rowHeight;
    const group = svg("g", { "data-stream": stream });
    group.append(svg("text", { x: 4, y: y + rowHeight / 2 + 4 }, stream.split("/").filter((_, i) => i !== 1).join(" · ")));
    for (const interval of body.intervals.filter((i) => i.stream === stream)) {
      const from = x(toDay(interval.valid_from));
      const to = x(interval.valid_to ? toDay(interval.valid_to) : end);
      const label = `${stream}: ${interval.status} from ${interval.valid_from}` +
        `${interval.valid_to ? " to " + interval.valid_to : ""}` +
        (interval.measures.length ? ` — ${interval.measures.join(", ")}` : "");
      group.append(svg("rect", { x: from, y: y + 6, width: Math.max(1, to - from), height: rowHeight - 14,
        class: `bar-${interval.status}`, "data-status": interval.status }, svg("title", {}, label)));
    }
    root.append(group);
  });
  for (const event of visibleEvents()) {
    const row = streams.indexOf(event.stream);
    if (row < 0 || !event.effective_date || event.retractedAt) continue;
    const cx = x(toDay(event.effective_date)), cy = top + row * rowHeight + rowHeight / 2 - 1;
    const label = `${event.type} ${event.effective_date}: ${event.legal_basis || "no legal basis given"}` +
      (event.measures.length ? ` (${event.measures.join(", ")})` : "");
    const marker = svg("path", { d: `M ${cx} ${cy - 7} L ${cx + 7} ${cy} L ${cx} ${cy + 7} L ${cx - 7} ${cy} Z`,
      class: "marker" }, svg("title", {}, label));
    const link = event.source && event.source.url
      ? svg("a", { href: event.source.url, target: "_blank", rel: "noopener", "aria-label": label }, marker)
      : marker;
    root.append(link);
  }
  const asOf = x(toDay(state.asOf));
  root.append(svg("line", { class: "asof", x1: asOf, x2: asOf, y1: top - 4, y2: height - 6 },
    svg("title", {}, `as of ${state.asOf}`)));
  chart.replaceChildren(root);
  setAsOfSlider(start, end, known);
}

function setAsOfSlider(start, end) {
  const slider = $("as_of_slider");
  slider.min = "0";
  slider.max = String(Math.round((end - start) / DAY));
  slider.value = String(Math.round((toDay(state.asOf) - start) / DAY));
  slider.dataset.start = String(start);
  slider.setAttribute("aria-valuetext", state.asOf);
}

// Events as the record stood at `known_at`: later ones hidden, retractions applied.
function visibleEvents() {
  const cut = state.knownAt;
  const shown = state.events.filter((e) => !cut || e.recorded_at <= cut);
  const retractedAt = new Map(shown.filter((e) => e.type === "retracted").map((e) => [e.retracts, e.recorded_at]));
  return shown.map((e) => ({ ...e, retractedAt: retractedAt.get(e.event_id) || null }));
}

function drawEvents() {
  const items = visibleEvents().map((e) => {
    const what = e.type === "retracted"
      ? `retracted event ${e.retracts.slice(0, 8)}…`
      : `${e.type} effective ${e.effective_date}${e.measures.length ? ": " + e.measures.join(", ") : ""}`;
    const item = el("li", { class: e.retractedAt ? "retracted" : "", "data-event-id": e.event_id, "data-type": e.type },
      el("strong", {}, e.stream), " ", el("span", { class: "what" }, what));
    if (e.retractedAt) item.append(el("span", { class: "badge" }, `retracted ${e.retractedAt}`));
    const basis = el("div", {}, e.legal_basis || "");
    if (e.source && e.source.url) basis.append(" — ", el("a", { href: e.source.url, target: "_blank", rel: "noopener" }, e.source.title || "source"));
    if (e.note) basis.append(el("div", { class: "muted" }, e.note));
    item.append(basis, el("div", { class: "meta" },
      `v${e.version} · position ${e.position} · recorded ${e.recorded_at} by ${e.recorded_by} · hash ${e.hash}`));
    return item;
  });
  if (!items.length) items.push(el("li", {}, "No events recorded for this selection at that moment."));
  $("events").replaceChildren(...items);
}

async function redraw() {
  syncUrl();
  try {
    await Promise.all([drawStatus(), drawTimeline()]);
    drawEvents();
    state.needsToken = false;
  } catch (error) {
    $("status-table").tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "bad" }, String(error.message))));
    state.needsToken = error.status === 401 || error.status === 403;
    if (state.needsToken) {
      forgetToken();
      askForToken(refused(error, "to read on this server"), reload);
    }
  }
  app.dataset.ready = String(Date.now());
}

async function reload() {
  try { await loadEvents(); } catch (error) { state.events = []; }
  await redraw();
}

$("country").addEventListener("change", (e) => { state.country = e.target.value; state.knownAt = null; reload(); });
$("commodity").addEventListener("change", (e) => { state.commodity = e.target.value; state.knownAt = null; reload(); });
$("as_of").addEventListener("change", (e) => { if (e.target.value) { state.asOf = e.target.value; redraw(); } });
$("as_of_slider").addEventListener("input", (e) => {
  state.asOf = isoDay(Number(e.target.dataset.start) + Number(e.target.value) * DAY);
  $("as_of").value = state.asOf;
  redraw();
});
$("known_at_slider").addEventListener("input", (e) => {
  const index = Number(e.target.value);
  state.knownAt = index >= state.moments.length ? null : state.moments[index - 1] || "0001-01-01T00:00:00Z";
  describeKnownAt();
  redraw();
});
$("known_at_now").addEventListener("click", () => {
  state.knownAt = null;
  $("known_at_slider").value = String(state.moments.length);
  describeKnownAt();
  redraw();
});
$("controls").addEventListener("submit", (e) => e.preventDefault());

// Verification needs a reader token: asked for on first use, then kept for this tab.
let afterToken = null;

function refused(error, what) {
  return error.status === 403
    ? `This token may not be used ${what} (${error.message}): enter a reader token.`
    : `A valid reader token is needed ${what} (${error.message}): enter one.`;
}

function askForToken(message, then) {
  afterToken = then;
  const out = $("verify-result");
  out.className = "bad";
  out.textContent = message;
  $("token-form").hidden = false;
  $("reader-token").focus();
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("reader-token");
  const token = input.value.trim();
  input.value = "";
  if (!token) return;
  if (!keepToken(token)) {
    $("verify-result").textContent = "This browser does not allow session storage, so the token cannot be kept.";
    return;
  }
  $("token-form").hidden = true;
  const then = afterToken;
  afterToken = null;
  if (then) then();
  if (then !== reload && state.needsToken) reload();  // the reads were refused too
});
$("token-cancel").addEventListener("click", () => {
  $("token-form").hidden = true;
  afterToken = null;
  $("verify-result").textContent = "";
});

async function verify() {
  const out = $("verify-result");
  if (!storedToken()) {
    askForToken("Verifying the record needs a reader token: enter it below.", verify);
    return;
  }
  out.textContent = "verifying…";
  out.className = "";
  try {
    const report = await api("/v1/audit/verify");
    const good = report.chain_ok && report.projections_ok;
    out.className = good ? "ok" : "bad";
    out.textContent = `${report.events_checked} events in ${report.streams_checked} streams checked: ` +
      `hash chain ${report.chain_ok ? "intact" : "BROKEN"}, read models ${report.projections_ok ? "match a fresh replay" : "DIFFER"}` +
      (report.problems.length ? ` — ${report.problems.length} problem(s), first: ${report.problems[0].detail}` : "");
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      forgetToken();
      askForToken(refused(error, "to verify the record"), verify);
      return;
    }
    out.className = "bad";
    out.textContent = `Verification failed: ${error.message}`;
  }
}
$("verify").addEventListener("click", verify);

// Enhanced: the controls apply at once, so the plain form's parts give way to the live ones.
for (const node of document.querySelectorAll(".js-only")) node.hidden = false;
for (const node of document.querySelectorAll(".js-fallback")) node.remove();
$("show").parentElement.hidden = true;
if ($("known_at")) $("known_at").remove();

reload();
