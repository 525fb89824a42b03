// threatfeed dashboard — a dependency-free single-page app (ES2020 module, no build step).
//
// Hash routes: #/ live overview, #/threats, #/threats/<id>, #/lookup, #/me, #/admin.
// The API token lives in sessionStorage only and is sent as `Authorization: Bearer …` on every
// call. Authenticated Server-Sent Events are read with fetch() and parsed here (EventSource
// cannot send headers). Every value from the API is inserted with textContent / text nodes,
// never innerHTML, and styles are only set through classes or element.style (the page runs
// under a strict CSP).

"use strict";

// ---------------------------------------------------------------------------------------------
// Small helpers

const TOKEN_KEY = "threatfeed.token";
const NUM = new Intl.NumberFormat("en");
let REGION = null;
try {
  REGION = new Intl.DisplayNames(["en"], { type: "region" });
} catch {
  REGION = null;
}

/** Creates an element. props: class, text, dataset, on<event>, value, other attributes. */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  let value;
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = String(v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "value") value = v;
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

/** Appends nodes or strings (as text) to el, skipping null / false. */
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

function fmtNum(n) {
  if (n == null || n === "") return "—";
  const x = Number(n);
  return Number.isFinite(x) ? NUM.format(x) : String(n);
}

function toDate(v) {
  if (v == null || v === "") return null;
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "2026-06-01 00:06:00 UTC" */
function fmtTime(v) {
  const d = toDate(v);
  if (!d) return v == null || v === "" ? "—" : String(v);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

/** "00:06:00" (UTC), for the dense live table. */
function fmtClock(v) {
  const d = toDate(v);
  return d ? d.toISOString().slice(11, 19) : v == null ? "" : String(v);
}

function countryName(code) {
  if (!code) return "—";
  try {
    const n = REGION && REGION.of(String(code).toUpperCase());
    return n && n !== code ? `${n} (${code})` : String(code);
  } catch {
    return String(code);
  }
}

/** "1 infected IP", "3 infected IPs" */
function plural(n, one, many) {
  return `${fmtNum(n)} ${Number(n) === 1 ? one : many}`;
}

function fmtAsn(asn, name) {
  if (asn == null || asn === "") return name || "—";
  return name ? `AS${asn} ${name}` : `AS${asn}`;
}

/** Only http(s) links from data become hrefs. */
function safeHref(url) {
  try {
    const u = new URL(String(url), location.href);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

function threatLink(id, label) {
  return h("a", { href: `#/threats/${encodeURIComponent(id)}` }, label || threatNames.get(id) || id);
}

function table(caption, headers, opts = {}) {
  const tbody = h("tbody");
  const t = h(
    "table",
    { class: `data ${opts.class || ""}`.trim(), id: opts.id },
    caption ? h("caption", { class: opts.hideCaption ? "visually-hidden" : null }, caption) : null,
    h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col", class: x.num ? "num" : null }, x.label || x)))),
    tbody,
  );
  return { table: t, tbody };
}

function td(content, cls) {
  return h("td", { class: cls || null }, content);
}

function emptyRow(tbody, cols, text) {
  tbody.replaceChildren(h("tr", null, h("td", { colspan: cols, class: "empty" }, text)));
}

function notice(text, kind = "info") {
  return h("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : null }, text);
}

function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

// ---------------------------------------------------------------------------------------------
// Token and API

function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token simply does not persist */
  }
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authHeaders(extra = {}) {
  const t = getToken();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : { ...extra };
}

async function errorFrom(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const j = await res.json();
    if (j && j.error) {
      code = j.error.code || code;
      message = j.error.message || message;
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, message);
}

/** Calls the API with the token; JSON in and out. `raw: true` returns the Response. */
async function api(path, { method = "GET", body, signal, raw = false } = {}) {
  const headers = authHeaders({ Accept: raw ? "*/*" : "application/json" });
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, signal, cache: "no-store" });
  if (!res.ok) {
    const err = await errorFrom(res);
    if (err.status === 401 && getToken()) authMessage("Your token was refused (401). Sign in again.", true);
    throw err;
  }
  return raw ? res : res.json();
}

function isAbort(e) {
  return e && (e.name === "AbortError" || e.name === "TimeoutError");
}

/** A message block for a failed call; 401 / 403 explain what token is needed. */
function errorBlock(err, what) {
  if (err instanceof ApiError && err.status === 401) {
    return h(
      "div",
      { class: "notice notice-warn", role: "alert" },
      h("p", null, getToken()
        ? `Your token was not accepted for ${what}. Sign in again with a valid token.`
        : `${what[0].toUpperCase()}${what.slice(1)} needs an API token. Sign in with your token (top right).`),
      h("button", { type: "button", onclick: focusSignIn }, "Sign in"),
    );
  }
  if (err instanceof ApiError && err.status === 403) {
    return notice(`Your token is not allowed to see ${what} (403): ${err.message}`, "warn");
  }
  const msg = err instanceof ApiError ? `${err.message} (HTTP ${err.status})` : String(err && err.message ? err.message : err);
  return notice(`Could not load ${what}: ${msg}`, "error");
}

function focusSignIn() {
  const input = document.getElementById("signin-token");
  if (!document.getElementById("signin-form").hidden && input) input.focus();
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events over fetch (with the Authorization header)

/**
 * Reads one SSE response. onMessage({event, data, id}) per dispatched message. Resolves with
 * the last event id when the server closes the stream; rejects with ApiError on an HTTP error.
 */
async function readSSE(url, { signal, lastEventId, onOpen, onMessage }) {
  const headers = authHeaders({ Accept: "text/event-stream" });
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const res = await fetch(url, { headers, signal, cache: "no-store" });
  if (!res.ok) throw await errorFrom(res);
  if (!res.body) throw new Error("this browser cannot read a streamed response");
  if (onOpen) onOpen();
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let pendingCR = false;
  let data = [];
  let event = "";
  let lastId = lastEventId || "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let chunk = decoder.decode(value, { stream: true });
      if (pendingCR) {
        chunk = `\r${chunk}`;
        pendingCR = false;
      }
      if (chunk.endsWith("\r")) {
        pendingCR = true;
        chunk = chunk.slice(0, -1);
      }
      if (chunk.includes("\r")) chunk = chunk.replace(/\r\n?/g, "\n");
      buf += chunk;
      let start = 0;
      let nl;
      while ((nl = buf.indexOf("\n", start)) !== -1) {
        const line = buf.slice(start, nl);
        start = nl + 1;
        if (line === "") {
          if (data.length) {
            onMessage({ event: event || "message", data: data.length === 1 ? data[0] : data.join("\n"), id: lastId });
          }
          data = [];
          event = "";
          continue;
        }
        if (line.charCodeAt(0) === 58) continue; // ":" comment / keep-alive
        const c = line.indexOf(":");
        const field = c === -1 ? line : line.slice(0, c);
        let val = c === -1 ? "" : line.slice(c + 1);
        if (val.charCodeAt(0) === 32) val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") event = val;
        else if (field === "id" && !val.includes("\0")) lastId = val;
      }
      buf = start ? buf.slice(start) : buf;
    }
  } finally {
    // Cancelling an aborted or finished body rejects: nothing to do about it.
    reader.cancel().catch(() => {});
  }
  return lastId;
}

/**
 * Keeps an SSE stream open: reconnects with Last-Event-ID after errors (backoff up to 15 s),
 * stops on abort or on 401 / 403 / 404. onStatus(state, detail) with state one of
 * "connecting", "live", "retrying", "failed".
 */
function keepStreaming(url, { signal, onMessage, onStatus, resume = true }) {
  let lastId = "";
  let delay = 1000;
  (async () => {
    while (!signal.aborted) {
      onStatus("connecting");
      try {
        lastId = await readSSE(url, {
          signal,
          lastEventId: resume ? lastId : "",
          onOpen: () => {
            delay = 1000;
            onStatus("live");
          },
          onMessage: (m) => {
            if (resume && m.id) lastId = m.id;
            onMessage(m);
          },
        });
        if (signal.aborted) return;
        onStatus("retrying", "the server closed the stream");
      } catch (e) {
        if (signal.aborted || isAbort(e)) return;
        if (e instanceof ApiError && [401, 403, 404].includes(e.status)) {
          onStatus("failed", e);
          return;
        }
        onStatus("retrying", e && e.message ? e.message : String(e));
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 15000);
    }
  })().catch(() => {
    /* never surfaces: every error is reported through onStatus */
  });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

function streamBadge() {
  const el = h("span", { class: "badge badge-muted", role: "status" }, "connecting…");
  return {
    el,
    set(state, detail) {
      const labels = { connecting: "connecting…", live: "live", retrying: "reconnecting…", failed: "stopped" };
      el.textContent = labels[state] || state;
      el.className = `badge ${state === "live" ? "badge-ok" : state === "failed" ? "badge-bad" : "badge-muted"}`;
      el.title = typeof detail === "string" ? detail : detail && detail.message ? detail.message : "";
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Caches

const threatNames = new Map(); // threat id -> display name
let threatsLoaded = null;
function loadThreatNames() {
  if (!getToken()) return Promise.resolve();
  if (!threatsLoaded) {
    threatsLoaded = api("/api/v1/threats")
      .then((j) => {
        for (const t of j.threats || []) threatNames.set(t.id, t.name);
      })
      .catch(() => {
        threatsLoaded = null;
      });
  }
  return threatsLoaded;
}

let me = null; // the caller's organisation (GET /api/v1/me)

// ---------------------------------------------------------------------------------------------
// Sign in / out

function authMessage(text, isError = false) {
  const p = document.getElementById("auth-message");
  p.textContent = text;
  p.classList.toggle("error", isError);
}

function renderAuth() {
  const signedIn = !!getToken();
  document.getElementById("signin-form").hidden = signedIn;
  document.getElementById("signed-in").hidden = !signedIn;
  const who = document.getElementById("whoami");
  if (!signedIn) who.textContent = "";
  else if (me) who.textContent = `Signed in: ${me.name} (${me.kind})`;
  else who.textContent = "Signed in";
}

async function refreshMe() {
  if (!getToken()) {
    me = null;
    renderAuth();
    return null;
  }
  try {
    me = await api("/api/v1/me");
    authMessage("");
  } catch (e) {
    me = null;
    if (e instanceof ApiError && e.status === 401) {
      setToken("");
      authMessage("That token was not accepted (401). Check it and try again.", true);
    }
  }
  renderAuth();
  return me;
}

function setupAuth() {
  const form = document.getElementById("signin-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("signin-token");
    const token = input.value.trim();
    if (!token) {
      authMessage("Paste your API token first.", true);
      input.focus();
      return;
    }
    setToken(token);
    input.value = "";
    threatsLoaded = null;
    renderAuth();
    authMessage("Checking the token…");
    route();
    const who = await refreshMe();
    if (who) {
      authMessage(`Signed in as ${who.name}.`);
    } else if (!getToken()) {
      route();
      document.getElementById("signin-token").focus();
    }
  });
  document.getElementById("signout").addEventListener("click", () => {
    setToken("");
    me = null;
    threatNames.clear();
    threatsLoaded = null;
    renderAuth();
    authMessage("Signed out. The token was removed from this browser tab.");
    route();
    document.getElementById("signin-token").focus();
  });
  document.getElementById("skip-link").addEventListener("click", (ev) => {
    ev.preventDefault();
    document.getElementById("main").focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Router

let current = null; // {controller}

function parseRoute() {
  const hash = location.hash || "#/";
  const path = hash.startsWith("#/") ? hash.slice(1) : "/";
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts.length === 0) return { name: "overview", view: viewOverview };
  if (parts[0] === "threats" && parts.length === 1) return { name: "threats", view: viewThreats };
  if (parts[0] === "threats" && parts.length === 2) return { name: "threats", view: viewThreat, arg: parts[1] };
  if (parts[0] === "lookup") return { name: "lookup", view: viewLookup };
  if (parts[0] === "me") return { name: "me", view: viewMe };
  if (parts[0] === "admin") return { name: "admin", view: viewAdmin };
  return { name: "", view: viewNotFound };
}

function route() {
  if (current) current.controller.abort();
  const controller = new AbortController();
  current = { controller };
  const r = parseRoute();
  for (const a of document.querySelectorAll(".nav-list a")) {
    if (a.dataset.route === r.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  main.replaceChildren();
  const ctx = { signal: controller.signal, main };
  try {
    const p = r.view(ctx, r.arg);
    if (p && p.catch) {
      p.catch((e) => {
        if (!isAbort(e) && !controller.signal.aborted) main.append(errorBlock(e, "this page"));
      });
    }
  } catch (e) {
    main.append(errorBlock(e, "this page"));
  }
}

function pageTitle(main, text, sub) {
  document.title = `${text} · threatfeed`;
  const h1 = h("h1", { tabindex: "-1" }, text);
  main.append(h("div", { class: "page-head" }, h1, sub || null));
  return h1;
}

function viewNotFound({ main }) {
  pageTitle(main, "Page not found");
  main.append(notice("There is no such page. Use the navigation above."), h("p", null, h("a", { href: "#/" }, "Go to the live overview")));
}

// ---------------------------------------------------------------------------------------------
// 1. Live overview (#/)

function viewOverview({ main, signal }) {
  const badge = streamBadge();
  pageTitle(main, "Live overview", badge.el);
  const msg = h("div", { class: "messages" });
  main.append(msg);

  const counter = (id, label) => {
    const v = h("span", { class: "counter-value", id }, "—");
    return { el: h("div", { class: "counter" }, h("span", { class: "counter-label" }, label), v), v };
  };
  const c = {
    rate: counter("overview-checkins-per-sec", "Check-ins / s (now)"),
    total: counter("overview-total-checkins", "Check-ins, 24 h"),
    ips: counter("overview-infected-ips", "Infected IPs, 24 h"),
    dns: counter("overview-dns-queries", "DNS queries, 24 h"),
    active: counter("overview-active-indicators", "Active indicators"),
    added: counter("overview-indicators-added", "Indicators added, 24 h"),
    removed: counter("overview-indicators-removed", "Indicators removed, 24 h"),
  };
  const counters = h("section", { class: "counters", "aria-label": "Totals", "aria-live": "polite" }, Object.values(c).map((x) => x.el));

  const canvas = h("canvas", { id: "overview-chart", class: "chart", role: "img", "aria-label": "Check-ins per second over the last 5 minutes" });
  const chartSummary = h("p", { class: "chart-summary" });
  const asOf = h("p", { class: "muted small" });

  const countries = table("Infections by country, last 24 hours", ["Country", { label: "Infected IPs", num: true }, { label: "Check-ins", num: true }], { id: "overview-countries", class: "bars" });
  const threats = table("Top threats, last 24 hours", ["Threat", { label: "Infected IPs", num: true }, { label: "Check-ins", num: true }], { id: "overview-threats" });
  const asns = table("Top networks (ASNs), last 24 hours", ["ASN", "Name", { label: "Infected IPs", num: true }], { id: "overview-asns", class: "bars" });
  const recent = table("Recent indicator changes", ["Change", "Type", "Value", "Threat", "Time"], { id: "overview-indicators" });
  for (const t of [countries, threats, asns, recent]) emptyRow(t.tbody, 5, "Waiting for data…");

  main.append(
    counters,
    h("section", { class: "card" }, h("h2", null, "Check-ins per second, last 5 minutes"), canvas, chartSummary, asOf),
    h("div", { class: "grid-2" },
      h("section", { class: "card" }, h("h2", null, "Countries"), countries.table),
      h("section", { class: "card" }, h("h2", null, "Threats"), threats.table),
      h("section", { class: "card" }, h("h2", null, "Networks"), asns.table),
      h("section", { class: "card" }, h("h2", null, "Indicator changes"), recent.table),
    ),
  );

  let last = null;
  const redraw = () => {
    if (last) drawRateChart(canvas, last);
  };
  if (typeof ResizeObserver === "function") {
    const ro = new ResizeObserver(redraw);
    ro.observe(canvas);
    signal.addEventListener("abort", () => ro.disconnect());
  }

  const render = (snap) => {
    last = snap;
    const series = Array.isArray(snap.checkins_per_sec) ? snap.checkins_per_sec : [];
    c.rate.v.textContent = fmtNum(currentRate(snap));
    const t = snap.totals || {};
    c.total.v.textContent = fmtNum(t.checkins_24h);
    c.ips.v.textContent = fmtNum(t.infected_ips_24h);
    c.dns.v.textContent = fmtNum(t.dns_queries_24h);
    const ind = snap.indicators || {};
    c.active.v.textContent = fmtNum(ind.active);
    c.added.v.textContent = fmtNum(ind.added_24h);
    c.removed.v.textContent = fmtNum(ind.removed_24h);
    drawRateChart(canvas, snap);
    const ns = series.map((p) => Number(p.n) || 0);
    const max = ns.length ? Math.max(...ns) : 0;
    const avg = ns.length ? ns.reduce((a, b) => a + b, 0) / ns.length : 0;
    chartSummary.textContent = `Peak ${fmtNum(max)}/s, average ${fmtNum(Math.round(avg))}/s over ${ns.length} seconds.`;
    canvas.setAttribute("aria-label", `Check-ins per second over the last 5 minutes: now ${fmtNum(currentRate(snap))}, peak ${fmtNum(max)}, average ${fmtNum(Math.round(avg))}`);
    asOf.textContent = `As of ${fmtTime(snap.as_of)}${snap.last_seq != null ? ` · log position ${fmtNum(snap.last_seq)}` : ""}`;
    renderBars(countries.tbody, snap.countries || [], "infected_ips", (r) => [countryName(r.country)], (r) => [fmtNum(r.checkins)], 3, "No infections in the last 24 hours.");
    renderThreatRows(threats.tbody, snap.threats || []);
    renderBars(asns.tbody, snap.asns || [], "infected_ips", (r) => [r.asn != null ? `AS${r.asn}` : "—", r.as_name || "—"], null, 3, "No infections in the last 24 hours.");
    renderRecent(recent.tbody, ind.recent || []);
  };

  const failed = (e) => {
    msg.replaceChildren();
    if (e instanceof ApiError && e.status === 404) {
      msg.append(notice("This server does not offer the live overview (404).", "warn"));
      return;
    }
    if (e instanceof ApiError && e.status === 401 && !getToken()) {
      msg.append(h("div", { class: "notice notice-warn", role: "alert" },
        h("p", null, "The operator has turned off the public overview: sign in with a token to see it."),
        h("button", { type: "button", onclick: focusSignIn }, "Sign in")));
      return;
    }
    msg.append(errorBlock(e, "the live overview"));
  };

  const onSnapshot = (data) => {
    try {
      render(JSON.parse(data));
      if (msg.firstChild) msg.replaceChildren();
    } catch {
      /* a malformed snapshot is skipped; the next one replaces it */
    }
  };

  api("/api/v1/overview", { signal })
    .then((snap) => {
      render(snap);
      startStream();
    })
    .catch((e) => {
      if (signal.aborted || isAbort(e)) return;
      badge.set("failed", e);
      failed(e);
      // A network or server error may pass: the stream keeps retrying. 401 / 403 / 404 do not.
      if (!(e instanceof ApiError && [401, 403, 404].includes(e.status))) startStream();
    });

  function startStream() {
    const url = "/api/v1/overview/stream";
    if (!getToken() && typeof EventSource === "function") {
      // Public overview: a plain EventSource (reconnects by itself).
      const es = new EventSource(url);
      signal.addEventListener("abort", () => es.close());
      es.addEventListener("open", () => badge.set("live"));
      es.addEventListener("overview", (ev) => onSnapshot(ev.data));
      es.addEventListener("error", () => {
        if (signal.aborted) return;
        if (es.readyState === EventSource.CLOSED) {
          badge.set("failed");
          // Find out why (EventSource does not tell): e.g. 401 when the overview went private.
          api("/api/v1/overview", { signal })
            .then(() => {
              msg.replaceChildren(notice("The live stream closed. Reload the page to reconnect.", "warn"));
            })
            .catch((e) => {
              if (!signal.aborted && !isAbort(e)) failed(e);
            });
        } else {
          badge.set("retrying");
        }
      });
    } else {
      keepStreaming(url, {
        signal,
        resume: false,
        onMessage: (m) => {
          if (m.event === "overview" || m.event === "message") onSnapshot(m.data);
        },
        onStatus: (state, detail) => {
          badge.set(state, detail);
          if (state === "failed" && detail instanceof ApiError) failed(detail);
        },
      });
    }
  }
}

/** The latest complete second of the check-in series. */
function currentRate(snap) {
  const s = Array.isArray(snap.checkins_per_sec) ? snap.checkins_per_sec : [];
  if (!s.length) return 0;
  const lastP = s[s.length - 1];
  const asOf = toDate(snap.as_of);
  if (asOf && s.length > 1 && Number(lastP.t) >= Math.floor(asOf.getTime() / 1000)) {
    return Number(s[s.length - 2].n) || 0; // the current second is still filling
  }
  return Number(lastP.n) || 0;
}

/** Rows with a proportional bar behind the key figure. */
function renderBars(tbody, rows, key, lead, tail, cols, emptyText) {
  if (!rows.length) return emptyRow(tbody, cols, emptyText);
  const max = Math.max(1, ...rows.map((r) => Number(r[key]) || 0));
  tbody.replaceChildren(
    ...rows.map((r) => {
      const pct = Math.max(0.5, ((Number(r[key]) || 0) / max) * 100);
      const bar = h("span", { class: "bar", "aria-hidden": "true" });
      bar.style.setProperty("width", `${pct.toFixed(1)}%`);
      const leadCells = lead(r).map((x, i) => (i === 0 ? h("th", { scope: "row" }, x) : td(x)));
      const figure = h("td", { class: "num bar-cell" }, bar, h("span", { class: "bar-label" }, fmtNum(r[key])));
      return h("tr", null, leadCells, figure, tail ? tail(r).map((x) => td(x, "num")) : null);
    }),
  );
}

function renderThreatRows(tbody, rows) {
  if (!rows.length) return emptyRow(tbody, 3, "No classified check-ins in the last 24 hours.");
  tbody.replaceChildren(
    ...rows.map((r) => {
      if (r.threat_id && r.name) threatNames.set(r.threat_id, r.name);
      return h("tr", null,
        h("th", { scope: "row" }, r.threat_id ? threatLink(r.threat_id, r.name || r.threat_id) : r.name || "unclassified"),
        td(fmtNum(r.infected_ips), "num"),
        td(fmtNum(r.checkins), "num"));
    }),
  );
}

function opBadge(op) {
  const o = String(op || "");
  const label = o === "add" ? "added" : o === "remove" ? "removed" : o === "update" ? "updated" : o;
  return h("span", { class: `badge op-${o.replace(/[^a-z]/g, "")}` }, label);
}

function renderRecent(tbody, rows) {
  if (!rows.length) return emptyRow(tbody, 5, "No recent changes.");
  tbody.replaceChildren(
    ...rows.map((r) => h("tr", null,
      td(opBadge(r.op)),
      td(r.type || "—"),
      h("th", { scope: "row", class: "mono break" }, r.value || "—"),
      td(r.threat_id ? threatLink(r.threat_id) : "—"),
      td(fmtTime(r.time), "nowrap"))),
  );
}

/** Line chart of check-ins/s over the 300 s before the snapshot. */
function drawRateChart(canvas, snap) {
  const series = (Array.isArray(snap.checkins_per_sec) ? snap.checkins_per_sec : [])
    .map((p) => ({ t: Number(p.t), n: Number(p.n) || 0 }))
    .filter((p) => Number.isFinite(p.t));
  const cssW = canvas.clientWidth || 600;
  const cssH = canvas.clientHeight || 220;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const pad = { l: 56, r: 12, t: 10, b: 24 };
  const w = cssW - pad.l - pad.r;
  const hgt = cssH - pad.t - pad.b;
  const asOf = toDate(snap.as_of);
  const end = series.length ? series[series.length - 1].t : asOf ? Math.floor(asOf.getTime() / 1000) : 0;
  const start = end - 300;
  const max = niceCeil(Math.max(1, ...series.map((p) => p.n)));
  const x = (t) => pad.l + ((t - start) / 300) * w;
  const y = (n) => pad.t + hgt - (n / max) * hgt;

  ctx.font = "12px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#d5dae1";
  ctx.fillStyle = "#3d4450";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(pad.l + w, yy);
    ctx.stroke();
    ctx.fillText(compact(v), pad.l - 6, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let m = 5; m >= 0; m--) {
    const xx = x(end - m * 60);
    ctx.fillText(m === 0 ? "now" : `−${m} min`, Math.min(Math.max(xx, pad.l + 18), pad.l + w - 14), pad.t + hgt + 6);
  }
  const pts = series.filter((p) => p.t >= start);
  if (!pts.length) return;
  ctx.beginPath();
  pts.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.n)) : ctx.moveTo(x(p.t), y(p.n))));
  ctx.lineTo(x(pts[pts.length - 1].t), y(0));
  ctx.lineTo(x(pts[0].t), y(0));
  ctx.closePath();
  ctx.fillStyle = "rgba(10, 88, 176, 0.12)";
  ctx.fill();
  ctx.beginPath();
  pts.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.n)) : ctx.moveTo(x(p.t), y(p.n))));
  ctx.strokeStyle = "#0a58b0";
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  ctx.stroke();
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function compact(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(1)}`;
}

// ---------------------------------------------------------------------------------------------
// 3. Member view (#/me)

const STREAM_ROWS = 200;

async function viewMe({ main, signal }) {
  pageTitle(main, "My network");
  if (!getToken()) {
    main.append(errorBlock(new ApiError(401, "unauthorized", ""), "your network's view"));
    return;
  }
  const who = h("section", { class: "card", "aria-labelledby": "me-who-h" }, h("h2", { id: "me-who-h" }, "Who you are"), h("p", { class: "muted" }, "Loading…"));
  main.append(who);
  let org;
  try {
    org = await api("/api/v1/me", { signal });
  } catch (e) {
    if (isAbort(e)) return;
    who.replaceChildren(h("h2", null, "Who you are"), errorBlock(e, "your organisation"));
    return;
  }
  me = org;
  renderAuth();
  who.replaceChildren(h("h2", { id: "me-who-h" }, "Who you are"), orgSummary(org));
  loadThreatNames();

  liveStream(main, signal);
  infectionReport(main, signal);
}

function orgSummary(org) {
  const s = org.scope || {};
  const dl = h("dl", { class: "facts", id: "me-org" });
  const row = (k, v) => append(dl, [h("dt", null, k), h("dd", null, v)]);
  row("Organisation", org.name || "—");
  row("Kind", org.kind || "—");
  row("TLP clearance", org.tlp_clearance ? `TLP:${String(org.tlp_clearance).toUpperCase()}` : "—");
  row("Networks (CIDR)", (s.cidrs || []).join(", ") || "—");
  row("ASNs", (s.asns || []).map((a) => `AS${a}`).join(", ") || "—");
  row("Countries", (s.countries || []).join(", ") || "—");
  if (org.contributions) {
    const c = org.contributions;
    row("Contributions", `${fmtNum(c.contributed)} indicators, ${fmtNum(c.false_positives)} false positives`);
  }
  if (org.kind === "admin") row("Scope", "Admin: sees every event");
  return dl;
}

function liveStream(main, signal) {
  const badge = streamBadge();
  const count = h("span", { id: "me-stream-count", class: "counter-value" }, "0");
  const rate = h("span", { id: "me-stream-rate", class: "muted" }, "");
  const pauseBtn = h("button", { type: "button", class: "secondary", "aria-pressed": "false" }, "Pause display");
  const cols = ["Time (UTC)", "Source IP", "Threat / family", "ASN", "Country", "Protocol", "Host"];
  const t = table("Latest infections in your networks (newest first, at most 200)", cols, { id: "me-stream-table", class: "dense" });
  emptyRow(t.tbody, cols.length, "Waiting for check-ins from your networks…");
  main.append(h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", null, "Live infections"), badge.el),
    h("p", { class: "stream-stats", "aria-live": "polite" }, "Events received: ", count, " ", rate, " ", pauseBtn),
    h("div", { class: "table-scroll tall" }, t.table),
  ));

  // A ring of the newest raw messages: parsing happens only for the rows drawn.
  const ringData = new Array(STREAM_ROWS);
  let head = 0; // next write position
  let size = 0;
  let received = 0;
  let paused = false;
  let rateBase = { n: 0, t: performance.now() };
  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.setAttribute("aria-pressed", String(paused));
    pauseBtn.textContent = paused ? "Resume display" : "Pause display";
  });

  const rows = [];
  const makeRow = () => {
    const cells = cols.map((_, i) => (i === 1 ? h("th", { scope: "row", class: "mono" }) : h("td")));
    cells[0].className = "nowrap";
    cells[6].className = "break";
    return { tr: h("tr", null, cells), cells, key: null };
  };

  const draw = () => {
    count.textContent = fmtNum(received);
    const now = performance.now();
    if (now - rateBase.t >= 1000) {
      const r = ((received - rateBase.n) * 1000) / (now - rateBase.t);
      rate.textContent = `(${fmtNum(Math.round(r))}/s)`;
      rateBase = { n: received, t: now };
    }
    if (paused || !size) return;
    if (rows.length === 0) t.tbody.replaceChildren();
    while (rows.length < size) {
      const r = makeRow();
      rows.push(r);
      t.tbody.append(r.tr);
    }
    for (let i = 0; i < size; i++) {
      const data = ringData[(head - 1 - i + STREAM_ROWS) % STREAM_ROWS];
      const row = rows[i];
      if (row.key === data) continue;
      row.key = data;
      let e;
      try {
        e = JSON.parse(data);
      } catch {
        e = {};
      }
      const c = row.cells;
      c[0].textContent = fmtClock(e.time);
      c[0].title = fmtTime(e.time);
      c[1].textContent = e.src_ip || "";
      c[2].replaceChildren(e.threat_id ? threatLink(e.threat_id, threatNames.get(e.threat_id) || e.family || e.threat_id) : e.family || "unclassified");
      c[3].textContent = fmtAsn(e.asn, e.as_name);
      c[4].textContent = e.country || "";
      c[5].textContent = e.proto ? `${e.proto}${e.dst_port ? `/${e.dst_port}` : ""}` : "";
      c[6].textContent = e.host || "";
    }
  };

  // Draw at most 4 times a second, in an animation frame.
  let frame = 0;
  const timer = setInterval(() => {
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        draw();
      });
    }
  }, 250);
  signal.addEventListener("abort", () => {
    clearInterval(timer);
    if (frame) cancelAnimationFrame(frame);
  });

  keepStreaming("/api/v1/stream", {
    signal,
    onMessage: (m) => {
      if (m.event !== "message") return;
      received++;
      ringData[head] = m.data;
      head = (head + 1) % STREAM_ROWS;
      if (size < STREAM_ROWS) size++;
    },
    onStatus: (state, detail) => {
      badge.set(state, detail);
      if (state === "failed") t.tbody.replaceChildren(h("tr", null, h("td", { colspan: cols.length }, errorBlock(detail, "the live stream"))));
    },
  });
}

function infectionReport(main, signal) {
  const since = h("select", { id: "me-report-since" },
    h("option", { value: "1h" }, "last hour"),
    h("option", { value: "24h", selected: true }, "last 24 hours"),
    h("option", { value: "7d" }, "last 7 days"),
    h("option", { value: "30d" }, "last 30 days"));
  const reload = h("button", { type: "button", class: "secondary" }, "Refresh");
  const csv = h("button", { type: "button", id: "me-report-csv" }, "Download CSV");
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const cols = ["IP", "ASN", "Country", "Threat / family", "Playbook", "First seen", "Last seen", { label: "Check-ins", num: true }];
  const t = table("Infected IPs in your networks, one row per address", cols, { id: "me-report-table" });
  main.append(h("section", { class: "card" },
    h("h2", null, "Infection report"),
    h("div", { class: "toolbar" },
      h("label", { for: "me-report-since" }, "Period"), since, reload, csv),
    status,
    h("div", { class: "table-scroll tall" }, t.table)));

  const MAX_SHOWN = 1000;
  let ctl = null;
  const load = async () => {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const sig = ctl.signal;
    signal.addEventListener("abort", () => ctl.abort(), { once: true });
    status.textContent = "Loading…";
    try {
      const [j] = await Promise.all([
        api(`/api/v1/reports/infections?since=${encodeURIComponent(since.value)}&format=json`, { signal: sig }),
        loadThreatNames(),
      ]);
      const rows = j.infections || [];
      status.textContent = `${plural(j.infected_ips ?? rows.length, "infected IP", "infected IPs")}, ${plural(j.events, "check-in", "check-ins")} since ${fmtTime(j.since)}${rows.length > MAX_SHOWN ? ` — showing the ${fmtNum(MAX_SHOWN)} most active; download the CSV for all` : ""}.`;
      if (!rows.length) return emptyRow(t.tbody, cols.length, "No infections seen in your networks in this period.");
      t.tbody.replaceChildren(...rows.slice(0, MAX_SHOWN).map((r) => {
        const tids = r.threat_ids || [];
        const fams = (r.families || []).filter((f) => !tids.some((id) => id === f || threatNames.get(id) === f));
        const family = [];
        tids.forEach((id) => family.push(threatNames.get(id) || id));
        fams.forEach((f) => family.push(f));
        const playbooks = tids.map((id, i) => [i ? ", " : null, h("a", { href: `#/threats/${encodeURIComponent(id)}` }, `${threatNames.get(id) || id} playbook`)]);
        return h("tr", null,
          h("th", { scope: "row", class: "mono" }, r.ip),
          td(fmtAsn(r.asn, r.as_name)),
          td(r.country || "—"),
          td(family.join(", ") || "unclassified"),
          td(playbooks.length ? playbooks : "—"),
          td(fmtTime(r.first_seen), "nowrap"),
          td(fmtTime(r.last_seen), "nowrap"),
          td(fmtNum(r.count), "num"));
      }));
    } catch (e) {
      if (isAbort(e) || signal.aborted) return;
      status.textContent = "";
      t.tbody.replaceChildren(h("tr", null, h("td", { colspan: cols.length }, errorBlock(e, "the infection report"))));
    }
  };
  since.addEventListener("change", load);
  reload.addEventListener("click", load);
  csv.addEventListener("click", async () => {
    csv.disabled = true;
    const old = csv.textContent;
    csv.textContent = "Preparing CSV…";
    try {
      const res = await api(`/api/v1/reports/infections?since=${encodeURIComponent(since.value)}&format=csv`, { raw: true, signal });
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `infections-${since.value}.csv`, class: "visually-hidden" }, "download");
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      status.textContent = "CSV downloaded.";
    } catch (e) {
      if (!isAbort(e)) status.textContent = `CSV download failed: ${e.message}`;
    } finally {
      csv.disabled = false;
      csv.textContent = old;
    }
  });
  load();
}

