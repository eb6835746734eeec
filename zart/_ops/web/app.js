// zart web view: polls the JSON API every 1.5 s. No build step, no dependencies.
"use strict";

const POLL_MS = 1500;
const PAGE = 50;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STATUSES = ["pending", "running", "sleeping", "waiting", "completed", "failed", "cancelled"];
const state = { offset: 0, timer: null };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path) {
  const headers = {};
  const token = sessionStorage.getItem("zart-token");
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    $("#auth").hidden = false;
    throw new Error("this server needs an API token");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || response.statusText);
  return body;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 0.0001) return "<0.1 ms";
  if (seconds < 1) return (seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0) + " ms";
  if (seconds < 120) return seconds.toFixed(2) + " s";
  return (seconds / 60).toFixed(1) + " min";
}

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { hour12: false });
}

function badge(status) {
  return el("span", { class: "badge " + status, "data-status": status }, status);
}

function elapsed(exec) {
  if (exec.duration !== null && exec.duration !== undefined) return exec.duration;
  if (!exec.started_at) return null;
  return (Date.now() - new Date(exec.started_at).getTime()) / 1000;
}

async function renderCounts() {
  const data = await api("/api/counts");
  const nav = $("#counts");
  nav.replaceChildren(
    ...STATUSES.filter((s) => data.counts[s] > 0).map((s) =>
      el("a", { class: "count " + s, href: "#/?status=" + s, "data-count": s }, s + " ", el("b", {}, data.counts[s]))
    )
  );
}

async function renderList(params) {
  const status = params.get("status") || "";
  $("#status-filter").value = status;
  const query = new URLSearchParams({ limit: PAGE, offset: state.offset });
  if (status) query.set("status", status);
  const name = $("#name-filter").value.trim();
  if (name) query.set("name", name);
  const page = await api("/api/executions?" + query);
  const rows = page.items.map((e) =>
    el("tr", { class: "row " + e.status, "data-id": e.id, "data-status": e.status, onclick: () => (location.hash = "#/executions/" + encodeURIComponent(e.id)) },
      el("td", { class: "id" }, el("a", { href: "#/executions/" + encodeURIComponent(e.id) }, e.id)),
      el("td", {}, e.durable_name),
      el("td", {}, badge(e.status)),
      el("td", { class: "num" }, e.attempts),
      el("td", {}, fmtTime(e.created_at)),
      el("td", { class: "num" }, fmtDuration(elapsed(e))),
      el("td", { class: "error" }, e.error || "")
    )
  );
  $("#executions tbody").replaceChildren(...rows);
  $("#empty").hidden = rows.length > 0;
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = page.next_offset === null;
}

async function renderDetail(id) {
  const [exec, steps] = await Promise.all([
    api("/api/executions/" + encodeURIComponent(id)),
    api("/api/executions/" + encodeURIComponent(id) + "/steps"),
  ]);
  const facts = [
    ["durable", exec.durable_name],
    ["attempts", exec.attempts],
    ["created", fmtTime(exec.created_at)],
    ["started", fmtTime(exec.started_at)],
    ["finished", fmtTime(exec.finished_at)],
    ["duration", fmtDuration(elapsed(exec))],
  ];
  if (exec.wake_at) facts.push(["wakes", fmtTime(exec.wake_at)]);
  if (exec.parent_id) facts.push(["parent", exec.parent_id]);
  const parts = [
    el("h1", { class: "exec-title", "data-id": exec.id, "data-status": exec.status }, exec.id, " ", badge(exec.status)),
    el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    exec.error ? el("p", { class: "exec-error" }, exec.error) : null,
    exec.status === "completed" ? el("pre", { class: "result" }, JSON.stringify(exec.result, null, 2)) : null,
  ];
  $("#detail").replaceChildren(...parts.filter((p) => p !== null));
  // Timeline: each bar sits at its start and spans its duration, on one time axis.
  const t0 = exec.started_at ? new Date(exec.started_at).getTime() : Date.now();
  const ends = steps.items.map((s) => (s.finished_at ? new Date(s.finished_at).getTime() : Date.now()));
  const t1 = Math.max(t0 + 1, exec.finished_at ? new Date(exec.finished_at).getTime() : Date.now(), ...ends);
  const span = t1 - t0;
  const rows = steps.items.map((s) => {
    const start = s.started_at ? new Date(s.started_at).getTime() : t0;
    const end = s.finished_at ? new Date(s.finished_at).getTime() : Date.now();
    const left = Math.max(0, Math.min(100, ((start - t0) / span) * 100));
    const width = Math.max(0.6, Math.min(100 - left, ((end - start) / span) * 100));
    return el("div", { class: "step " + s.status, "data-step": s.name, "data-status": s.status },
      el("div", { class: "step-head" },
        el("span", { class: "seq" }, "#" + s.seq),
        el("span", { class: "step-name" }, s.name),
        s.kind !== "step" ? el("span", { class: "kind" }, s.kind) : null,
        badge(s.status),
        el("span", { class: "attempts", title: "attempts" }, s.attempts + (s.attempts === 1 ? " attempt" : " attempts")),
        el("span", { class: "dur" }, fmtDuration(s.duration))
      ),
      el("div", { class: "track" }, el("div", { class: "bar", style: `left:${left}%;width:${width}%` })),
      s.error ? el("div", { class: "step-error" }, s.error) : null,
      !s.error && s.output_preview ? el("div", { class: "preview" }, s.output_preview) : null
    );
  });
  if (!rows.length) rows.push(el("p", { class: "muted" }, "No steps recorded yet."));
  $("#timeline").replaceChildren(...rows);
  return TERMINAL.has(exec.status);
}

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const match = path.match(/^\/executions\/(.+)$/);
  return { id: match ? decodeURIComponent(match[1]) : null, params: new URLSearchParams(query || "") };
}

async function refresh() {
  clearTimeout(state.timer);
  const { id, params } = route();
  $("#list-view").hidden = id !== null;
  $("#detail-view").hidden = id === null;
  let pollAgain = true;
  try {
    await renderCounts();
    if (id === null) await renderList(params);
    else pollAgain = !(await renderDetail(id));
    $("#problem").hidden = true;
    document.body.dataset.loaded = "true";
  } catch (err) {
    $("#problem").textContent = String(err.message || err);
    $("#problem").hidden = false;
  }
  // A finished execution does not change: stop polling it (the list keeps polling).
  $("#live").classList.toggle("paused", !pollAgain);
  if (pollAgain) state.timer = setTimeout(refresh, POLL_MS);
}

$("#status-filter").addEventListener("change", (e) => {
  state.offset = 0;
  location.hash = e.target.value ? "#/?status=" + e.target.value : "#/";
});
$("#name-filter").addEventListener("change", () => { state.offset = 0; refresh(); });
$("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refresh(); });
$("#next").addEventListener("click", () => { state.offset += PAGE; refresh(); });
$("#auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("zart-token", $("#token").value);
  $("#auth").hidden = true;
  refresh();
});
window.addEventListener("hashchange", refresh);
refresh();
