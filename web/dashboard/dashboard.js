// The Roomwire dashboard: polls the game server's dashboard/data.json once
// a second and draws what it says. Read-only, no dependencies, nothing
// fetched from anywhere but the page's own server. Every value from the
// server (room names come from clients) goes into the page as text, never
// as markup.
//
// A ?token= in the page's URL (the server's -dashboard-token) is sent on
// each poll as an Authorization: Bearer header. The room shown with its
// members is in the URL's fragment (#room=NAME), so a reload keeps it.

const POLL_MS = 1000;
const SPARK_POINTS = 60;
const SVG = "http://www.w3.org/2000/svg";

const token = new URLSearchParams(location.search).get("token");
const headers = token ? { Authorization: `Bearer ${token}` } : {};

let selected = roomFromHash();
let prev = null; // the last poll's data, for rates
const spark = []; // [{in, out}] bytes a second, oldest first

const $ = (id) => document.getElementById(id);

function roomFromHash() {
  const m = location.hash.match(/^#room=(.*)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

function select(name) {
  selected = name;
  history.replaceState(null, "", name === null ? location.pathname + location.search : `#room=${encodeURIComponent(name)}`);
  $("room").hidden = name === null;
  poll.now();
}

// el makes an element with text content (and a class, and attributes).
function el(tag, text, cls, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const [text, cls, col] = Array.isArray(c) ? c : [c];
    tr.append(el("td", text, cls, col ? { "data-col": col } : {}));
  }
  return tr;
}

function fill(table, rows, empty, columns) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const tr = row([[empty, "empty"]]);
    tr.firstChild.colSpan = columns;
    body.append(tr);
  }
}

