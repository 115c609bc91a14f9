// The browser half of the browser test (cmd/gameserver's TestBrowser runs
// it): Debian's chromium, driven by playwright-core, opens the arena page of
// a running game server in which a Go bot plays, and checks, from the page's
// own state (window.roomwire), that it connects over the expected
// transport, joins the bot's room, moves its player by key presses, sees the
// bot move, exchanges chat with it and receives snapshots as deltas. It
// prints one JSON line per run on stdout, with the page's figures and round
// trips measured in the browser, and exits non-zero on the first failure.
//
//   node web/browsertest/arena.mjs --url http://127.0.0.1:8080/?room=r \
//     --bot <bot id> --mode auto|fallback --expect webtransport|websocket --out DIR
//
// In mode auto the page must choose the expected transport by itself; in
// fallback its WebTransport attempt fails as it does where UDP is blocked
// (its /cert-hash names a UDP port nobody listens on), and it must fall
// back to WebSocket by itself.
import { chromium } from "playwright-core";
import { createSocket } from "node:dgram";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = args.url;
const bot = args.bot;
const mode = args.mode || "auto";
const out = args.out || join(tmpdir(), "roomwire-browsertest");
const executablePath = args.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
if (!url || !bot) {
  console.error("usage: arena.mjs --url URL --bot BOT_ID [--mode auto|fallback] [--expect webtransport|websocket] [--out DIR]");
  process.exit(2);
}
const expected = mode === "fallback" ? "websocket" : args.expect || "webtransport";

