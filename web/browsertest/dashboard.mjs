// The browser half of the dashboard test (cmd/gameserver's
// TestDashboardBrowser runs it): Debian's chromium, driven by
// playwright-core, opens a running game server's /dashboard and reports
// what the page shows, read from its text as a person would: the
// connections by transport, the rooms, bandwidth, drops and closes, the
// RTT and loss histograms; then, a few polls later, the same again (the
// numbers must move); then it clicks a room and reads its members. It
// saves screenshots and prints one JSON line on stdout; the Go test checks
// it against the server. It exits non-zero if the page never gets there.
//
//   node web/browsertest/dashboard.mjs --url 'http://127.0.0.1:8080/dashboard?token=…' \
//     --room beta --members 2 --conns 6 --out DIR [--linger MS]
//
// --linger (or ROOMWIRE_DASHBOARD_LINGER_MS) keeps the page open that long
// before the screenshots, so that the bandwidth line fills: how
// docs/dashboard.png is made.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const { url, room } = args;
const members = Number(args.members || 1);
const conns = Number(args.conns || 1);
const linger = Number(args.linger || process.env.ROOMWIRE_DASHBOARD_LINGER_MS || 0);
const out = args.out || join(tmpdir(), "roomwire-dashboard");
const executablePath = args.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
if (!url || !room) {
  console.error("usage: dashboard.mjs --url URL --room NAME [--members N] [--conns N] [--out DIR]");
  process.exit(2);
}
const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function waitFor(page, what, fn, arg, timeout = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch {
    const status = await page.evaluate(() => document.getElementById("status")?.textContent).catch(() => null);
    throw new Error(`timed out waiting for ${what} (status: ${status})`);
  }
}

// read is what the page shows now, from its text.
function read() {
  const cells = (tr) => Object.fromEntries([...tr.querySelectorAll("td[data-col]")].map((td) => [td.dataset.col, td.textContent]));
  const rows = (sel) => [...document.querySelectorAll(sel)].map(cells);
  const bars = (id) => [...document.querySelectorAll(`#${id} rect`)].map((r) => Number(r.getAttribute("data-count")));
  const reasons = (id) => Object.fromEntries(rows(`#${id} tbody tr[data-reason]`).map((r) => [r.reason, Number(r.count)]));
  return {
    status: document.getElementById("status").textContent,
    node: document.getElementById("node").textContent,
    conns: document.getElementById("conns").textContent,
    transports: rows("#transports tbody tr[data-transport]"),
    rooms: rows("#rooms tbody tr[data-room]"),
    bwIn: document.getElementById("bw-in").textContent,
    bwOut: document.getElementById("bw-out").textContent,
    sparkLines: document.querySelectorAll("#bw-spark polyline").length,
    rttBars: bars("rtt-hist"),
    lossBars: bars("loss-hist"),
    rttSummary: document.getElementById("rtt-summary").textContent,
    drops: reasons("drops"),
    closes: reasons("closes"),
  };
}

async function run() {
  const profile = mkdtempSync(join(tmpdir(), "roomwire-chromium-"));
  mkdirSync(out, { recursive: true });
  const browser = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: flags, viewport: { width: 1000, height: 700 } });
  const logs = [];
  const requests = [];
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") logs.push(`${m.type()}: ${m.text()}`); });
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(url);

    // Every connection's round trip measured, so the histogram has them all.
    await waitFor(page, "the first data with every connection measured", (n) => {
      const s = document.getElementById("status");
      const sum = [...document.querySelectorAll("#rtt-hist rect")].reduce((a, r) => a + Number(r.getAttribute("data-count")), 0);
      return s.classList.contains("live") && sum >= n && document.getElementById("bw-in").textContent !== "–";
    }, conns);
    const first = await page.evaluate(read);

    // The numbers move: every room ticks on, between polls.
    await waitFor(page, "the tick counters to grow", (before) => {
      const now = Object.fromEntries([...document.querySelectorAll("#rooms tbody tr[data-room]")].map((tr) => [tr.dataset.room, Number(tr.querySelector("[data-col=ticks]").textContent)]));
      return before.every((r) => now[r.name] > Number(r.ticks));
    }, first.rooms);
    const second = await page.evaluate(read);

    // A click on the room shows its members, each with a snapshot rate
    // (from two reads of the counters, so after a poll or two).
    await page.click(`#rooms tbody tr[data-room="${room.replace(/"/g, '\\"')}"]`);
    await waitFor(page, "the room's members with their snapshot rates", (n) => {
      const rows = [...document.querySelectorAll("#members tbody tr[data-id]")];
      return !document.getElementById("room").hidden && rows.length === n &&
        rows.every((tr) => tr.querySelector("[data-col=snapshots_per_s]").textContent !== "–");
    }, members);
    const detail = await page.evaluate(() => ({
      name: document.getElementById("room-name").textContent,
      info: document.getElementById("room-info").textContent,
      hash: location.hash,
      members: [...document.querySelectorAll("#members tbody tr[data-id]")].map((tr) => ({
        id: tr.dataset.id,
        ...Object.fromEntries([...tr.querySelectorAll("td[data-col]")].map((td) => [td.dataset.col, td.textContent])),
      })),
    }));
    if (linger > 0) await page.waitForTimeout(linger);
    // The viewport, cut below the last card.
    const height = await page.evaluate(() => Math.min(window.innerHeight, Math.ceil(document.querySelector("main").getBoundingClientRect().bottom)));
    await page.screenshot({ path: join(out, "dashboard.png"), clip: { x: 0, y: 0, width: 1000, height } });
    await page.screenshot({ path: join(out, "dashboard-full.png"), fullPage: true });
    console.log(JSON.stringify({ first, second, detail, requests, logs }));
  } catch (err) {
    if (logs.length) console.error(logs.slice(-20).join("\n"));
    throw err;
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

run().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