// ---------------------------------------------------------------------------------------------
// 4. Threats (#/threats, #/threats/<id>)

async function viewThreats({ main, signal }) {
  pageTitle(main, "Threats");
  if (!getToken()) {
    main.append(errorBlock(new ApiError(401, "unauthorized", ""), "the threat knowledge base"));
    return;
  }
  const filter = h("input", { id: "threats-filter", type: "search", placeholder: "name, alias, kind…" });
  const t = table("Documented threats", ["Name", "Kind", "Aliases", "Description"], { id: "threats-table", hideCaption: true });
  emptyRow(t.tbody, 4, "Loading…");
  main.append(h("section", { class: "card" },
    h("div", { class: "toolbar" }, h("label", { for: "threats-filter" }, "Filter"), filter),
    h("div", { class: "table-scroll" }, t.table)));
  let threats;
  try {
    threats = (await api("/api/v1/threats", { signal })).threats || [];
  } catch (e) {
    if (isAbort(e)) return;
    t.tbody.replaceChildren(h("tr", null, h("td", { colspan: 4 }, errorBlock(e, "the threat list"))));
    return;
  }
  threats.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  for (const th of threats) threatNames.set(th.id, th.name);
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = threats.filter((th) => !q || [th.id, th.name, th.kind, ...(th.aliases || [])].some((s) => String(s || "").toLowerCase().includes(q)));
    if (!shown.length) return emptyRow(t.tbody, 4, "No threat matches the filter.");
    t.tbody.replaceChildren(...shown.map((th) => h("tr", null,
      h("th", { scope: "row" }, threatLink(th.id, th.name)),
      td(th.kind || "—", "nowrap"),
      td((th.aliases || []).join(", ") || "—"),
      td(th.description || ""))));
  };
  filter.addEventListener("input", render);
  render();
}

