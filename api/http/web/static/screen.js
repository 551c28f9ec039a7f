// The shipment screen: an HS code and an origin country checked with GET /v1/screen, answered
// in the page's box. Without a script the same form asks the page itself, which renders the
// answer on the server. Runs after timeline.js and uses its helpers ($, el, query, state,
// headersFor, askForToken, refused, forgetToken, syncUrl).
"use strict";

(() => {
  const box = $("screen");
  const form = $("screen-form");
  const hs = $("screen-hs"), origin = $("screen-origin"), date = $("screen-date");
  const FIELDS = { hs, origin, date };
  const asked = new URLSearchParams(location.search);
  if (["hs", "origin", "date"].some((name) => asked.has(name))) {
    state.screen = { hs: hs.value, origin: origin.value, date: date.value };
  }

  // The origin follows the page's country filter until someone types another one.
  let following = origin.value.trim().toUpperCase() === state.country || !origin.value.trim();
  origin.addEventListener("input", () => {
    following = !origin.value.trim() || origin.value.trim().toUpperCase() === state.country;
  });
  $("country").addEventListener("change", (e) => { if (following) origin.value = e.target.value; });

  const commodityName = (slug) => {
    const option = [...$("commodity").options].find((o) => o.value === slug);
    return option ? option.dataset.name || "" : "";
  };

  const tokenNote = () => { if ($("screen-token")) $("screen-token").remove(); };

  function showProblems(problems) {
    tokenNote();
    for (const input of Object.values(FIELDS)) input.removeAttribute("aria-invalid");
    $("screen-result").hidden = true;
    $("screen-problems").replaceChildren(...problems.map(({ field, message }) => {
      const name = String(field || "").replace(/^query\./, "");
      if (FIELDS[name]) FIELDS[name].setAttribute("aria-invalid", "true");
      return el("li", { "data-field": name }, el("code", {}, name || "request"), `: ${message}`);
    }));
    $("screen-problem").hidden = false;
  }

  function showResult(answer) {
    tokenNote();
    for (const input of Object.values(FIELDS)) input.removeAttribute("aria-invalid");
    $("screen-problem").hidden = true;
    const name = commodityName(answer.commodity);
    $("screen-commodity").replaceChildren(
      "HS ", el("code", {}, answer.hs), " is ",
      el("strong", { "data-commodity": answer.commodity }, answer.commodity),
      name ? ` — ${name}` : "", "; goods from ", el("strong", {}, answer.origin), ` on ${answer.date}:`);
    const rows = answer.results.map((r) =>
      el("tr", { "data-authority": r.authority },
        el("th", { scope: "row" }, r.authority),
        el("td", { class: `status status-${r.status}` }, r.status),
        el("td", {}, r.measures.join(", ") || "—"),
        el("td", {}, r.since || "—")));
    if (!rows.length) {
      rows.push(el("tr", {}, el("td", { colspan: "4" },
        `No authority has recorded sanctions on ${answer.commodity} from ${answer.origin}.`)));
    }
    $("screen-table").tBodies[0].replaceChildren(...rows);
    $("screen-receipt").href = `/v1/screen/receipt?${query({ hs: answer.hs, origin: answer.origin, date: answer.date })}`;
    $("screen-result").hidden = false;
  }

  // The receipt of the answer shown. A plain link downloads it; when reads need a token, the
  // link cannot send it, so the receipt is fetched with it and saved from memory.
  $("screen-receipt").addEventListener("click", async (e) => {
    const headers = headersFor("application/json");
    if (!headers.Authorization) return;
    e.preventDefault();
    const response = await fetch(e.currentTarget.href, { headers });
    if (!response.ok) { showProblems(await problemsOf(response)); return; }
    const saved = URL.createObjectURL(await response.blob());
    const link = el("a", { href: saved, download: "screening-receipt.json" });
    link.click();
    setTimeout(() => URL.revokeObjectURL(saved), 1000);
  });

  // A problem document's own words; never the raw body.
  async function problemsOf(response) {
    const body = await response.json().catch(() => null);
    if (body && Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map((e) => ({ field: e.field, message: String(e.message) }));
    }
    const detail = body && typeof body.detail === "string" ? body.detail : `${response.status} ${response.statusText}`;
    return [{ field: "", message: detail }];
  }

  let latest = 0;
  async function screen() {
    const mine = ++latest;
    const asking = { hs: hs.value.trim(), origin: origin.value.trim(), date: date.value };
    state.screen = asking;
    syncUrl();
    box.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(`/v1/screen?${query(asking)}`, { headers: headersFor("application/json") });
      if (mine !== latest) return;  // a newer screen was asked for meanwhile
      if (response.status === 401 || response.status === 403) {
        const problems = await problemsOf(response);
        showProblems(problems);
        forgetToken();
        needToken(refused({ status: response.status, message: problems[0].message }, "to screen a shipment"));
      } else if (!response.ok) {
        showProblems(await problemsOf(response));
      } else {
        showResult(await response.json());
      }
    } catch (error) {
      if (mine === latest) showProblems([{ field: "", message: `the screen could not be answered: ${error.message}` }]);
    } finally {
      if (mine === latest) {
        box.removeAttribute("aria-busy");
        box.dataset.answered = String(Date.now());
      }
    }
  }

  // One token for the whole page, asked for once even when the page's own reads were refused
  // too: whoever asked, the screen runs again when a token is given.
  function needToken(message) {
    if ($("token-form").hidden) askForToken(message, null);
    $("token-form").addEventListener("submit", () => setTimeout(screen), { once: true });
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); screen(); });
  if (box.dataset.screened !== "true" && asked.has("hs")) screen();  // not answered on the server
})();
