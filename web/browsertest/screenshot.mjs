// Screenshots a page in Debian's headless chromium, driven by
// playwright-core: the load-test report's test (loadtest's
// TestReportScreenshot) opens the HTML report botclient -html writes and
// checks the picture, and docs/report.png is made with it. It waits for the
// page to load, checks that every chart (svg[data-plot]) was laid out with
// a size, prints one JSON line on stdout ({"plots": n, "width", "height"})
// and exits non-zero on failure.
//
//   node web/browsertest/screenshot.mjs --url file:///abs/report.html --out report.png \
//     [--width 1400] [--full true] [--scale 1]
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
if (!args.url || !args.out) {
  console.error("usage: screenshot.mjs --url URL --out FILE.png [--width PX] [--height PX] [--full true|false] [--scale N]");
  process.exit(2);
}
const executablePath = args.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
const width = Number(args.width || 1400);
const height = Number(args.height || 900);
const fullPage = (args.full || "true") === "true";
const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const profile = mkdtempSync(join(tmpdir(), "roomwire-chromium-"));
let code = 0;
let browser;
try {
  browser = await chromium.launchPersistentContext(profile, {
    executablePath, headless: true, args: flags, viewport: { width, height }, deviceScaleFactor: Number(args.scale || 1),
  });
  const page = browser.pages()[0] || (await browser.newPage());
  await page.goto(args.url, { waitUntil: "load", timeout: 15000 });
  const plots = await page.$$eval("svg[data-plot]", (svgs) =>
    svgs.map((s) => ({ name: s.dataset.plot, w: s.getBoundingClientRect().width, h: s.getBoundingClientRect().height })),
  );
  const flat = plots.filter((p) => !(p.w > 50 && p.h > 50));
  if (plots.length === 0 || flat.length > 0) {
    throw new Error(`charts not laid out: ${JSON.stringify(flat.length ? flat : plots)}`);
  }
  await page.screenshot({ path: args.out, fullPage });
  const size = await page.evaluate(() => ({ width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight }));
  console.log(JSON.stringify({ plots: plots.length, ...size }));
} catch (err) {
  console.error(String(err && err.stack ? err.stack : err));
  code = 1;
} finally {
  if (browser) await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