async function viewThreat({ main, signal }, id) {
  const h1 = pageTitle(main, threatNames.get(id) || id);
  if (!getToken()) {
    main.append(errorBlock(new ApiError(401, "unauthorized", ""), "the threat's playbook"));
    return;
  }
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  main.append(body);
  let th;
  try {
    th = await api(`/api/v1/threats/${encodeURIComponent(id)}`, { signal });
  } catch (e) {
    if (isAbort(e)) return;
    body.replaceChildren(e instanceof ApiError && e.status === 404
      ? notice(`No threat is known as "${id}". See the list of threats.`, "warn")
      : errorBlock(e, "the threat"));
    body.append(h("p", null, h("a", { href: "#/threats" }, "All threats")));
    return;
  }
  threatNames.set(th.id, th.name);
  h1.textContent = th.name;
  document.title = `${th.name} · threatfeed`;
  body.replaceChildren();

  // Overview of the threat.
  const facts = h("dl", { class: "facts" });
  const fact = (k, v) => append(facts, [h("dt", null, k), h("dd", null, v)]);
  fact("Id", h("code", null, th.id));
  fact("Kind", th.kind || "—");
  fact("Aliases", (th.aliases || []).join(", ") || "—");
  const refs = (th.references || []).map((r) => {
    const href = safeHref(r);
    return h("li", null, href ? h("a", { href, rel: "noopener noreferrer", target: "_blank", class: "ext" }, r) : r);
  });
  body.append(h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", null, "About"),
      h("div", { class: "no-print" },
        h("a", { href: "#/threats", class: "button secondary" }, "All threats"), " ",
        h("button", { type: "button", onclick: () => window.print() }, "Print playbook"))),
    h("p", { class: "lead" }, th.description || ""),
    facts,
    refs.length ? [h("h3", null, "References"), h("ul", { class: "refs" }, refs)] : null));

  // The playbook.
  const pb = th.playbook || {};
  const steps = (title, list, hint) => h("section", { class: "pb-section" },
    h("h3", null, title),
    hint ? h("p", { class: "muted small" }, hint) : null,
    (list || []).length ? h("ol", null, (list || []).map((s) => h("li", null, s))) : h("p", { class: "muted" }, "No steps documented."));
  const noticeText = pb.customer_notice || "";
  const copyBtn = h("button", { type: "button", class: "secondary no-print" }, "Copy notice");
  const copied = h("span", { class: "muted small", role: "status" });
  copyBtn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(noticeText);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Copy failed: select the text and copy it by hand.";
    }
  });
  body.append(h("section", { class: "card playbook", id: "threat-playbook", "aria-labelledby": "pb-h" },
    h("h2", { id: "pb-h" }, `Remediation playbook: ${th.name}`),
    steps("1. Detect", pb.detect, "What the network owner sees and how to confirm the infection."),
    steps("2. Contain", pb.contain, "How to stop the damage spreading while the host is cleaned."),
    steps("3. Clean", pb.clean, "How to remove the malware and its persistence."),
    steps("4. Verify", pb.verify, "How to confirm the host is clean."),
    h("section", { class: "pb-section" },
      h("h3", null, "Customer notice"),
      h("p", { class: "muted small" }, "A plain-language notice an ISP can send to an infected subscriber."),
      h("blockquote", { class: "customer-notice" }, noticeText || "—"),
      noticeText ? h("p", null, copyBtn, " ", copied) : null)));

  // Documented behaviour (from the knowledge base).
  const b = th.behaviour || {};
  if ((b.protocols || []).length || (b.ports || []).length || (b.uri_patterns || []).length || (b.user_agents || []).length || b.beacon_interval_secs || b.notes) {
    const dl = h("dl", { class: "facts" });
    const f = (k, v) => append(dl, [h("dt", null, k), h("dd", null, v)]);
    f("Protocols", (b.protocols || []).join(", ") || "—");
    f("Ports", (b.ports || []).join(", ") || "—");
    f("URI patterns", (b.uri_patterns || []).length ? h("ul", { class: "plain mono" }, b.uri_patterns.map((x) => h("li", null, x))) : "—");
    f("User agents", (b.user_agents || []).length ? h("ul", { class: "plain mono" }, b.user_agents.map((x) => h("li", null, x))) : "—");
    f("Beacon interval", b.beacon_interval_secs ? `${fmtNum(b.beacon_interval_secs)} s` : "—");
    if (b.notes) f("Notes", b.notes);
    body.append(h("section", { class: "card print-hide" }, h("h2", null, "Documented network behaviour"), dl));
  }

  body.append(observedSection(th.observed_behaviour || {}));
  body.append(indicatorSection(th.id, signal));
}

