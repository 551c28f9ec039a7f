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
  checkpoint: null,  // a promise of the latest signed checkpoint
  checkpointRetried: false,
  // The shipment screen's hs, origin and date, kept in the URL (screen.js). Taken from the URL
  // here, before the first redraw rewrites it: that redraw may come before screen.js has run.
  screen: Object.fromEntries([...new URLSearchParams(location.search)]
    .filter(([name]) => ["hs", "origin", "date"].includes(name))),
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

function headersFor(accept) {
  const headers = { Accept: accept };
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function api(path, params) {
  const search = query(params || {});
  const response = await fetch(search ? `${path}?${search}` : path, { headers: headersFor("application/json") });
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
  const params = { ...keyParams(), as_of: state.asOf, known_at: state.knownAt, ...state.screen };
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
      el("td", {}, r.since || "—"),
      el("td", { class: "ends-on" }, r.expires || "—")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5" }, "Nothing in force or recorded for this selection on this date.")));
  $("status-table").tBodies[0].replaceChildren(...rows);
}

const WHAT_ENDS = { run: "the run ends (expired)", measures: "measures end", easing: "the easing ends: measures return" };

// The terms that run out in the next 90 days (GET /v1/expiring's default window).
async function drawUpcoming() {
  const body = await api("/v1/expiring", { ...keyParams(), known_at: state.knownAt });
  const known = state.knownAt ? body.known_at : "now";
  $("upcoming-window").textContent = `terms that run out from ${body.from} to ${body.to} (not included), as recorded by ${known}`;
  const items = body.expiries.map((e) =>
    el("li", { "data-stream": e.stream, "data-ends": e.ends },
      el("time", { datetime: e.date }, e.date),
      ` ${e.stream}: ${WHAT_ENDS[e.ends]}${e.measures.length ? ` (${e.measures.join(", ")})` : ""}`));
  if (!items.length) items.push(el("li", { class: "muted" }, `Nothing ends in the next 90 days for this selection, as recorded by ${known}.`));
  $("upcoming").replaceChildren(...items);
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
      el("strong", {}, e.stream), " ", el("span", { class: "what" }, what), " ", proofBadge(e));
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
  proveShown();
}

async function redraw() {
  syncUrl();
  try {
    await Promise.all([drawStatus(), drawTimeline(), drawUpcoming()]);
    drawEvents();
    state.needsToken = false;
  } catch (error) {
    $("status-table").tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "bad" }, String(error.message))));
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
  state.checkpointRetried = false;
  refreshCheckpoint();  // after the events are read, so that it covers them
  await redraw();
}

$("country").addEventListener("change", (e) => { state.country = e.target.value; state.knownAt = null; reload(); });
$("commodity").addEventListener("change", (e) => { state.commodity = e.target.value; state.knownAt = null; reload(); });
// Why `text` is not a day written YYYY-MM-DD ("" when it is one): the page's dates are ISO
// 8601 whatever the browser's locale, and a date the calendar lacks is named as such.
function dayProblem(text) {
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(text)) return `"${text}" is not a date written YYYY-MM-DD, e.g. 2026-01-15`;
  const [year, month, date] = text.split("-").map(Number);
  const day = new Date(0);
  day.setUTCFullYear(year, month - 1, date);
  const real = year >= 1 && day.getUTCFullYear() === year && day.getUTCMonth() === month - 1 && day.getUTCDate() === date;
  return real ? "" : `${text} is not a day of the calendar`;
}

