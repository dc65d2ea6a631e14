// The terminal page (/terminals/<id>) where the connection is not kind to it, in headless Chromium on a real
// hub: a page too slow to keep up is resynced by the hub and still shows every byte once; a socket that drops
// and reconnects catches up with no gap or overlap; on a hub with authentication the page asks for a token
// and works with one in the URL fragment. "Every byte once" is checked exactly: the page keeps an FNV-1a
// digest of the bytes it handed xterm.js (window.parleyDigest), compared with the owner's bytes.
// (terminals.test.mjs has the everyday paths: output, read-only, seam, typing, the list, a hub restart.)

import { afterEach, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, joinOk, push, pushOk, sleep } from "./client.mjs";
import { terminalOwner } from "./terminal-owner.mjs";

const CHROMIUM = process.env.PARLEY_CHROMIUM ?? "/usr/bin/chromium";
const WAIT_MS = 30_000; // every wait on the browser: generous for a loaded machine, still bounded

let browser;
const clients = new Clients();
const hubs = new Set();
const pages = new Set();
let counter = 0;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: the browser tests need the Debian package chromium (apt-get install -y chromium; scripts/test installs it) or PARLEY_CHROMIUM=/path/to/chromium`);
  }
  // --no-sandbox: the tests may run as root (containers, CI), where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"], timeout: 60_000 });
});

afterEach(async (t) => {
  reportOnFailure(t, ...hubs);
  if (t.passed === false) {
    for (const page of pages) console.error(`----- page ${page.url()} -----\n${(page.consoleLines ?? []).join("\n")}`);
  }
  await Promise.all([...pages].map((p) => p.close().catch(() => {})));
  pages.clear();
  await clients.closeAll();
  await Promise.all([...hubs].map((h) => h.dispose()));
  hubs.clear();
});

after(async () => {
  await browser?.close();
});

async function hubWith(opts) {
  const hub = await start(opts);
  hubs.add(hub);
  return hub;
}

function fnv1a(bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

const owner = (hub, id, socketOpts = {}) => terminalOwner(clients, hub, id, { socketOpts });

async function newPage() {
  const page = await browser.newPage();
  page.consoleLines = [];
  page.on("console", (m) => page.consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => page.consoleLines.push(`[pageerror] ${e.message}`));
  await page.addInitScript(() => {
    window.parleyDigest = true;
  });
  pages.add(page);
  return page;
}

const pageState = (page) => page.evaluate(() => {
  const { queue, onWrite, ...rest } = window.parleyState;
  return { ...rest, queued: queue.length, dataState: document.getElementById("state").dataset.state, line: document.getElementById("state").textContent };
});

/** Waits until the page has handed xterm every byte up to n, then checks them against the owner's bytes. */
async function assertShowsExactly(page, o) {
  const n = o.length;
  await page.waitForFunction((want) => window.parleyState.offset >= want, n, { timeout: WAIT_MS }).catch(async (err) => {
    throw new Error(`${err.message}; page state ${JSON.stringify(await pageState(page))}, owner printed ${n}`);
  });
  const s = await pageState(page);
  assert.equal(s.offset, n, "the page is at the end of the output, not past it");
  assert.equal(s.digest, fnv1a(o.bytes().subarray(s.start, n)), `bytes [${s.start}, ${n}) shown exactly once, in order`);
  return s;
}

test("a page too slow to keep up is resynced by the hub and still shows every byte exactly once", async () => {
  // The smallest viewer queue the hub takes (64 KiB), so a stalled page overflows it quickly.
  const hub = await hubWith({ env: { PARLEY_TERMINALS__VIEWERQUEUEBYTES: "65536" } });
  const id = `lag-${process.pid}-${++counter}`;
  const o = await owner(hub, id);
  await o.print("start\r\n");
  const page = await newPage();
  await page.goto(`${hub.url}/terminals/${id}`, { timeout: WAIT_MS });
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });

  // A Node viewer reads the hub's counters while the page's renderer is kept busy (it stops reading its socket).
  const statsSocket = await clients.connected(hub);
  const viewer = statsSocket.channel(`term:${id}`, { role: "viewer" });
  await joinOk(viewer);
  const busy = page.evaluate(() => {
    const end = performance.now() + 6000;
    while (performance.now() < end) {
      // block the main thread: the page reads nothing meanwhile
    }
  });
  const line = (i) => `lag ${String(i).padStart(8, "0")} ${"y".repeat(66)}\r\n`; // 80 bytes
  let i = 0;
  let drops = 0;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && i < 400_000) {
    let text = "";
    for (let k = 0; k < 2000; k++) text += line(++i); // 160 KB a batch
    await o.print(text);
    drops = (await pushOk(viewer, "get_stats", {})).drops;
    if (drops > 0 && o.length > 4 * 1024 * 1024) break;
  }
  await busy;
  await o.print("the end\r\n");
  await o.flush();
  assert.ok(drops > 0, `the hub dropped frames for the stalled page (printed ${o.length} bytes)`);

  const s = await assertShowsExactly(page, o);
  assert.ok(s.resyncs >= 1, `the page was resynced: ${JSON.stringify({ resyncs: s.resyncs, backfilled: s.backfilled, live: s.live })}`);
  assert.ok(s.backfilled > 0, "the dropped range was fetched with fetch_output");
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });
  // The panel shows the hub's counters (get_stats every 2 s).
  await page.waitForFunction(() => Number(document.getElementById("stat-drops").textContent) > 0, null, { timeout: WAIT_MS });
  const lines = await page.evaluate(() => {
    const b = window.parleyTerm.buffer.active;
    const out = [];
    for (let k = 0; k < b.length; k++) out.push(b.getLine(k).translateToString(true));
    return out.filter((l) => l !== "");
  });
  assert.equal(lines[lines.length - 1], "the end");
  assert.equal(lines[lines.length - 2], line(i).trimEnd());
  console.log(`# stalled page: ${o.length} bytes printed, hub drops ${drops}, page resyncs ${s.resyncs}, fetched ${s.backfilled} bytes, ${s.live} bytes live`);
});