function observedSection(o) {
  const sec = h("section", { class: "card print-hide", id: "threat-observed" }, h("h2", null, "Observed behaviour"));
  if (!o.checkins) {
    sec.append(h("p", { class: "muted" }, "No check-ins of this threat observed yet."));
    return sec;
  }
  const dl = h("dl", { class: "facts" });
  const f = (k, v) => append(dl, [h("dt", null, k), h("dd", null, v)]);
  const ips = o.infected_ips || {};
  f("Check-ins", fmtNum(o.checkins));
  f("Infected IPs", `${ips.approximate ? "≈ " : ""}${fmtNum(ips.total)}`);
  f("DNS queries (resolvers)", fmtNum(o.dns_queries));
  f("First / last seen", `${fmtTime(o.first_seen)} — ${fmtTime(o.last_seen)}`);
  const bi = o.beacon_interval_secs || {};
  f("Beacon interval (median)", bi.median != null ? `${fmtNum(bi.median)} s over ${fmtNum(bi.bots)} bots` : "not established yet");
  f("Protocols", (o.protocols || []).map((p) => `${p.name} (${fmtNum(p.count)})`).join(", ") || "—");
  f("Ports", (o.ports || []).map((p) => `${p.port} (${fmtNum(p.count)})`).join(", ") || "—");
  sec.append(dl);

  sec.append(h("h3", null, "Infected IPs per hour"), hourChart(ips.per_hour || []));

  const small = (caption, rows, cols, cells) => {
    const t = table(caption, cols, { class: "dense" });
    if (!rows.length) emptyRow(t.tbody, cols.length, "—");
    else t.tbody.replaceChildren(...rows.map((r) => h("tr", null, cells(r))));
    return h("div", { class: "table-scroll" }, t.table);
  };
  sec.append(h("div", { class: "grid-2" },
    small("C2 hosts", o.c2_hosts || [], ["Host", { label: "Check-ins", num: true }], (r) => [h("th", { scope: "row", class: "mono break" }, r.host), td(fmtNum(r.count), "num")]),
    small("URI patterns", o.uri_patterns || [], ["Pattern", { label: "Check-ins", num: true }], (r) => [h("th", { scope: "row", class: "mono break" }, r.pattern), td(fmtNum(r.count), "num")]),
    small("User agents", o.user_agents || [], ["User agent", { label: "Check-ins", num: true }], (r) => [h("th", { scope: "row", class: "mono break" }, r.user_agent), td(fmtNum(r.count), "num")]),
    small("Top ASNs", o.top_asns || [], ["ASN", { label: "Infected IPs", num: true }], (r) => [h("th", { scope: "row" }, `AS${r.asn}`), td(fmtNum(r.ips), "num")]),
    small("Top countries", o.top_countries || [], ["Country", { label: "Infected IPs", num: true }], (r) => [h("th", { scope: "row" }, countryName(r.country)), td(fmtNum(r.ips), "num")]),
  ));
  return sec;
}

