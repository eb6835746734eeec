// zart web view: polls the JSON API. No build step, no dependencies, no inline script
// (the server's Content-Security-Policy forbids it).
"use strict";

const POLL_MS = 1500;
const PAGE = 50;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STATUSES = ["pending", "running", "sleeping", "waiting", "paused", "completed", "failed", "cancelled"];
const state = { offset: 0, timer: null, total: null, detailId: null, timeline: null, timelineAt: 0, timelineMs: 0 };
const { Timeline, fmtMs } = window.ZartTimeline;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key === "title" || key === "aria-label") node.setAttribute(key, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
  get outage() { return this.status === 0 || this.status === 503; }
}

async function api(path) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem("zart-token");
  if (token) headers.Authorization = "Bearer " + token;
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store" });
  } catch (err) {
    throw new ApiError("the zart server does not answer", 0, "offline");
  }
  if (response.status === 401) {
    $("#auth").hidden = false;
    throw new ApiError("this server needs an API token", 401, "unauthorized");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    throw new ApiError((body && body.message) || response.statusText, response.status, body && body.error);
  }
  return body;
}

const execPath = (id, action) => "/api/executions/" + encodeURIComponent(id) + (action ? "/" + action : "");

function fmtDuration(seconds) {
  return seconds === null || seconds === undefined ? "–" : fmtMs(seconds * 1000);
}

function fmtTime(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { hour12: false }) : "–";
}

function fmtSize(chars) {
  if (chars === null || chars === undefined) return "–";
  if (chars < 1024) return chars + " B";
  if (chars < 1024 * 1024) return (chars / 1024).toFixed(1) + " kB";
  return (chars / 1024 / 1024).toFixed(1) + " MB";
}

function badge(status) {
  return el("span", { class: "badge " + status, "data-status": status }, status);
}

function elapsed(exec) {
  if (exec.duration !== null && exec.duration !== undefined) return exec.duration;
  if (!exec.started_at || TERMINAL.has(exec.status)) return null;
  return (Date.now() - new Date(exec.started_at).getTime()) / 1000;
}

// --- outage banner -------------------------------------------------------------------

const OUTAGE_TEXT = {
  offline: "The zart server does not answer.",
  shutting_down: "The zart server is shutting down.",
  database_unavailable: "The database does not answer.",
};

function showOutage(err) {
  $("#outage-text").textContent = OUTAGE_TEXT[err.code] || err.message;
  $("#outage").hidden = false;
  document.body.dataset.outage = "true";
  $("#live").textContent = "outage";
  $("#live").className = "live down";
}

function clearOutage() {
  $("#outage").hidden = true;
  document.body.dataset.outage = "false";
  $("#live").textContent = "live";
  $("#live").className = "live";
}

// --- list view -----------------------------------------------------------------------

async function renderCounts() {
  const data = await api("/api/counts");
  state.counts = data;
  $("#counts").replaceChildren(
    ...STATUSES.filter((s) => data.counts[s] > 0).map((s) =>
      el("a", { class: "count " + s, href: "#/?status=" + s, "data-count": s }, s + " ",
        el("b", {}, data.counts[s].toLocaleString("en-US")))
    )
  );
}

function listRow(e) {
  const href = "#/executions/" + encodeURIComponent(e.id);
  return el("tr", { class: "row " + e.status, "data-id": e.id, "data-status": e.status, onclick: () => (location.hash = href) },
    el("td", { class: "id", title: e.id }, el("a", { href }, e.id)),
    el("td", { class: "name", title: e.durable_name }, e.durable_name),
    el("td", {}, badge(e.status)),
    el("td", { class: "num" }, e.attempts),
    el("td", {}, fmtTime(e.created_at)),
    el("td", { class: "num" }, fmtDuration(elapsed(e))),
    el("td", { class: "error", title: e.error || "" }, e.error || (e.paused_by ? "held by pause rule " + e.paused_by : ""))
  );
}