// The as-of field: a whole, real date redraws the page; anything else is named beside the
// field once it is complete (or left), and the page stays as it was.
function asOfGiven(final) {
  const input = $("as_of"), shown = $("as_of_problem"), text = input.value.trim();
  const problem = text ? dayProblem(text) : "";
  if (!problem || !final && text.length < 10) {
    input.removeAttribute("aria-invalid");
    input.setCustomValidity("");
    shown.hidden = true;
    if (text && !problem && text !== state.asOf) { state.asOf = text; redraw(); }
    return;
  }
  input.setAttribute("aria-invalid", "true");
  input.setCustomValidity(problem);
  shown.textContent = problem;
  shown.hidden = false;
}
$("as_of").addEventListener("input", () => asOfGiven(false));
$("as_of").addEventListener("change", () => asOfGiven(true));
$("as_of_slider").addEventListener("input", (e) => {
  state.asOf = isoDay(Number(e.target.dataset.start) + Number(e.target.value) * DAY);
  $("as_of").value = state.asOf;
  asOfGiven(true);  // clears a problem named before
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
$("controls").addEventListener("submit", (e) => { e.preventDefault(); asOfGiven(true); });

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

// The verifiable log. The latest signed checkpoint (a C2SP signed note: origin, tree size,
// base64 Merkle root) is shown, and each listed event is proved to be in it here, in the
// browser: its inclusion proof (RFC 9162 §2.1.3.2) must lead from the event's own hash to
// the root written in the note, never merely to the root the proof answer names.
const PROOF_TEXT = { checking: "checking…", verified: "verified", failed: "not verified",
  pending: "not yet in checkpoint", unchecked: "not checked" };
const HEX_SHA256 = /^[0-9a-f]{64}$/;
const RETRY_AFTER = 2500;  // a checkpoint covers every event recorded more than 2 s before it
const proofs = new Map();  // `${checkpoint.key} ${event_id} ${hash}` → Promise of a result
let provedAgainst = null;  // the checkpoint the cached results are for

function hexToBytes(hex) {
  if (typeof hex !== "string" || !HEX_SHA256.test(hex)) throw new Error(`not a hex SHA-256: ${String(hex).slice(0, 80)}`);
  return Uint8Array.from(hex.match(/../g), (pair) => parseInt(pair, 16));
}
const bytesToHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
function base64ToBytes(text) {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4) throw new Error("the checkpoint's root is not base64");
  return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
}
const sameBytes = (a, b) => a.length === b.length && a.every((byte, i) => byte === b[i]);

async function sha256(...parts) {
  const joined = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) { joined.set(part, at); at += part.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}
const LEAF = Uint8Array.of(0), NODE = Uint8Array.of(1);

// RFC 9162 §2.1.3.2: the root that `path` leads to from the leaf `data` at `index` of a
// tree of `size` leaves, or null when `path` cannot be an audit path for that place.
async function rootFromInclusionProof(index, size, data, path) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  const half = (n) => Math.floor(n / 2);  // not >>: sizes may pass 2^31
  let fn = index, sn = size - 1;
  let r = await sha256(LEAF, data);
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(NODE, p, r);
      while (fn % 2 === 0 && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      r = await sha256(NODE, r, p);
    }
    fn = half(fn); sn = half(sn);
  }
  return sn === 0 ? r : null;
}

// `<origin>\n<size>\n<base64 root>\n[extension lines]\n\n<signature lines>`
function parseCheckpoint(note, signedAt) {
  const cut = note.indexOf("\n\n");
  const [origin, sizeText, rootText] = (cut < 0 ? "" : note.slice(0, cut)).split("\n");
  if (!origin || !/^[0-9]+$/.test(sizeText || "") || !rootText) {
    throw new Error("the answer is not a signed note of origin, tree size and root");
  }
  const size = Number(sizeText);
  const root = base64ToBytes(rootText);
  if (!Number.isSafeInteger(size) || root.length !== 32) throw new Error("the checkpoint's size or root is malformed");
  return { origin, size, root, rootHex: bytesToHex(root), rootBase64: rootText, signedAt, key: `${size} ${rootText}` };
}

async function loadCheckpoint() {
  const response = await fetch("/v1/audit/checkpoint", { headers: headersFor("text/plain"), cache: "no-store" });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(response.status, body.detail || response.statusText);
  }
  return parseCheckpoint(await response.text(), response.headers.get("Checkpoint-Signed-At"));
}

// `again`: fetched once more because an event was not in the one before.
function refreshCheckpoint(again = false) {
  const latest = loadCheckpoint().then((checkpoint) => ({ ...checkpoint, again }));
  state.checkpoint = latest;
  latest.then(
    (checkpoint) => { if (state.checkpoint === latest) showCheckpoint(checkpoint); },
    (error) => { if (state.checkpoint === latest) showCheckpoint(null, error); });
  return latest;
}

function showCheckpoint(checkpoint, error) {
  const box = $("checkpoint");
  const root = $("checkpoint-root");
  $("checkpoint-size").textContent = checkpoint ? String(checkpoint.size) : "—";
  $("checkpoint-origin").textContent = checkpoint ? checkpoint.origin : "—";
  root.textContent = checkpoint ? `${checkpoint.rootHex.slice(0, 16)}…` : "—";
  root.title = checkpoint ? checkpoint.rootHex : "";
  root.dataset.base64 = checkpoint ? checkpoint.rootBase64 : "";
  const signed = $("checkpoint-signed-at");
  signed.textContent = checkpoint ? checkpoint.signedAt || "not given" : "—";
  if (checkpoint && checkpoint.signedAt) signed.setAttribute("datetime", checkpoint.signedAt);
  else signed.removeAttribute("datetime");
  $("checkpoint-error").hidden = !error;
  $("checkpoint-error").textContent = error ? `The latest checkpoint could not be read: ${error.message}` : "";
  box.dataset.size = checkpoint ? String(checkpoint.size) : "";
}

// At most a few proofs in flight: a long list must not flood the server.
const throttled = (() => {
  let running = 0;
  const waiting = [];
  const next = () => {
    if (running >= 6 || !waiting.length) return;
    running++;
    const { task, settle } = waiting.shift();
    task().then(settle, (error) => settle({ state: "unchecked", detail: String(error) }))
      .finally(() => { running--; next(); });
  };
  return (task) => new Promise((settle) => { waiting.push({ task, settle }); next(); });
})();