/** A small SVG bar chart of per_hour [{hour, ips, approximate}]. */
function hourChart(perHour) {
  if (!perHour.length) return h("p", { class: "muted" }, "No hourly figures yet.");
  const W = 720;
  const H = 140;
  const padB = 20;
  const padL = 40;
  const max = niceCeil(Math.max(1, ...perHour.map((p) => Number(p.ips) || 0)));
  const bw = (W - padL) / Math.max(perHour.length, 24); // a few hours do not make fat bars
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "hour-chart", role: "img", "aria-label": `Infected IPs per hour over ${perHour.length} hours, at most ${fmtNum(Math.max(...perHour.map((p) => Number(p.ips) || 0)))}` });
  root.append(svg("line", { x1: padL, x2: W, y1: H - padB + 0.5, y2: H - padB + 0.5, class: "axis" }));
  root.append(svg("text", { x: padL - 4, y: 12, class: "tick", "text-anchor": "end", text: compact(max) }));
  root.append(svg("text", { x: padL - 4, y: H - padB, class: "tick", "text-anchor": "end", text: "0" }));
  perHour.forEach((p, i) => {
    const v = Number(p.ips) || 0;
    const bh = ((H - padB - 4) * v) / max;
    const r = svg("rect", { x: padL + i * bw + 1, y: H - padB - bh, width: Math.max(1, bw - 2), height: Math.max(0, bh), class: "bar-rect" });
    r.append(svg("title", { text: `${fmtTime(p.hour)}: ${p.approximate ? "≈ " : ""}${fmtNum(v)} IPs` }));
    root.append(r);
  });
  const first = perHour[0].hour;
  const lastH = perHour[perHour.length - 1].hour;
  root.append(svg("text", { x: padL, y: H - 4, class: "tick", text: fmtTime(first).slice(5, 16) }));
  root.append(svg("text", { x: W, y: H - 4, class: "tick", "text-anchor": "end", text: fmtTime(lastH).slice(5, 16) }));
  return h("div", { class: "chart-wrap" }, root);
}