async function renderList(params, counted) {
  const key = params.toString();
  if (state.listKey !== key) state.offset = 0; // another filter: its first page
  state.listKey = key;
  const status = params.get("status") || "";
  $("#status-filter").value = status;
  const query = new URLSearchParams({ limit: PAGE, offset: state.offset });
  if (status) query.set("status", status);
  const name = $("#name-filter").value.trim();
  if (name) query.set("name", name);
  const [page] = await Promise.all([api("/api/executions?" + query), counted]);
  const rows = page.items.map(listRow);
  $("#executions tbody").replaceChildren(...rows);
  $("#empty").hidden = rows.length > 0;
  // The total is known from the counts unless a durable name narrows the list.
  const counts = state.counts;
  state.total = name || !counts ? null : status ? counts.counts[status] : counts.total;
  const from = rows.length ? state.offset + 1 : 0;
  const to = state.offset + rows.length;
  const of = state.total === null ? "" : " of " + state.total.toLocaleString("en-US");
  $("#range").textContent = from.toLocaleString("en-US") + "–" + to.toLocaleString("en-US") + of;
  $("#first").disabled = $("#prev").disabled = state.offset === 0;
  $("#next").disabled = page.next_offset === null;
  $("#last").disabled = state.total === null || page.next_offset === null;
}

// --- detail view ---------------------------------------------------------------------

function facts(exec) {
  const list = [
    ["durable", exec.durable_name],
    ["attempts", exec.attempts],
    ["created", fmtTime(exec.created_at)],
    ["started", fmtTime(exec.started_at)],
    ["finished", fmtTime(exec.finished_at)],
    ["duration", fmtDuration(elapsed(exec))],
  ];
  if (exec.recoveries) list.push(["recoveries", exec.recoveries]);
  if (exec.version) list.push(["version", exec.version]);
  if (exec.ran_versions && exec.ran_versions.length > 1) list.push(["ran under", exec.ran_versions.join(" → ")]);
  if (exec.wake_at) list.push(["wakes", fmtTime(exec.wake_at)]);
  if (exec.paused_by) list.push(["paused by", "pause rule " + exec.paused_by + " (zart resume --rule " + exec.paused_by + ")"]);
  if (exec.parent_id) list.push(["parent", exec.parent_id]);
  return el("dl", { class: "facts" },
    ...list.flatMap(([k, v]) => [el("dt", {}, k), el("dd", k === "duration" ? { id: "facts-duration" } : {}, v)]));
}

// Input and result: size and preview; the full value only when asked for.
function payload(exec, what) {
  const size = exec[what + "_size"];
  if (size === null || size === undefined) return null;
  const box = el("div", { class: "payload", "data-payload": what });
  const show = el("button", { type: "button", class: "link" }, "show " + what + " (" + fmtSize(size) + ")");
  show.addEventListener("click", async () => {
    show.disabled = true;
    try {
      const data = await api(execPath(exec.id, what));
      box.replaceChildren(el("h3", {}, what), el("pre", { class: "json" }, JSON.stringify(data[what], null, 2)));
    } catch (err) {
      show.disabled = false;
      box.append(el("p", { class: "problem" }, err.message));
    }
  });
  box.append(el("span", { class: "muted" }, what + ": "), el("code", { class: "preview" }, exec[what + "_preview"] || ""), " ", show);
  return box;
}

function renderExecution(exec) {
  if (state.shownExec && state.shownExec.updated_at === exec.updated_at && state.shownExec.id === exec.id) {
    const shown = $("#facts-duration");
    if (shown) shown.textContent = fmtDuration(elapsed(exec));
    return;
  }
  state.shownExec = exec;
  $("#detail").replaceChildren(
    el("h1", { class: "exec-title", "data-id": exec.id, "data-status": exec.status }, el("span", { class: "exec-id" }, exec.id), " ", badge(exec.status)),
    facts(exec),
    exec.error ? el("p", { class: "exec-error" }, exec.error) : el("span"),
  );
  $("#payloads").replaceChildren(...[payload(exec, "input"), payload(exec, "result")].filter(Boolean));
}