function bytesRate(v) {
  if (v === null || !isFinite(v)) return "–";
  const units = ["B/s", "kB/s", "MB/s", "GB/s"];
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

const num = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const usToMs = (us) => (us / 1000).toFixed(2);

// rates are bytes a second in and out, per transport and in all, between
// the previous poll and d; null on the first.
function rates(d) {
  const out = { total: { in: null, out: null }, by: {} };
  if (!prev || d.time_ms <= prev.time_ms) return out;
  const dt = (d.time_ms - prev.time_ms) / 1000;
  const before = Object.fromEntries(prev.transports.map((t) => [t.transport, t]));
  let tin = 0;
  let tout = 0;
  for (const t of d.transports) {
    const p = before[t.transport] || { bytes_in: t.bytes_in, bytes_out: t.bytes_out };
    const r = { in: Math.max(0, t.bytes_in - p.bytes_in) / dt, out: Math.max(0, t.bytes_out - p.bytes_out) / dt };
    out.by[t.transport] = r;
    tin += r.in;
    tout += r.out;
  }
  out.total = { in: tin, out: tout };
  return out;
}

// drawSpark draws the last minute of bandwidth, in and out, the newest at
// the right edge, scaled to the largest rate shown.
function drawSpark() {
  const svg = $("bw-spark");
  svg.replaceChildren();
  if (spark.length < 2) return;
  const w = 240;
  const h = 40;
  const step = w / (SPARK_POINTS - 1);
  const top = Math.max(1, ...spark.map((p) => Math.max(p.in, p.out)));
  for (const dir of ["in", "out"]) {
    const pts = spark.map((p, i) => `${w - (spark.length - 1 - i) * step},${h - 2 - (p[dir] / top) * (h - 4)}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("class", dir);
    svg.append(line);
  }
}

// drawHist draws distribution d (edges, counts) as bars, each labelled
// with its bucket's upper edge (the last: above the last edge) and count.
function drawHist(svg, d, unit) {
  svg.replaceChildren();
  const n = d.counts.length;
  const w = 240 / n;
  const top = Math.max(1, ...d.counts);
  d.counts.forEach((c, i) => {
    const h = (c / top) * 62;
    const x = i * w;
    const bar = document.createElementNS(SVG, "rect");
    Object.entries({ x: x + 1, y: 74 - h, width: w - 2, height: h, "data-count": c }).forEach(([k, v]) => bar.setAttribute(k, v));
    const label = i < d.edges.length ? `${d.edges[i]}` : `>${d.edges[d.edges.length - 1]}`;
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${i < d.edges.length ? "≤" : ""}${label} ${unit}: ${c} connection${c === 1 ? "" : "s"}`;
    bar.append(title);
    const t = document.createElementNS(SVG, "text");
    Object.entries({ x: x + w / 2, y: 86, "text-anchor": "middle" }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = label;
    svg.append(bar, t);
    if (c > 0) {
      const ct = document.createElementNS(SVG, "text");
      Object.entries({ x: x + w / 2, y: 72 - h, "text-anchor": "middle", class: "count" }).forEach(([k, v]) => ct.setAttribute(k, v));
      ct.textContent = c;
      svg.append(ct);
    }
  });
}

function summary(d, unit, digits) {
  if (d.n === 0) return "no connection has measured it yet";
  return `${d.n} connection${d.n === 1 ? "" : "s"} · p50 ${d.p50.toFixed(digits)} ${unit} · p99 ${d.p99.toFixed(digits)} ${unit} · max ${d.max.toFixed(digits)} ${unit}`;
}

function counts(table, m) {
  const list = Object.entries(m || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  fill(table, list.map(([reason, n]) => {
    const tr = row([[reason, null, "reason"], [n, "n", "count"]]);
    tr.dataset.reason = reason;
    return tr;
  }), "none", 2);
}

// render draws d; fresh says it is at least half a second after the last
// poll kept for rates, so that it goes on the bandwidth line.
function render(d, fresh) {
  const r = rates(d);
  $("node").textContent = d.node ? `node ${d.node}` : "single node";
  $("conns").textContent = d.server.conns_active;
  fill($("transports"), d.transports.map((t) => {
    const tr = row([[t.transport, null, "transport"], [t.open, "n", "open"], [t.handshaking, "n", "handshaking"]]);
    tr.dataset.transport = t.transport;
    return tr;
  }), "no transports", 3);
  fill($("bandwidth"), d.transports.map((t) => {
    const b = r.by[t.transport] || { in: null, out: null };
    const tr = row([[t.transport, null, "transport"], [bytesRate(b.in), "n in", "in"], [bytesRate(b.out), "n out", "out"]]);
    tr.dataset.transport = t.transport;
    return tr;
  }), "no transports", 3);

  $("bw-in").textContent = bytesRate(r.total.in);
  $("bw-out").textContent = bytesRate(r.total.out);
  if (fresh && r.total.in !== null) {
    spark.push(r.total);
    if (spark.length > SPARK_POINTS) spark.shift();
  }
  drawSpark();

  drawHist($("rtt-hist"), d.rtt_ms, "ms");
  $("rtt-summary").textContent = summary(d.rtt_ms, "ms", 1);
  drawHist($("loss-hist"), d.loss_percent, "%");
  $("loss-summary").textContent = summary(d.loss_percent, "%", 1);

  const clustered = Boolean(d.node);
  $("rooms").classList.toggle("hide-owner", !clustered);
  $("room-count").textContent = d.rooms.length;
  fill($("rooms"), d.rooms.map((g) => {
    const remote = clustered && g.owner !== d.node;
    const f = (v, conv) => (remote ? "–" : conv ? conv(v) : v);
    const tr = row([
      [g.name, null, "name"], [g.kind, null, "kind"], [g.owner || "", "owner", "owner"],
      [remote ? "–" : `${g.members}/${g.max_members}`, "n", "members"], [f(g.away), "n", "away"], [f(g.tick_rate), "n", "tick_rate"],
      [f(g.ticks), "n", "ticks"], [f(g.tick_p50_us, usToMs), "n", "tick_p50"], [f(g.tick_p99_us, usToMs), "n", "tick_p99"],
      [f(g.late_ticks), "n", "late_ticks"], [f(g.inputs_dropped), "n", "inputs_dropped"],
    ]);
    tr.dataset.room = g.name;
    tr.classList.toggle("selected", g.name === selected);
    tr.classList.toggle("remote", remote);
    tr.addEventListener("click", () => select(g.name));
    return tr;
  }), "no rooms", 11);

  counts($("drops"), d.server.drops);
  counts($("closes"), d.server.closes);

  $("room").hidden = selected === null;
  if (selected !== null) renderRoom(d);

  $("cluster").hidden = !clustered;
  if (clustered) {
    $("node-count").textContent = d.nodes.length;
    fill($("nodes"), d.nodes.map((n) => {
      const tr = row([[n.id, n.id === d.node ? "id this" : "id", "id"], [(n.addrs || []).join(", "), null, "addrs"], [n.load, "n", "load"], [n.draining ? "yes" : "no", n.draining ? "away" : null, "draining"]]);
      tr.dataset.node = n.id;
      return tr;
    }), "no nodes", 4);
  }
}

function renderRoom(d) {
  $("room-name").textContent = selected;
  const detail = d.room;
  $("room-error").hidden = Boolean(detail);
  $("room-error").textContent = d.room_error || "";
  $("members").hidden = !detail;
  if (!detail) {
    $("room-info").textContent = "";
    return;
  }
  const g = detail.room;
  $("room-info").textContent = `${g.kind} · ${g.members}/${g.max_members} members · ${g.tick_rate} Hz · ${g.ticks} ticks · up ${Math.round(g.age_s)} s`;
  fill($("members"), detail.members.map((m) => {
    const tr = row([[m.id, "id", "id"], [m.transport, null, "transport"], [num(m.rtt_ms, 1), "n", "rtt_ms"], [num(m.loss_percent, 1), "n", "loss_percent"],
      [num(m.snapshots_per_s, 1), "n", "snapshots_per_s"], [m.away ? "away" : "", m.away ? "away" : null, "away"]]);
    tr.dataset.id = m.id;
    return tr;
  }), "no members", 6);
}

function status(text, cls) {
  const s = $("status");
  s.textContent = text;
  s.className = cls;
}

// poll fetches the data once a second, one request at a time; poll.now
// fetches at once (a room was clicked).
async function poll() {
  clearTimeout(poll.timer);
  const seq = (poll.seq = (poll.seq || 0) + 1);
  const url = new URL("dashboard/data.json", location.href);
  url.hash = "";
  if (selected !== null) url.searchParams.set("room", selected);
  try {
    const res = await fetch(url, { headers, cache: "no-store" });
    if (res.status === 401) {
      status("unauthorized: open the dashboard with ?token=…", "error");
      return; // no point asking again
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const d = await res.json();
    if (seq !== poll.seq) return; // a newer poll started meanwhile
    const fresh = !prev || d.time_ms - prev.time_ms >= POLL_MS / 2;
    render(d, fresh);
    if (fresh) prev = d;
    status(`updated ${new Date(d.time_ms).toLocaleTimeString()}`, "live");
  } catch (err) {
    if (seq === poll.seq) status(`server unreachable (${err.message}); retrying`, "error");
  }
  if (seq === poll.seq) poll.timer = setTimeout(poll, POLL_MS);
}
poll.now = () => poll();

$("room-close").addEventListener("click", () => select(null));
window.addEventListener("hashchange", () => {
  selected = roomFromHash();
  poll.now();
});
poll();