const INDICATOR_TYPES = ["ipv4", "ipv6", "cidr", "domain", "url", "md5", "sha1", "sha256"];

function indicatorSection(threatId, signal) {
  const type = h("select", { id: "threat-ind-type" }, h("option", { value: "" }, "all types"), INDICATOR_TYPES.map((t) => h("option", { value: t }, t)));
  const prev = h("button", { type: "button", class: "secondary", disabled: true }, "Previous page");
  const next = h("button", { type: "button", class: "secondary", disabled: true }, "Next page");
  const status = h("p", { class: "muted", role: "status" });
  const cols = ["Type", "Value", "Port", { label: "Confidence", num: true }, "TLP", "Last seen", "Status"];
  const t = table("Indicators of this threat", cols, { id: "threat-indicators", class: "dense" });
  const sec = h("section", { class: "card print-hide" },
    h("h2", null, "Indicators"),
    h("div", { class: "toolbar" }, h("label", { for: "threat-ind-type" }, "Type"), type, prev, next),
    status,
    h("div", { class: "table-scroll" }, t.table));
  let cursors = [""]; // cursor of each page shown so far
  let page = 0;
  let nextCursor = null;
  const load = async () => {
    status.textContent = "Loading…";
    prev.disabled = next.disabled = true;
    const q = new URLSearchParams({ threat: threatId, limit: "50" });
    if (type.value) q.set("type", type.value);
    if (cursors[page]) q.set("after", cursors[page]);
    try {
      const j = await api(`/api/v1/indicators?${q}`, { signal });
      const items = j.indicators || [];
      nextCursor = j.next || null;
      status.textContent = items.length ? `Page ${page + 1}: ${plural(items.length, "indicator", "indicators")}${nextCursor ? " (more on the next page)" : ""}.` : page ? "No more indicators." : "No active indicators of this type.";
      if (!items.length) emptyRow(t.tbody, cols.length, "—");
      else t.tbody.replaceChildren(...items.map((i) => h("tr", null,
        td(i.type),
        h("th", { scope: "row", class: "mono break" }, i.value),
        td(i.port != null ? String(i.port) : "—"),
        td(i.effective_confidence != null && i.effective_confidence !== i.confidence ? `${i.effective_confidence} (of ${i.confidence})` : fmtNum(i.confidence), "num"),
        td(i.tlp ? `TLP:${String(i.tlp).toUpperCase()}` : "—", "nowrap"),
        td(fmtTime(i.last_seen), "nowrap"),
        td(i.status || "—"))));
      prev.disabled = page === 0;
      next.disabled = !nextCursor;
    } catch (e) {
      if (isAbort(e)) return;
      status.textContent = "";
      t.tbody.replaceChildren(h("tr", null, h("td", { colspan: cols.length }, errorBlock(e, "the indicators"))));
    }
  };
  type.addEventListener("change", () => {
    cursors = [""];
    page = 0;
    load();
  });
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors[page + 1] = nextCursor;
    page++;
    load();
  });
  prev.addEventListener("click", () => {
    if (page > 0) page--;
    load();
  });
  load();
  return sec;
}

// ---------------------------------------------------------------------------------------------
// 5. Lookup (#/lookup)