function renderSummary(data) {
  const tl = state.timeline;
  const counts = {};
  let total = 0;
  let retried = 0;
  const slow = [];
  for (let i = 0; i < data.count; i++) {
    const st = data.statuses[data.step_status[i]];
    counts[st] = (counts[st] || 0) + 1;
    total += data.duration[i] || 0;
    if (data.attempts[i] > 1) retried++;
    if (data.duration[i] !== null) slow.push(i);
  }
  slow.sort((a, b) => data.duration[b] - data.duration[a]);
  const groups = tl.rows.filter((r) => r.type === "group").length;
  const chips = Object.entries(counts).map(([st, n]) =>
    el("button", { type: "button", class: "chip " + st, "data-status": st, onclick: () => setStepStatus(st) }, st + " ", el("b", {}, n.toLocaleString("en-US"))));
  const slowest = slow.slice(0, 5).map((i) =>
    el("li", {}, el("button", { type: "button", class: "link", onclick: () => tl.reveal(i) }, data.name[i]), " ", el("span", { class: "muted" }, fmtMs(data.duration[i]))));
  $("#summary").replaceChildren(
    el("div", { class: "stat" }, el("span", { class: "muted" }, "steps"), el("b", { "data-steps": data.count }, data.count.toLocaleString("en-US"))),
    el("div", { class: "stat" }, el("span", { class: "muted" }, "time in steps"), el("b", {}, fmtMs(total))),
    el("div", { class: "stat" }, el("span", { class: "muted" }, "wall time"), el("b", {}, fmtMs(tl.span))),
    el("div", { class: "stat" }, el("span", { class: "muted" }, "retried"), el("b", {}, retried.toLocaleString("en-US"))),
    el("div", { class: "stat" }, el("span", { class: "muted" }, "name groups"), el("b", {}, groups)),
    el("div", { class: "chips" }, ...chips),
    el("div", { class: "slowest" }, el("span", { class: "muted" }, "slowest"), el("ol", {}, ...slowest)),
  );
  $("#jump-failed").disabled = tl.firstFailed() === null;
}

function setStepStatus(status) {
  $("#step-status").value = status;
  applyFilter();
}

function applyFilter() {
  state.timeline.setFilter({ text: $("#step-filter").value.trim().toLowerCase(), status: $("#step-status").value });
  $("#shown").textContent = state.timeline.shown.toLocaleString("en-US") + " rows";
}

async function openPanel(i, data) {
  const name = data.name[i];
  const panel = $("#panel");
  panel.hidden = false;
  panel.dataset.step = name;
  $("#panel-body").replaceChildren(el("h2", {}, name), el("p", { class: "muted" }, "loading…"));
  try {
    const step = await api(execPath(state.detailId, "steps") + "/" + encodeURIComponent(name));
    if (panel.dataset.step === name) $("#panel-body").replaceChildren(...stepDetail(step));
  } catch (err) {
    $("#panel-body").replaceChildren(el("h2", {}, name), el("p", { class: "problem" }, err.message));
  }
}

function stepDetail(step) {
  const rows = [
    ["status", badge(step.status)], ["kind", step.kind], ["call order", "#" + step.seq],
    ["attempts", step.attempts], ["started", fmtTime(step.started_at)], ["finished", fmtTime(step.finished_at)],
    ["duration", fmtDuration(step.duration)], ["arguments", step.fingerprint ? "fingerprint " + step.fingerprint.slice(0, 16) + "… (inputs are not stored)" : "–"],
  ];
  const parts = [
    el("h2", { class: "panel-title", "data-status": step.status }, step.name),
    el("dl", { class: "panel-facts" }, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
  ];
  if (step.error) {
    parts.push(el("h3", {}, "error"), el("p", { class: "step-error" }, (step.error.type || "Error").split(".").pop() + ": " + (step.error.message || "")));
    if (step.error.traceback) parts.push(el("details", {}, el("summary", {}, "traceback"), el("pre", { class: "traceback" }, step.error.traceback)));
  }
  if (step.output_size !== null) {
    const out = el("div", { class: "payload" });
    const show = el("button", { type: "button", class: "link" }, "show output (" + fmtSize(step.output_size) + ")");
    show.addEventListener("click", () => out.replaceChildren(el("pre", { class: "json" }, JSON.stringify(step.output, null, 2))));
    out.append(show);
    parts.push(el("h3", {}, "output"), out);
  }
  return parts;
}

function timelineDue() {
  if (!state.timeline.data) return true;
  if (state.timelineFinal) return false;
  // A large running execution is re-read less often: at most a fifth of the time.
  return performance.now() - state.timelineAt > Math.max(POLL_MS, state.timelineMs * 5) - 250;
}

async function fetchTimeline(id) {
  const t0 = performance.now();
  const data = await api(execPath(id, "timeline"));
  state.timelineMs = performance.now() - t0;
  state.timelineAt = performance.now();
  return data;
}

async function renderDetail(id) {
  if (state.detailId !== id) {
    state.detailId = id;
    state.shownExec = null;
    state.timelineFinal = false;
    state.timeline.data = null;
    state.timeline.expanded.clear();
    state.timeline.selected = null;
    $("#panel").hidden = true;
  }
  const [exec, data] = await Promise.all([api(execPath(id, "overview")), timelineDue() ? fetchTimeline(id) : null]);
  renderExecution(exec);
  if (data !== null) {
    state.timelineFinal = TERMINAL.has(data.status);
    state.timeline.setData(data);
    renderSummary(data);
    applyFilter();
    $("#timeline-empty").hidden = data.count > 0;
    requestAnimationFrame(() => {
      if (!document.body.dataset.timelineMs) document.body.dataset.timelineMs = String(Math.round(performance.now()));
    });
  }
  return TERMINAL.has(exec.status) && state.timelineFinal;
}

// --- routing and polling ---------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const match = path.match(/^\/executions\/(.+)$/);
  return { id: match ? decodeURIComponent(match[1]) : null, params: new URLSearchParams(query || "") };
}