test("a dropped socket reconnects: the state line says so and the output continues with no gap or overlap", async () => {
  const hub = await hubWith({});
  const id = `drop-${process.pid}-${++counter}`;
  const o = await owner(hub, id);
  const page = await newPage();
  await page.goto(`${hub.url}/terminals/${id}`, { timeout: WAIT_MS });
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });

  // Print steadily while the page's socket is closed under it (4000: not a "stay away" close, so phoenix.js
  // reconnects and rejoins), so output arrives before, during and after the gap.
  let printing = true;
  let n = 0;
  const printer = (async () => {
    while (printing) {
      let text = "";
      for (let k = 0; k < 20; k++) text += `drop ${++n}\r\n`;
      await o.print(text);
      await sleep(10);
    }
  })();
  await page.waitForFunction(() => window.parleyState.live > 2000, null, { timeout: WAIT_MS });
  await page.evaluate(() => window.parleySocket.conn.close(4000, "test drops the socket"));
  await page.waitForFunction(() => window.parleyState.rejoins >= 1 && document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });
  await page.waitForFunction((at) => window.parleyState.offset > at + 2000, o.length, { timeout: WAIT_MS });
  printing = false;
  await printer;
  await o.flush();

  const s = await assertShowsExactly(page, o);
  assert.deepEqual(s.history.slice(s.history.indexOf("disconnected")), ["disconnected", "reconnected", "live"]);
  assert.equal(s.disconnects, 1);
  assert.match(s.line, /^Reconnected at /);
});

test("on a hub with authentication the page asks for a token, and works with #token=… in the URL", async () => {
  const hub = await hubWith({ auth: true });
  const key = readFileSync(join(hub.dataDir, "initial-owner-key"), "utf8").trim();
  const id = `auth-${process.pid}-${++counter}`;
  const o = await owner(hub, id, { params: { token: key } });
  await o.print("only for members\r\n");

  const refused = await newPage();
  await refused.goto(`${hub.url}/terminals/${id}`, { timeout: WAIT_MS });
  await refused.waitForFunction(() => document.getElementById("state").dataset.state === "refused", null, { timeout: WAIT_MS });
  assert.match(await refused.textContent("#state"), /needs a credential.*#token=/);
  const list = await newPage();
  await list.goto(`${hub.url}/terminals`, { timeout: WAIT_MS });
  await list.waitForFunction(() => document.getElementById("state").dataset.state === "refused", null, { timeout: WAIT_MS });

  const wrong = await newPage();
  await wrong.goto(`${hub.url}/terminals/${id}#token=not-a-key`, { timeout: WAIT_MS });
  await wrong.waitForFunction(() => document.getElementById("state").dataset.state === "refused", null, { timeout: WAIT_MS });
  assert.match(await wrong.textContent("#state"), /refused this token/);

  const page = await newPage();
  await page.goto(`${hub.url}/terminals/${id}#token=${encodeURIComponent(key)}`, { timeout: WAIT_MS });
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });
  await assertShowsExactly(page, o);
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
  // The token was kept: the list page in the same browser context needs no fragment.
  await page.goto(`${hub.url}/terminals`, { timeout: WAIT_MS });
  await page.locator(`.card[data-id="${id}"]`).waitFor({ timeout: WAIT_MS });
});