function viewLookup({ main, signal }) {
  pageTitle(main, "Lookup");
  const input = h("textarea", { id: "lookup-input", rows: 8, spellcheck: "false", "aria-describedby": "lookup-help", placeholder: "66.210.228.178\nhxxp://evil[.]example/gate.php\nexample.com" });
  const submit = h("button", { type: "submit", id: "lookup-submit" }, "Look up");
  const onlyKnown = h("input", { type: "checkbox", id: "lookup-only-known" });
  const results = h("div", { id: "lookup-results", "aria-live": "polite" });
  const form = h("form", { class: "card lookup-form" },
    h("label", { for: "lookup-input" }, "Values to check (one per line)"),
    h("p", { id: "lookup-help", class: "muted small" }, "IP addresses, networks, domains, URLs or file hashes; defanged forms (hxxp, [.]) are understood. Up to 10,000 values."),
    input,
    h("div", { class: "toolbar" }, submit, h("span", { class: "check" }, onlyKnown, h("label", { for: "lookup-only-known" }, "Show only known values"))));
  main.append(form, results);
  if (!getToken()) results.append(errorBlock(new ApiError(401, "unauthorized", ""), "a lookup"));

  let last = null;
  const render = () => {
    if (!last) return;
    const list = last.results || [];
    const shown = onlyKnown.checked ? list.filter((r) => r.known) : list;
    const LIMIT = 500;
    results.replaceChildren();
    append(results, [
      h("p", { class: "summary" }, `${plural(last.count, "value", "values")} checked: `, h("strong", null, `${fmtNum(last.known)} known`), `, ${fmtNum(last.count - last.known)} not known or invalid.`),
      shown.length > LIMIT ? notice(`Showing the first ${fmtNum(LIMIT)} of ${fmtNum(shown.length)} results.`) : null,
      h("ul", { class: "lookup-list" }, shown.slice(0, LIMIT).map(lookupResult))]);
  };
  onlyKnown.addEventListener("change", render);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = input.value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    if (!values.length) {
      results.replaceChildren(notice("Enter at least one value.", "warn"));
      input.focus();
      return;
    }
    if (values.length > 10000) {
      results.replaceChildren(notice(`${fmtNum(values.length)} values: at most 10,000 per lookup.`, "warn"));
      return;
    }
    submit.disabled = true;
    results.replaceChildren(h("p", { class: "muted" }, `Checking ${fmtNum(values.length)} values…`));
    try {
      last = await api("/api/v1/lookup", { method: "POST", body: { values }, signal });
      render();
    } catch (e) {
      if (!isAbort(e)) results.replaceChildren(errorBlock(e, "a lookup"));
    } finally {
      submit.disabled = false;
    }
  });
}

const MATCHED = { exact: "listed exactly", network: "inside a listed network", "parent-domain": "under a listed parent domain", "url-host": "the URL's host is listed" };

function lookupResult(r) {
  const head = h("div", { class: "lr-head" }, h("span", { class: "mono break lr-value" }, r.value));
  const li = h("li", { class: `lookup-result ${r.error ? "is-error" : r.known ? "is-known" : "is-clean"}` }, head);
  if (r.error) {
    head.append(h("span", { class: "badge badge-muted" }, "invalid"));
    li.append(h("p", { class: "small" }, r.error));
    return li;
  }
  head.append(h("span", { class: `badge ${r.known ? "badge-bad" : "badge-ok"}` }, r.known ? "KNOWN BAD" : "not known"));
  if (r.kind || r.canonical) li.append(h("p", { class: "muted small" }, `${r.kind || ""}${r.canonical && r.canonical !== r.value ? ` · read as ${r.canonical}` : ""}`));
  const hits = r.hits || [];
  if (!hits.length) return li;
  // One block per threat, with the indicators that matched.
  const byThreat = new Map();
  for (const hit of hits) {
    const key = hit.threat ? hit.threat.id : "";
    if (!byThreat.has(key)) byThreat.set(key, { threat: hit.threat, hits: [] });
    byThreat.get(key).hits.push(hit);
  }
  for (const { threat, hits: hs } of byThreat.values()) {
    const matches = h("ul", { class: "plain small" }, hs.map((x) => {
      const ind = x.indicator || {};
      return h("li", null, `${MATCHED[x.matched] || x.matched || "matched"}: `, h("span", { class: "mono break" }, ind.value || ""), ind.type ? ` (${ind.type}${ind.confidence != null ? `, confidence ${ind.confidence}` : ""})` : "");
    }));
    if (!threat) {
      li.append(h("div", { class: "lr-threat" }, h("p", null, "No documented threat for this indicator."), matches));
      continue;
    }
    threatNames.set(threat.id, threat.name);
    const rem = threat.remediation || {};
    const first = h("dl", { class: "facts compact" });
    for (const [k, label] of [["detect", "Detect"], ["contain", "Contain"], ["clean", "Clean"], ["verify", "Verify"]]) {
      if (rem[k]) append(first, [h("dt", null, label), h("dd", null, rem[k])]);
    }
    li.append(h("div", { class: "lr-threat" },
      h("p", null, h("strong", null, threat.name), threat.kind ? ` (${threat.kind}) · ` : " · ", threatLink(threat.id, "full playbook")),
      matches,
      first.childNodes.length ? [h("p", { class: "small strong" }, "First steps"), first] : null));
  }
  return li;
}

// ---------------------------------------------------------------------------------------------
// 6. Admin (#/admin)

const ORG_KINDS = ["isp", "cert", "company", "government", "researcher", "sensor", "admin"];
const TLPS = ["clear", "green", "amber", "amber+strict", "red"];

