// The arena demo in the browser: connects with a development token, joins
// an arena room, draws every player interpolated between snapshots, moves
// yours with the arrow keys or WASD, relays chat and shows the connection's
// figures. Its state is window.roomwire, for people and tests alike.
// Query parameters: ?transport=websocket|webtransport forces one transport,
// ?room=NAME joins that arena room instead of any with a free place.
import { connect, devToken, arena } from "/roomwire.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const canvas = $("field");
const ctx2d = canvas.getContext("2d");
const FIELD = 1000;

const state = {
  client: null,
  room: null,
  me: null,
  ready: false,
  error: null,
  /** The interpolated positions drawn in the last frame: [{id, x, y}]. */
  players: [],
  /** The newest snapshot decoded: {tick, players: [{id, x, y}]}. */
  latest: null,
  chatLog: [],
  input: { dx: 0, dy: 0 },
  disconnected: null,
  stats() {
    return state.client ? state.client.stats() : null;
  },
  say(text) {
    state.client.emit("chat", text);
    log("me", text);
  },
};
window.roomwire = state;

function log(from, text) {
  state.chatLog.push({ from, text, at: Date.now() });
  const li = document.createElement("li");
  li.className = from === "me" ? "me" : from === "system" ? "sys" : "";
  li.textContent = from === "room" ? text : `${from}: ${text}`;
  const ul = $("chat-log");
  ul.append(li);
  ul.scrollTop = ul.scrollHeight;
}

// Keys held: arrows and WASD, not while typing in the chat box.
const held = new Set();
const keyDir = {
  ArrowLeft: [-1, 0], KeyA: [-1, 0], ArrowRight: [1, 0], KeyD: [1, 0],
  ArrowUp: [0, -1], KeyW: [0, -1], ArrowDown: [0, 1], KeyS: [0, 1],
};
function onKey(e, down) {
  if (!(e.code in keyDir) || e.target instanceof HTMLInputElement) return;
  e.preventDefault();
  if (down) held.add(e.code);
  else held.delete(e.code);
  let dx = 0, dy = 0;
  for (const k of held) {
    dx += keyDir[k][0];
    dy += keyDir[k][1];
  }
  const next = { dx: Math.sign(dx) * 127, dy: Math.sign(dy) * 127 };
  if (next.dx !== state.input.dx || next.dy !== state.input.dy) {
    state.input = next;
    sendInput(); // at once, not at the next tick
  }
}
addEventListener("keydown", (e) => onKey(e, true));
addEventListener("keyup", (e) => onKey(e, false));
addEventListener("blur", () => {
  held.clear();
  state.input = { dx: 0, dy: 0 };
});

function sendInput() {
  if (state.ready && !state.disconnected) state.client.sendInput(arena.encodeInput(state.input.dx, state.input.dy));
}

function draw() {
  requestAnimationFrame(draw);
  const c = state.client;
  const w = canvas.width, h = canvas.height, k = w / FIELD;
  ctx2d.clearRect(0, 0, w, h);
  if (!c) return;
  const r = c.interpolate(performance.now());
  if (!r) return;
  const from = new Map(arena.decodeSnapshot(r.from.data).players.map((p) => [p.id, p]));
  const to = arena.decodeSnapshot(r.to.data).players;
  state.players = to.map((p) => {
    const a = from.get(p.id) || p;
    return { id: p.id, x: a.x + (p.x - a.x) * r.alpha, y: a.y + (p.y - a.y) * r.alpha };
  });
  for (const p of state.players) {
    const mine = p.id === state.me;
    ctx2d.fillStyle = mine ? "#4fd1a5" : "#f0a040";
    ctx2d.beginPath();
    ctx2d.arc(p.x * k, p.y * k, mine ? 10 : 8, 0, 2 * Math.PI);
    ctx2d.fill();
    ctx2d.fillStyle = "#ccc";
    ctx2d.font = "11px ui-monospace, monospace";
    ctx2d.fillText(mine ? "you" : p.id.slice(0, 6), p.x * k + 12, p.y * k + 4);
  }
}

function showStats() {
  const s = state.stats();
  if (!s) return;
  const ms = (v) => `${v.toFixed(2)} ms`;
  $("stats").textContent = [
    `transport   ${s.transport}${s.fallback.length ? " (fallback)" : ""}`,
    `room        ${s.room ?? "-"}  (${state.players.length} players)`,
    `RTT ping    ${ms(s.pingRTT)}  (min ${ms(s.pingRTTMin)})`,
    `RTT acks    ${ms(s.rtt)}  (min ${ms(s.rttMin)})`,
    `loss        ${(100 * s.loss).toFixed(1)} %`,
    `snapshots   ${s.snapshotRate.toFixed(1)} /s, ${s.deltasReceived} deltas of ${s.snapshotsReceived}`,
    `interp      delay ${ms(s.interpDelay)} (target ${ms(s.interpTarget)})`,
    `inputs      ${s.inputsSent} sent, #${s.inputsAcked} acknowledged`,
  ].join("\n");
}

$("chat").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("chat-input").value.trim();
  if (text && state.ready) state.say(text);
  $("chat-input").value = "";
  canvas.focus();
});

async function main() {
  const token = await devToken(location.origin);
  const t = params.get("transport");
  const client = await connect(location.origin, { token, transports: t ? [t] : undefined });
  state.client = client;
  state.me = client.id;
  const dec = new TextDecoder();
  client.on("chat", (p) => log("room", dec.decode(p)));
  client.on("member_joined", (p) => log("system", `${dec.decode(p).slice(0, 6)} joined`));
  client.on("member_left", (p) => log("system", `${dec.decode(p).slice(0, 6)} left`));
  client.onSnapshot((tick, data) => {
    state.latest = { tick, players: arena.decodeSnapshot(data).players };
  });
  client.onDisconnect((code, reason) => {
    state.disconnected = { code, reason };
    $("status").textContent = `disconnected: code ${code}, ${reason}`;
    $("status").className = "error";
  });
  state.room = await client.join(arena.kind, params.get("room") || "");
  state.ready = true;
  $("status").textContent = `in ${state.room.name} over ${client.transport} as ${client.id.slice(0, 6)}`;
  setInterval(sendInput, 1000 / state.room.tickRate);
  setInterval(showStats, 250);
  canvas.focus();
}

requestAnimationFrame(draw);
main().catch((err) => {
  state.error = String(err && err.message ? err.message : err);
  $("status").textContent = `error: ${state.error}`;
  $("status").className = "error";
  console.error(err);
});
