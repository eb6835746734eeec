// zart web view: the timeline of one execution, drawn on canvases.
//
// Rows are virtual: whatever the number of steps, only the rows in view are drawn, on
// one canvas, from column-wise data (GET /api/executions/{id}/timeline). An overview
// canvas above shows every step at once (x: time, y: call order). Templated names
// (charge:17, charge:18, ...) collapse into one group row, which expands into a
// histogram of its durations and its steps. No DOM element per step.
"use strict";

(function () {
  const ROW_H = 22;
  const HIST_ROWS = 3; // a group's histogram spans this many rows
  const GROUP_MIN = 5; // fewer steps sharing a template are shown one by one
  const OVERVIEW_H = 96;
  const COLORS = {
    completed: "#15803d", failed: "#dc2626", retrying: "#d97706", running: "#2563eb",
    sleeping: "#7c3aed", waiting: "#b45309", pending: "#6b7280", cancelled: "#4b5563",
  };
  const SEP = /([-_:./ #@=,;|]+)/;
  const HOLE = "{…}";

  // A name's template: parts holding a digit become {…} ("charge:17" -> "charge:{…}").
  function digitsKey(name) {
    return name.split(SEP).map((part, i) => (i % 2 === 0 && /\d/.test(part) ? HOLE : part)).join("");
  }

  // The key with its last part a hole ("send:alice" -> "send:{…}"); null if it has one part.
  function lastKey(key) {
    const parts = key.split(SEP);
    if (parts.length < 3) return null;
    parts[parts.length - 1] = HOLE;
    return parts.join("");
  }

  // Group key of every name: its digit template, or the template of its last part when
  // at least 10 distinct names share everything else.
  function groupKeys(names) {
    const keys = names.map(digitsKey);
    const variety = new Map();
    keys.forEach((key) => {
      const last = lastKey(key);
      if (last !== null && !key.endsWith(HOLE)) {
        const seen = variety.get(last) || new Set();
        seen.add(key);
        variety.set(last, seen);
      }
    });
    return keys.map((key) => {
      const last = lastKey(key);
      return last !== null && variety.has(last) && variety.get(last).size >= 10 ? last : key;
    });
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 0.1) return "<0.1 ms";
    if (ms < 10) return ms.toFixed(1) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 120000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }

  function quantile(sorted, q) {
    if (!sorted.length) return null;
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  class Timeline {
    constructor(els, onSelect) {
      this.els = els; // {overview, wrap, scroller, spacer, canvas}
      this.onSelect = onSelect;
      this.data = null;
      this.filter = { text: "", status: "" };
      this.grouping = true;
      this.expanded = new Set();
      this.selected = null; // step index
      this.rows = [];
      this.frame = 0;
      els.scroller.addEventListener("scroll", () => this.schedule());
      els.scroller.addEventListener("click", (e) => this.click(e));
      els.scroller.addEventListener("keydown", (e) => this.key(e));
      els.overview.addEventListener("click", (e) => this.overviewClick(e));
      window.addEventListener("resize", () => { this.drawOverview(); this.schedule(); });
    }

    // New data (a refresh keeps filters, open groups and the selection, by name).
    setData(data) {
      const selectedName = this.selected !== null && this.data ? this.data.name[this.selected] : null;
      const n = data.count;
      const end = new Float64Array(n);
      let span = 1;
      for (let i = 0; i < n; i++) {
        const s = data.start[i] || 0;
        end[i] = s + (data.duration[i] || 0);
        if (end[i] > span) span = end[i];
      }
      this.data = data;
      this.end = end;
      this.span = span;
      this.status = data.step_status.map((k) => data.statuses[k]);
      this.keys = groupKeys(data.name);
      this.index = new Map(data.name.map((name, i) => [name, i]));
      this.selected = selectedName !== null && this.index.has(selectedName) ? this.index.get(selectedName) : null;
      this.rebuild();
      this.drawOverview();
    }

    setFilter(filter) { this.filter = filter; this.rebuild(); }
    setGrouping(on) { this.grouping = on; this.rebuild(); }

    matches(i) {
      const f = this.filter;
      if (f.status && this.status[i] !== f.status) return false;
      return !f.text || this.data.name[i].toLowerCase().includes(f.text);
    }

    rebuild() {
      const d = this.data;
      const rows = [];
      if (d) {
        const shown = [];
        for (let i = 0; i < d.count; i++) if (this.matches(i)) shown.push(i);
        const groups = new Map();
        if (this.grouping) {
          for (const i of shown) {
            const members = groups.get(this.keys[i]);
            if (members) members.push(i); else groups.set(this.keys[i], [i]);
          }
        }
        const placed = new Set();
        for (const i of shown) {
          const members = groups.get(this.keys[i]);
          if (!members || members.length < GROUP_MIN) { rows.push({ type: "step", i, depth: 0 }); continue; }
          if (placed.has(this.keys[i])) continue;
          placed.add(this.keys[i]);
          rows.push(this.groupRow(this.keys[i], members));
          if (this.expanded.has(this.keys[i])) {
            rows.push({ type: "hist", key: this.keys[i], members, stats: rows[rows.length - 1].stats });
            for (let k = 1; k < HIST_ROWS; k++) rows.push({ type: "pad" });
            for (const m of members) rows.push({ type: "step", i: m, depth: 1 });
          }
        }
      }
      this.rows = rows;
      this.shown = rows.filter((r) => r.type === "step" || r.type === "group").length;
      this.els.spacer.style.height = rows.length * ROW_H + "px";
      const fit = Math.min(rows.length * ROW_H + 4, Math.max(240, window.innerHeight * 0.62), 640);
      this.els.wrap.style.height = Math.max(3 * ROW_H, fit) + "px";
      this.schedule();
    }

    groupRow(key, members) {
      const d = this.data;
      const durations = members.map((m) => d.duration[m]).filter((v) => v !== null).sort((a, b) => a - b);
      let failed = 0;
      for (const m of members) if (this.status[m] === "failed") failed++;
      const total = durations.reduce((a, b) => a + b, 0);
      return {
        type: "group", key, members,
        stats: { durations, failed, total, p50: quantile(durations, 0.5), p95: quantile(durations, 0.95),
                 max: durations.length ? durations[durations.length - 1] : null },
      };
    }

    // --- drawing ---------------------------------------------------------------------

    schedule() {
      if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
    }

    layout(width) {
      const label = Math.min(360, Math.max(160, Math.floor(width * 0.32)));
      const right = 96;
      return { label, x0: label + 8, w: Math.max(40, width - label - 8 - right), right };
    }

    sized(canvas, width, height) {
      const ratio = window.devicePixelRatio || 1;
      if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
        canvas.width = Math.round(width * ratio);
        canvas.height = Math.round(height * ratio);
        canvas.style.width = width + "px";
        canvas.style.height = height + "px";
      }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      return ctx;
    }

    draw() {
      const sc = this.els.scroller;
      const width = sc.clientWidth;
      const height = sc.clientHeight;
      const ctx = this.sized(this.els.canvas, width, height);
      ctx.clearRect(0, 0, width, height);
      if (!this.data) return;
      const L = this.layout(width);
      const top = sc.scrollTop;
      const first = Math.max(0, Math.floor(top / ROW_H) - (HIST_ROWS - 1));
      const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_H));
      ctx.font = "12px ui-monospace, 'DejaVu Sans Mono', monospace";
      ctx.textBaseline = "middle";
      for (let r = first; r < last; r++) {
        const row = this.rows[r];
        const y = r * ROW_H - top;
        if (row.type === "step") this.drawStep(ctx, row, y, L, width);
        else if (row.type === "group") this.drawGroup(ctx, row, y, L, width);
        else if (row.type === "hist") this.drawHist(ctx, row, y, L);
      }
      this.drawn = { first, last, at: performance.now() };
      document.body.dataset.timelineDrawn = String(Math.round(this.drawn.at));
    }

    x(ms, L) { return L.x0 + (ms / this.span) * L.w; }

    text(ctx, value, x, y, maxWidth, color) {
      ctx.fillStyle = color;
      let s = value;
      if (ctx.measureText(s).width > maxWidth) {
        const per = ctx.measureText("M").width || 7;
        s = s.slice(0, Math.max(1, Math.floor(maxWidth / per) - 1)) + "…";
      }
      ctx.fillText(s, x, y);
    }

    drawStep(ctx, row, y, L, width) {
      const d = this.data;
      const i = row.i;
      const status = this.status[i];
      if (i === this.selected) { ctx.fillStyle = "#dbeafe"; ctx.fillRect(0, y, width, ROW_H); }
      else if (row.depth) { ctx.fillStyle = "#fafbfc"; ctx.fillRect(0, y, width, ROW_H); }
      const indent = 8 + row.depth * 18;
      ctx.fillStyle = COLORS[status] || COLORS.pending;
      ctx.fillRect(indent, y + 7, 8, 8);
      const label = "#" + d.seq[i] + " " + d.name[i];
      this.text(ctx, label, indent + 14, y + ROW_H / 2, L.label - indent - 16, status === "failed" ? "#991b1b" : "#1d2330");
      const start = d.start[i] || 0;
      const x0 = this.x(start, L);
      const w = Math.max(status === "failed" ? 3 : 1.5, this.x(this.end[i], L) - x0);
      ctx.fillStyle = COLORS[status] || COLORS.pending;
      ctx.fillRect(x0, y + 5, w, ROW_H - 10);
      if (d.attempts[i] > 1) this.text(ctx, "×" + d.attempts[i], Math.min(x0 + w + 4, L.x0 + L.w - 20), y + ROW_H / 2, 40, "#b45309");
      this.text(ctx, fmtMs(d.duration[i]), width - L.right + 8, y + ROW_H / 2, L.right - 10, "#6b7280");
    }

    drawGroup(ctx, row, y, L, width) {
      const open = this.expanded.has(row.key);
      ctx.fillStyle = "#eef2f7";
      ctx.fillRect(0, y + 1, width, ROW_H - 2);
      const label = (open ? "▾ " : "▸ ") + row.key + "  ×" + row.members.length.toLocaleString("en-US");
      this.text(ctx, label, 8, y + ROW_H / 2, L.label - 12, row.stats.failed ? "#991b1b" : "#1d2330");
      // Every member on one lane: where the group's time went at a glance.
      ctx.globalAlpha = row.members.length > 200 ? 0.35 : 0.7;
      for (const m of row.members) {
        if (this.status[m] === "failed") continue;
        const x0 = this.x(this.data.start[m] || 0, L);
        ctx.fillStyle = COLORS[this.status[m]] || COLORS.pending;
        ctx.fillRect(x0, y + 6, Math.max(1, this.x(this.end[m], L) - x0), ROW_H - 12);
      }
      ctx.globalAlpha = 1;
      for (const m of row.members) {
        if (this.status[m] !== "failed") continue;
        ctx.fillStyle = COLORS.failed;
        ctx.fillRect(this.x(this.data.start[m] || 0, L) - 1, y + 3, 3, ROW_H - 6);
      }
      this.text(ctx, "p50 " + fmtMs(row.stats.p50), width - L.right + 8, y + ROW_H / 2, L.right - 10, "#6b7280");
    }

    // The group's durations as a histogram (log scale), with p50 / p95 / max.
    drawHist(ctx, row, y, L) {
      const ds = row.stats.durations;
      const h = HIST_ROWS * ROW_H;
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, y, L.x0 + L.w + L.right, h);
      if (!ds.length) return;
      const lo = Math.log10(Math.max(ds[0], 0.01));
      const hi = Math.log10(Math.max(ds[ds.length - 1], 0.01)) + 1e-9;
      const buckets = new Array(40).fill(0);
      for (const v of ds) {
        const k = Math.min(39, Math.floor(((Math.log10(Math.max(v, 0.01)) - lo) / (hi - lo || 1)) * 40));
        buckets[k]++;
      }
      const peak = Math.max(...buckets);
      const bw = L.w / 40;
      ctx.fillStyle = "#64748b";
      buckets.forEach((count, k) => {
        if (!count) return;
        const bh = Math.max(2, (count / peak) * (h - 22));
        ctx.fillRect(L.x0 + k * bw + 1, y + h - 14 - bh, Math.max(1, bw - 2), bh);
      });
      const s = row.stats;
      const count = `${ds.length.toLocaleString("en-US")} durations` + (s.failed ? ` · ${s.failed} failed` : "");
      this.text(ctx, count, 26, y + 14, L.label - 30, "#334155");
      this.text(ctx, `p50 ${fmtMs(s.p50)} · p95 ${fmtMs(s.p95)}`, 26, y + 32, L.label - 30, "#334155");
      this.text(ctx, `max ${fmtMs(s.max)}`, 26, y + 50, L.label - 30, "#334155");
      this.text(ctx, fmtMs(ds[0]), L.x0, y + h - 6, 80, "#6b7280");
      this.text(ctx, fmtMs(s.max), L.x0 + L.w - 60, y + h - 6, 80, "#6b7280");
    }

    drawOverview() {
      const c = this.els.overview;
      const width = c.parentElement.clientWidth;
      const ctx = this.sized(c, width, OVERVIEW_H);
      ctx.clearRect(0, 0, width, OVERVIEW_H);
      if (!this.data || !this.data.count) return;
      const L = this.layout(width);
      const d = this.data;
      const n = d.count;
      ctx.fillStyle = "#f3f4f6";
      ctx.fillRect(L.x0, 0, L.w, OVERVIEW_H);
      ctx.fillStyle = "#1d2330";
      ctx.font = "12px system-ui, sans-serif";
      ctx.textBaseline = "top";
      ctx.fillText(n.toLocaleString("en-US") + " steps", 8, 6);
      ctx.fillText("0 → " + fmtMs(this.span), 8, 24);
      for (let i = 0; i < n; i++) {
        if (this.status[i] === "failed") continue;
        const yy = Math.floor((i / n) * (OVERVIEW_H - 2));
        const x0 = this.x(d.start[i] || 0, L);
        ctx.fillStyle = COLORS[this.status[i]] || COLORS.pending;
        ctx.fillRect(x0, yy, Math.max(1, this.x(this.end[i], L) - x0), 2);
      }
      ctx.fillStyle = COLORS.failed;
      for (let i = 0; i < n; i++) {
        if (this.status[i] !== "failed") continue;
        ctx.fillRect(this.x(d.start[i] || 0, L) - 2, Math.floor((i / n) * (OVERVIEW_H - 6)), 5, 6);
      }
    }

    // --- interaction -------------------------------------------------------------------

    rowAt(offsetY) {
      const r = Math.floor((offsetY + this.els.scroller.scrollTop) / ROW_H);
      let k = r;
      while (k >= 0 && this.rows[k] && this.rows[k].type === "pad") k--;
      return this.rows[k] ? k : null;
    }

    click(e) {
      const rect = this.els.scroller.getBoundingClientRect();
      const r = this.rowAt(e.clientY - rect.top);
      if (r === null) return;
      const row = this.rows[r];
      if (row.type === "group" || row.type === "hist") this.toggle(row.key);
      else if (row.type === "step") this.select(row.i);
    }

    key(e) {
      const steps = this.rows.map((row, r) => [row, r]).filter(([row]) => row.type === "step");
      const at = steps.findIndex(([row]) => row.i === this.selected);
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        const next = steps[Math.max(0, Math.min(steps.length - 1, at + (e.key === "ArrowDown" ? 1 : -1)))];
        if (next) { this.select(next[0].i); this.scrollTo(next[1]); }
        e.preventDefault();
      }
    }

    overviewClick(e) {
      if (!this.data || !this.data.count) return;
      const rect = this.els.overview.getBoundingClientRect();
      const i = Math.min(this.data.count - 1, Math.max(0, Math.floor(((e.clientY - rect.top) / OVERVIEW_H) * this.data.count)));
      this.reveal(i);
    }

    toggle(key) {
      if (this.expanded.has(key)) this.expanded.delete(key); else this.expanded.add(key);
      this.rebuild();
    }

    select(i) {
      this.selected = i;
      this.schedule();
      if (this.onSelect) this.onSelect(i, this.data);
    }

    scrollTo(r) {
      const sc = this.els.scroller;
      const y = r * ROW_H;
      if (y < sc.scrollTop || y + ROW_H > sc.scrollTop + sc.clientHeight) {
        sc.scrollTop = Math.max(0, y - sc.clientHeight / 2);
      }
    }

    // Show step i: clear filters that hide it, open its group, scroll to it, select it.
    reveal(i) {
      if (!this.matches(i)) { this.filter = { text: "", status: "" }; if (this.onFilterReset) this.onFilterReset(); }
      if (this.grouping) this.expanded.add(this.keys[i]);
      this.rebuild();
      const r = this.rows.findIndex((row) => row.type === "step" && row.i === i);
      if (r >= 0) this.scrollTo(r);
      this.select(i);
    }

    firstFailed() {
      if (!this.data) return null;
      let retrying = null;
      for (let i = 0; i < this.data.count; i++) {
        if (this.status[i] === "failed") return i;
        if (retrying === null && this.status[i] === "retrying") retrying = i;
      }
      return retrying;
    }

    // What the page shows, for tests and tools: counts, not pixels.
    state() {
      const visible = this.rows.slice(this.drawn ? this.drawn.first : 0, this.drawn ? this.drawn.last : 0);
      return {
        steps: this.data ? this.data.count : 0,
        rows: this.rows.length,
        shown: this.shown,
        groups: this.rows.filter((r) => r.type === "group").map((r) => ({ key: r.key, count: r.members.length, open: this.expanded.has(r.key) })),
        visible: visible.filter((r) => r.type === "step").map((r) => this.data.name[r.i]),
        selected: this.selected === null ? null : this.data.name[this.selected],
        domRows: this.els.wrap.querySelectorAll("*").length,
      };
    }
  }

  window.ZartTimeline = { Timeline, groupKeys, fmtMs, COLORS };
})();