// Queues (zart.Queue): depth, running and limits; hidden while there are none.
async function renderQueues() {
  const data = await api("/api/queues");
  const limit = (v) => (v === null ? "-" : String(v));
  $("#queues").hidden = data.items.length === 0;
  $("#queue-table tbody").replaceChildren(
    ...data.items.map((q) =>
      el("tr", {},
        el("td", {}, q.name), el("td", {}, String(q.pending)), el("td", {}, String(q.running)),
        el("td", {}, limit(q.concurrency)), el("td", {}, limit(q.worker_concurrency)),
        el("td", {}, q.rate_limit ? `${q.rate_limit.count} / ${q.rate_limit.per}s` : "-")))
  );
}

async function refresh() {
  clearTimeout(state.timer);
  const { id, params } = route();
  $("#list-view").hidden = id !== null;
  $("#detail-view").hidden = id === null;
  if (id === null) $("#panel").hidden = true;
  let pollAgain = true;
  try {
    const counted = renderCounts();
    counted.catch(() => {}); // awaited below; no "unhandled rejection" meanwhile
    if (id === null) await Promise.all([renderList(params, counted), renderQueues()]);
    else pollAgain = !(await renderDetail(id));
    await counted;
    $("#problem").hidden = true;
    clearOutage();
    document.body.dataset.loaded = "true";
  } catch (err) {
    if (err.outage) showOutage(err);
    else {
      clearOutage();
      $("#problem").textContent = String(err.message || err);
      $("#problem").hidden = false;
    }
  }
  // A finished execution does not change: stop polling it (the list keeps polling).
  if (!$("#outage").hidden) pollAgain = true;
  else $("#live").classList.toggle("paused", !pollAgain);
  if (pollAgain) state.timer = setTimeout(refresh, POLL_MS);
}

function setup() {
  state.timeline = new Timeline(
    { overview: $("#overview"), wrap: $("#rows-wrap"), scroller: $("#rows"), spacer: $("#rows-spacer"), canvas: $("#rows-canvas") },
    (i, data) => openPanel(i, data)
  );
  state.timeline.onFilterReset = () => { $("#step-filter").value = ""; $("#step-status").value = ""; };
  $("#status-filter").addEventListener("change", (e) => {
    state.offset = 0;
    location.hash = e.target.value ? "#/?status=" + e.target.value : "#/";
  });
  $("#name-filter").addEventListener("change", () => { state.offset = 0; refresh(); });
  $("#goto-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("#goto-id").value.trim();
    if (id) location.hash = "#/executions/" + encodeURIComponent(id);
  });
  $("#first").addEventListener("click", () => { state.offset = 0; refresh(); });
  $("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refresh(); });
  $("#next").addEventListener("click", () => { state.offset += PAGE; refresh(); });
  $("#last").addEventListener("click", () => {
    if (state.total) { state.offset = Math.floor((state.total - 1) / PAGE) * PAGE; refresh(); }
  });
  $("#step-filter").addEventListener("input", applyFilter);
  $("#step-status").addEventListener("change", applyFilter);
  $("#group-toggle").addEventListener("change", (e) => { state.timeline.setGrouping(e.target.checked); applyFilter(); });
  $("#jump-failed").addEventListener("click", () => {
    const i = state.timeline.firstFailed();
    if (i !== null) state.timeline.reveal(i);
  });
  $("#panel-close").addEventListener("click", () => { $("#panel").hidden = true; });
  $("#auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("zart-token", $("#token").value);
    $("#auth").hidden = true;
    refresh();
  });
  for (const s of ["completed", "failed", "retrying"]) $("#step-status").append(el("option", { value: s }, s));
  window.addEventListener("hashchange", refresh);
  window.zart = { timeline: state.timeline, refresh };
  refresh();
}

setup();