async function checkInclusion(event, checkpoint) {
  if (!(window.crypto && crypto.subtle)) {
    return { state: "unchecked", detail: "this browser offers Web Crypto only to pages served over HTTPS (or from localhost)" };
  }
  let proof;
  try {
    proof = await api("/v1/audit/proof/inclusion", { event_id: event.event_id, size: String(checkpoint.size) });
  } catch (error) {
    // Not in the tree of that size (422, or 404 from services that call it "no such
    // tree"): newer than the checkpoint, unless a checkpoint fetched later lacks it too.
    if (error.status === 422 || (error.status === 404 && !checkpoint.again)) {
      return { state: "pending", detail: `not in the checkpoint of ${checkpoint.size} events: ${error.message}` };
    }
    if (error.status === 404) return { state: "failed", detail: `not in the log's tree, even in a later checkpoint: ${error.message}` };
    return { state: "unchecked", detail: `its inclusion proof could not be read: ${error.message}` };
  }
  try {
    if (String(proof.event_id).toLowerCase() !== event.event_id.toLowerCase()) throw new Error(`the proof is for event ${proof.event_id}`);
    if (proof.size !== checkpoint.size) throw new Error(`the proof is for a tree of ${proof.size} events, not ${checkpoint.size}`);
    if (!Array.isArray(proof.hashes)) throw new Error("the proof has no audit path");
    const root = await rootFromInclusionProof(proof.leaf_index, checkpoint.size, hexToBytes(event.hash), proof.hashes.map(hexToBytes));
    if (root === null) throw new Error(`${proof.hashes.length} hashes cannot be the audit path of leaf ${proof.leaf_index} of ${checkpoint.size}`);
    if (!sameBytes(root, checkpoint.root)) {
      throw new Error(`its hash and proof lead to root ${bytesToHex(root).slice(0, 16)}…, not the checkpoint's ${checkpoint.rootHex.slice(0, 16)}…`);
    }
    return { state: "verified", detail: `leaf ${proof.leaf_index} of the signed checkpoint of ${checkpoint.size} events: its hash and ${proof.hashes.length} proof hashes lead to the checkpoint's root (checked in this browser)` };
  } catch (error) {
    return { state: "failed", detail: error.message };
  }
}

function proofOf(event, checkpoint) {
  if (provedAgainst !== checkpoint.key) { proofs.clear(); provedAgainst = checkpoint.key; }
  const key = `${checkpoint.key} ${event.event_id} ${event.hash}`;
  if (!proofs.has(key)) {
    const result = throttled(() => checkInclusion(event, checkpoint));
    proofs.set(key, result);
    result.then((found) => { if (found.state === "unchecked" || found.state === "pending") proofs.delete(key); });
  }
  return proofs.get(key);
}

function proofBadge() {
  return el("span", { class: "proof proof-checking", "data-proof": "checking" }, PROOF_TEXT.checking);
}

function showProof(badge, result) {
  badge.dataset.proof = result.state;
  badge.className = `proof proof-${result.state}`;
  badge.textContent = PROOF_TEXT[result.state];
  badge.title = result.detail;
}

async function proveShown() {
  const badges = [...$("events").querySelectorAll("li[data-event-id] .proof")];
  if (!badges.length || !state.checkpoint) return;  // a reload is under way and will come back
  const against = state.checkpoint;
  let checkpoint;
  try {
    checkpoint = await against;
  } catch (error) {
    for (const badge of badges) showProof(badge, { state: "unchecked", detail: `no checkpoint to check against: ${error.message}` });
    return;
  }
  const byId = new Map(state.events.map((e) => [e.event_id, e]));
  const results = await Promise.all(badges.map(async (badge) => {
    const event = byId.get(badge.closest("li").dataset.eventId);
    const result = event ? await proofOf(event, checkpoint) : { state: "unchecked", detail: "this event is no longer loaded" };
    showProof(badge, result);
    return result;
  }));
  // An event newer than the checkpoint: fetch the checkpoint once more, a little later.
  if (results.some((r) => r.state === "pending") && !state.checkpointRetried && state.checkpoint === against) {
    state.checkpointRetried = true;
    setTimeout(() => { if (state.checkpoint === against) { refreshCheckpoint(true); proveShown(); } }, RETRY_AFTER);
  }
}

// Enhanced: the controls apply at once, so the plain form's parts give way to the live ones.
for (const node of document.querySelectorAll(".js-only")) node.hidden = false;
for (const node of document.querySelectorAll(".js-fallback")) node.remove();
$("show").parentElement.hidden = true;
if ($("known_at")) $("known_at").remove();

reload();