// DESIGN.md, "Browsers and TCP": the flags that work for headless chromium
// on this machine, and a fresh profile each run; never --disable-quic
// (which, by the way, does not turn WebTransport off).
const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// A UDP port on 127.0.0.1 that nobody listens on (bound, then released).
function deadUDPPort() {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.on("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function fail(msg, extra) {
  const err = new Error(`${mode}: ${msg}`);
  err.extra = extra;
  throw err;
}

async function waitFor(page, what, fn, arg, timeout = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch {
    const state = await page.evaluate(() => ({
      error: window.roomwire && window.roomwire.error,
      stats: window.roomwire && window.roomwire.stats(),
      chat: window.roomwire && window.roomwire.chatLog,
      status: document.getElementById("status").textContent,
    })).catch(() => null);
    fail(`timed out waiting for ${what}`, state);
  }
}

async function run() {
  const profile = mkdtempSync(join(tmpdir(), "roomwire-chromium-"));
  mkdirSync(out, { recursive: true });
  // A persistent context is how playwright takes the fresh profile
  // (--user-data-dir) the notes ask for.
  const browser = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: flags, viewport: { width: 1040, height: 760 } });
  const console_ = [];
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
    if (mode === "fallback") {
      const port = await deadUDPPort();
      await page.route("**/cert-hash", async (route) => {
        const res = await route.fetch();
        if (!res.ok()) return route.fulfill({ response: res }); // the server has no WebTransport at all
        const info = await res.json();
        const u = new URL(info.webtransport);
        u.port = String(port);
        return route.fulfill({ response: res, json: { ...info, webtransport: u.href } });
      });
    }
    const t0 = Date.now();
    await page.goto(url);
    await waitFor(page, "the page to connect and join", () => window.roomwire && (window.roomwire.ready || window.roomwire.error));
    const connectMs = Date.now() - t0;
    const first = await page.evaluate(() => ({ error: window.roomwire.error, stats: window.roomwire.stats(), room: window.roomwire.room }));
    if (first.error) fail(`the page failed: ${first.error}`);
    if (first.stats.transport !== expected) fail(`transport ${first.stats.transport}, want ${expected}`, first.stats);
    if (mode === "fallback" && first.stats.fallback.length === 0) fail("no WebTransport attempt was made before the fallback", first.stats);

    // The bot is in the room, and moves.
    await waitFor(page, "the bot in a snapshot", (id) => {
      const s = window.roomwire.latest;
      return s && s.players.some((p) => p.id === id);
    }, bot);
    const b0 = await page.evaluate((id) => window.roomwire.latest.players.find((p) => p.id === id), bot);
    await waitFor(page, "the bot to move", ([id, x, y]) => {
      const p = window.roomwire.latest.players.find((q) => q.id === id);
      return p && Math.hypot(p.x - x, p.y - y) >= 30;
    }, [bot, b0.x, b0.y]);

    // Key presses move the page's player: arrows, then WASD.
    await page.focus("#field");
    for (const [key, axis, sign] of [["ArrowRight", "x", 1], ["KeyS", "y", 1], ["ArrowLeft", "x", -1], ["KeyW", "y", -1]]) {
      const start = await page.evaluate(() => {
        const s = window.roomwire;
        return s.latest.players.find((p) => p.id === s.me);
      });
      await page.keyboard.down(key);
      await waitFor(page, `${key} to move the player`, ([axis, sign, from]) => {
        const s = window.roomwire;
        const p = s.latest.players.find((q) => q.id === s.me);
        return p && sign * (p[axis] - from) >= 40;
      }, [axis, sign, start[axis]]);
      await page.keyboard.up(key);
    }

    // Chat both ways: the bot says hello every few hundred ms; the page answers.
    await waitFor(page, "the bot's chat", () => window.roomwire.chatLog.some((c) => c.from === "room" && c.text.startsWith("hello from the bot")));
    await page.evaluate((m) => window.roomwire.say(`hello from the page (${m})`), mode);
    await page.fill("#chat-input", `typed in the page (${mode})`);
    await page.press("#chat-input", "Enter");

    // Snapshots arrive as deltas against acknowledged baselines.
    await waitFor(page, "delta snapshots", () => {
      const s = window.roomwire.stats();
      return s.deltasReceived >= 30 && s.wholeReceived >= 1;
    });
    await waitFor(page, "interpolated frames", () => window.roomwire.stats().interpFrames >= 10 && window.roomwire.players.length >= 2);

    // Round trips measured in the browser: 40 ping requests one after
    // another on the reliable channel, and inputs at random moments, each
    // acknowledged in the header of the server's next datagram.
    const rtt = await page.evaluate(async () => {
      const c = window.roomwire.client;
      const req = [];
      for (let i = 0; i < 40; i++) {
        const t = performance.now();
        await c.request("ping", new Uint8Array(8));
        req.push(performance.now() - t);
      }
      for (let i = 0; i < 150; i++) {
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
        c.sendInput(new Uint8Array([0, 0]));
      }
      req.sort((a, b) => a - b);
      const s = c.stats();
      return { requestP50: req[req.length >> 1], requestMin: req[0], requestP90: req[Math.floor(req.length * 0.9)], ackRTT: s.rtt, ackRTTMin: s.rttMin, pingRTTMin: s.pingRTTMin };
    });

    await page.screenshot({ path: join(out, `arena-${mode}.png`) });
    const s = await page.evaluate(() => window.roomwire.stats());
    const result = {
      mode, transport: s.transport, fallback: s.fallback, id: s.id, room: s.room, connectMs,
      snapshotRate: s.snapshotRate, snapshotsReceived: s.snapshotsReceived, deltasReceived: s.deltasReceived,
      wholeReceived: s.wholeReceived, snapshotsUndecodable: s.snapshotsUndecodable, loss: s.loss,
      inputsSent: s.inputsSent, inputsAcked: s.inputsAcked, interpFrames: s.interpFrames, interpUnderruns: s.interpUnderruns,
      maxDatagram: s.maxDatagram, rtt,
    };
    if (s.snapshotRate < 15) fail(`snapshot rate ${s.snapshotRate.toFixed(1)}/s`, s);
    if (s.state !== "open") fail(`state ${s.state}`, s);
    console.log(JSON.stringify(result));
    await page.evaluate(() => window.roomwire.client.close());
  } catch (err) {
    if (console_.length) console.error(console_.slice(-20).join("\n"));
    throw err;
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

run().catch((err) => {
  console.error(err.message);
  if (err.extra) console.error(JSON.stringify(err.extra));
  process.exit(1);
});