async function viewAdmin({ main, signal }) {
  pageTitle(main, "Administration");
  if (!getToken()) {
    main.append(errorBlock(new ApiError(401, "unauthorized", ""), "administration"));
    return;
  }
  const status = h("div", { class: "messages", role: "status", "aria-live": "polite" });
  const secret = h("div", { class: "secret-box", hidden: true });
  main.append(status, secret);

  // Members.
  const orgT = table("Members", ["Name", "Kind", "Scope", "TLP clearance", "Created", "Id"], { id: "admin-orgs" });
  emptyRow(orgT.tbody, 6, "Loading…");
  // Tokens.
  const tokT = table("API tokens (secrets are never shown again)", ["Token id", "Member", "Label", "Created", "Status", "Action"], { id: "admin-tokens" });
  emptyRow(tokT.tbody, 6, "Loading…");
  // Create a token.
  const tokOrg = h("select", { id: "admin-token-org" });
  const tokLabel = h("input", { id: "admin-token-label", type: "text", value: "dashboard", maxlength: 200 });
  const tokForm = h("form", { class: "toolbar", id: "admin-create-token-form" },
    h("label", { for: "admin-token-org" }, "Member"), tokOrg,
    h("label", { for: "admin-token-label" }, "Label"), tokLabel,
    h("button", { type: "submit", id: "admin-create-token" }, "Create token"));
  // Create a member.
  const f = {
    name: h("input", { id: "org-name", type: "text", required: true, maxlength: 200 }),
    kind: h("select", { id: "org-kind" }, ORG_KINDS.map((k) => h("option", { value: k }, k))),
    cidrs: h("input", { id: "org-cidrs", type: "text", placeholder: "192.0.2.0/24, 2001:db8::/32", "aria-describedby": "org-cidrs-help" }),
    asns: h("input", { id: "org-asns", type: "text", placeholder: "64500, AS64501" }),
    countries: h("input", { id: "org-countries", type: "text", placeholder: "NL, BE", "aria-describedby": "org-countries-help" }),
    tlp: h("select", { id: "org-tlp" }, TLPS.map((t) => h("option", { value: t, selected: t === "amber" }, `TLP:${t.toUpperCase()}`))),
  };
  const field = (id, label, el, help) => h("div", { class: "field" }, h("label", { for: id }, label), el, help ? h("p", { class: "muted small", id: `${id}-help` }, help) : null);
  const orgForm = h("form", { class: "form-grid", id: "admin-create-org" },
    field("org-name", "Name", f.name),
    field("org-kind", "Kind", f.kind),
    field("org-cidrs", "Networks (CIDRs)", f.cidrs, "Comma or space separated, in normal form."),
    field("org-asns", "ASNs", f.asns),
    field("org-countries", "Countries", f.countries, "ISO codes; only for kind cert."),
    field("org-tlp", "TLP clearance", f.tlp),
    h("div", { class: "field field-submit" }, h("button", { type: "submit", id: "admin-create-org-submit" }, "Create member")));
  // Sensors.
  const sensorT = table("Sensors (members of kind sensor)", ["Name", "Created", "Tokens"], { id: "admin-sensors" });
  const health = h("dl", { class: "facts", id: "admin-health" });
  const activityT = table("Sensor activity, last 24 hours (by the events' sensor name)", ["Sensor", "Last event", "Idle", "Check-ins", "DNS queries"], { id: "admin-sensor-activity" });

  main.append(
    h("section", { class: "card" }, h("h2", null, "Members"), h("div", { class: "table-scroll" }, orgT.table)),
    h("section", { class: "card" }, h("h2", null, "Add a member"), orgForm),
    h("section", { class: "card" }, h("h2", null, "Tokens"), tokForm, h("div", { class: "table-scroll" }, tokT.table)),
    h("section", { class: "card" }, h("h2", null, "Sensors and server health"),
      h("div", { class: "grid-2" }, h("div", { class: "table-scroll" }, sensorT.table), h("div", null, h("h3", null, "Server (/healthz)"), health)),
      h("div", { class: "table-scroll" }, activityT.table)),
  );

  let orgs = [];
  let tokens = [];
  const say = (text, kind = "info") => status.replaceChildren(notice(text, kind));
  let secretId = null;
  const showSecret = (title, token, tokenId) => {
    secretId = tokenId;
    const out = h("output", { id: "admin-new-token", class: "mono break secret" }, token);
    const copy = h("button", { type: "button", class: "secondary" }, "Copy");
    const done = h("button", { type: "button", class: "secondary" }, "I have saved it — hide");
    copy.addEventListener("click", () => navigator.clipboard.writeText(token).then(() => (copy.textContent = "Copied"), () => (copy.textContent = "Copy failed: select it by hand")));
    done.addEventListener("click", () => {
      secret.hidden = true;
      secret.replaceChildren();
    });
    secret.replaceChildren(h("p", null, h("strong", null, title), " Copy it now: it is shown only once."), out, h("p", null, copy, " ", done));
    secret.hidden = false;
  };

  const orgName = (id) => (orgs.find((o) => o.id === id) || {}).name || id;
  const scopeText = (s = {}) => [
    (s.cidrs || []).join(" "),
    (s.asns || []).map((a) => `AS${a}`).join(" "),
    (s.countries || []).join(" "),
  ].filter(Boolean).join(" · ") || "—";

  const renderOrgs = () => {
    if (!orgs.length) emptyRow(orgT.tbody, 6, "No members yet.");
    else orgT.tbody.replaceChildren(...orgs.map((o) => h("tr", null,
      h("th", { scope: "row" }, o.name),
      td(o.kind),
      td(scopeText(o.scope), "mono break"),
      td(o.tlp_clearance ? `TLP:${String(o.tlp_clearance).toUpperCase()}` : "—", "nowrap"),
      td(fmtTime(o.created), "nowrap"),
      td(o.id, "mono small"))));
    const sel = tokOrg.value;
    tokOrg.replaceChildren(...orgs.map((o) => h("option", { value: o.id }, `${o.name} (${o.kind})`)));
    if (sel && orgs.some((o) => o.id === sel)) tokOrg.value = sel;
    const sensors = orgs.filter((o) => o.kind === "sensor");
    if (!sensors.length) emptyRow(sensorT.tbody, 3, "No sensor members.");
    else sensorT.tbody.replaceChildren(...sensors.map((o) => h("tr", null,
      h("th", { scope: "row" }, o.name),
      td(fmtTime(o.created), "nowrap"),
      td(`${tokens.filter((t) => t.org_id === o.id && !t.revoked).length} active`))));
  };

  const renderTokens = () => {
    const list = tokens.slice().sort((a, b) => String(a.created).localeCompare(String(b.created)) || String(a.id).localeCompare(String(b.id)));
    if (!list.length) return emptyRow(tokT.tbody, 6, "No tokens.");
    tokT.tbody.replaceChildren(...list.map((t) => {
      const mine = me && me.token_id === t.id;
      let action;
      if (t.revoked) action = "—";
      else if (mine) action = h("span", { class: "muted small" }, "this session");
      else {
        action = h("button", { type: "button", class: "danger", "data-testid": `revoke-${t.id}`, "aria-label": `Revoke token ${t.id} of ${orgName(t.org_id)}` }, "Revoke");
        action.addEventListener("click", () => revoke(t, action));
      }
      return h("tr", { class: t.revoked ? "revoked" : null },
        h("th", { scope: "row", class: "mono" }, t.id),
        td(orgName(t.org_id)),
        td(t.label || "—"),
        td(fmtTime(t.created), "nowrap"),
        td(t.revoked ? `revoked ${fmtTime(t.revoked)}` : "active"),
        td(action));
    }));
  };

  const loadAll = async () => {
    const [o, t] = await Promise.all([api("/api/v1/orgs", { signal }), api("/api/v1/tokens", { signal })]);
    orgs = (o.orgs || []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    tokens = t.tokens || [];
    renderOrgs();
    renderTokens();
  };

  const revoke = async (t, btn) => {
    if (!window.confirm(`Revoke token ${t.id} of ${orgName(t.org_id)}? Clients using it stop working at once.`)) return;
    btn.disabled = true;
    try {
      await api(`/api/v1/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE", signal });
      say(`Token ${t.id} of ${orgName(t.org_id)} revoked.`);
      if (secretId === t.id) {
        secret.hidden = true;
        secret.replaceChildren();
      }
      await loadAll();
    } catch (e) {
      if (isAbort(e)) return;
      btn.disabled = false;
      status.replaceChildren(errorBlock(e, "revoking the token"));
    }
  };

  tokForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const orgId = tokOrg.value;
    if (!orgId) return say("Choose a member first.", "warn");
    const btn = document.getElementById("admin-create-token");
    btn.disabled = true;
    try {
      const r = await api(`/api/v1/orgs/${encodeURIComponent(orgId)}/tokens`, { method: "POST", body: { label: tokLabel.value.trim() }, signal });
      showSecret(`New token ${r.token_id} for ${orgName(orgId)}.`, r.token, r.token_id);
      say(`Token ${r.token_id} created for ${orgName(orgId)}.`);
      await loadAll();
    } catch (e) {
      if (!isAbort(e)) status.replaceChildren(errorBlock(e, "creating a token"));
    } finally {
      btn.disabled = false;
    }
  });

  orgForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const split = (s) => s.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);
    const asns = [];
    for (const a of split(f.asns.value)) {
      const n = Number(a.replace(/^as/i, ""));
      if (!Number.isInteger(n) || n < 0 || n > 4294967295) return say(`"${a}" is not an AS number.`, "warn");
      asns.push(n);
    }
    const body = {
      name: f.name.value.trim(),
      kind: f.kind.value,
      scope: { cidrs: split(f.cidrs.value), asns, countries: split(f.countries.value).map((c) => c.toUpperCase()) },
      tlp_clearance: f.tlp.value,
    };
    if (!body.name) {
      f.name.focus();
      return say("The member needs a name.", "warn");
    }
    try {
      const r = await api("/api/v1/orgs", { method: "POST", body, signal });
      showSecret(`Member ${r.name} created (${r.id}); its first token is ${r.token_id}.`, r.token, r.token_id);
      say(`Member ${r.name} created.`);
      orgForm.reset();
      await loadAll();
    } catch (e) {
      if (!isAbort(e)) status.replaceChildren(errorBlock(e, "creating the member"));
    }
  });

  // Sensor activity (admin).
  const idle = (s) => (s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`);
  api("/api/v1/sensors", { signal })
    .then((r) => {
      const list = (r && r.sensors) || [];
      if (!list.length) return emptyRow(activityT.tbody, 5, "No events from any sensor in the last 24 hours.");
      activityT.tbody.replaceChildren(...list.map((s) => h("tr", { class: s.idle_secs > 600 ? "revoked" : null },
        h("th", { scope: "row" }, s.sensor),
        td(fmtTime(s.last_event), "nowrap"),
        td(idle(s.idle_secs), "nowrap"),
        td(fmtNum(s.checkins_24h)),
        td(fmtNum(s.dns_queries_24h)))));
    })
    .catch((e) => {
      if (!isAbort(e)) emptyRow(activityT.tbody, 5, `Sensor activity unavailable: ${e.message}`);
    });

  // Health (no token needed).
  fetch("/healthz", { signal, cache: "no-store" })
    .then((r) => r.json())
    .then((j) => {
      for (const [k, label] of [["status", "Status"], ["version", "Version"], ["log_backend", "Log engine"], ["last_seq", "Last event seq"], ["log_records", "Events in the log"], ["subscribers", "Live subscribers"], ["indicators", "Indicators"], ["threats", "Threats"]]) {
        if (j[k] !== undefined) append(health, [h("dt", null, label), h("dd", null, typeof j[k] === "number" ? fmtNum(j[k]) : String(j[k]))]);
      }
    })
    .catch((e) => {
      if (!isAbort(e)) health.replaceChildren(h("dd", null, `Health check failed: ${e.message}`));
    });

  try {
    await loadAll();
  } catch (e) {
    if (isAbort(e)) return;
    const block = errorBlock(e, "the administration pages (an admin token is needed)");
    orgT.tbody.replaceChildren(h("tr", null, h("td", { colspan: 6 }, block)));
    emptyRow(tokT.tbody, 6, "—");
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function start() {
  setupAuth();
  renderAuth();
  window.addEventListener("hashchange", () => {
    if (location.hash === "" || location.hash.startsWith("#/")) {
      route();
      // Move focus to the new page's heading, as a full page load would.
      const h1 = document.querySelector("main h1");
      if (h1) h1.focus({ preventScroll: true });
    }
  });
  route();
  refreshMe();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
