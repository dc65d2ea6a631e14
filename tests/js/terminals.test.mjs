// The terminal pages in a real browser (docs/terminals.md "In a browser", docs/protocol.md §17): headless
// Chromium (the Debian package, driven by playwright-core) opens /terminals and /terminals/<id> on a real hub.
// Sessions come from a Node owner (term:<id> as owner, offset-prefixed binary record_output pushes) or from the
// real CLI (`parley run --server … --allow-input -- cat`). The page exposes its xterm.js Terminal as
// window.parleyTerm and its stream state as window.parleyState; the tests read the xterm buffer.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CLI_DLL, reportOnFailure, start } from "./hub.mjs";
import { Clients, push, pushOk, sleep, waitUntil } from "./client.mjs";
import { ownerApi } from "./identity.mjs";
import { terminalOwner } from "./terminal-owner.mjs";

const CHROMIUM = process.env.PARLEY_CHROMIUM ?? "/usr/bin/chromium";
const WAIT_MS = 20_000; // every wait on the browser; generous for a loaded machine, still bounded

let hub;
let browser;
const clients = new Clients();
const pages = new Set();
const children = new Set();
const tempDirs = [];
let sessionCounter = 0;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: the browser tests need the Debian package chromium (apt-get install -y chromium; scripts/test installs it) or PARLEY_CHROMIUM=/path/to/chromium`);
  }
  hub = await start();
  // --no-sandbox: the tests may run as root (containers, CI), where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"], timeout: 60_000 });
});

afterEach(async (t) => {
  reportOnFailure(t, hub);
  if (t.passed === false) {
    for (const page of pages) {
      console.error(`----- page ${page.url()} -----\n${(page.consoleLines ?? []).join("\n")}`);
    }
  }
  await Promise.all([...pages].map((p) => p.close().catch(() => {})));
  pages.clear();
  for (const child of children) child.kill("SIGKILL");
  children.clear();
  await clients.closeAll();
});

after(async () => {
  await browser?.close();
  await hub?.dispose();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** The environment for a `parley run` child: no inherited PARLEY_*, config and state in a temp dir. */
function runEnv() {
  const dir = mkdtempSync(join(tmpdir(), "parley-page-run-"));
  tempDirs.push(dir);
  const env = { ...process.env, XDG_CONFIG_HOME: join(dir, "config"), XDG_STATE_HOME: join(dir, "state"), DOTNET_NOLOGO: "1" };
  for (const k of Object.keys(env)) if (k.startsWith("PARLEY_")) delete env[k];
  env.PARLEY_SERVER = "";
  return { dir, env };
}

/** Starts `parley run ARGS` and resolves with {child, url, exited, stderr()} once it printed the page's URL. */
async function parleyRun(args) {
  const { dir, env } = runEnv();
  const child = spawn("dotnet", [CLI_DLL, "run", ...args.slice(0, args.indexOf("--")), "--record", join(dir, "rec"), ...args.slice(args.indexOf("--"))],
    { env, stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => { stderr += d; });
  child.stdout.resume();
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const url = await waitUntil(() => /watch live at (\S+\/terminals\/\S+)/.exec(stderr)?.[1], { timeoutMs: 30_000, what: `parley run's URL (stderr so far: ${stderr})` });
  return { child, url, exited, stderr: () => stderr };
}

const sessionId = (label) => `${label}-${process.pid}-${++sessionCounter}`;

// A Node owner on this file's hub (or `on`), with a token when the hub wants one.
const owner = (id, { allowInput = false, name = id, on = hub, token = null } = {}) =>
  terminalOwner(clients, on, id, { allowInput, name, socketOpts: token ? { params: { token } } : {} });

async function newPage() {
  const page = await browser.newPage();
  page.consoleLines = [];
  page.on("console", (m) => page.consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => page.consoleLines.push(`[pageerror] ${e.message}`));
  pages.add(page);
  return page;
}

/** Opens /terminals/<id> and waits until the viewer joined. */
async function openTerminal(id, base = hub.url, initScript = null) {
  const page = await newPage();
  if (initScript) await page.addInitScript(initScript);
  await page.goto(`${base}/terminals/${id}`, { timeout: WAIT_MS });
  await page.waitForFunction(() => window.parleyState?.joinedOnce, null, { timeout: WAIT_MS });
  return page;
}

/** The xterm.js buffer (scrollback and screen), one string per line, trailing blanks trimmed. */
const bufferLines = (page) => page.evaluate(() => {
  const buffer = window.parleyTerm.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
  return lines;
});

/** Waits until the page holds output up to stream offset n and xterm has parsed all of it. */
const waitWritten = (page, n) => page.waitForFunction(
  (want) => window.parleyState.offset >= want && window.parleyState.written >= window.parleyState.offset - window.parleyState.start, n, { timeout: WAIT_MS });

const state = (page) => page.evaluate(() => ({ ...window.parleyState, queue: window.parleyState.queue.length, onWrite: undefined, line: document.getElementById("state").textContent, dataState: document.getElementById("state").dataset.state }));

test("the page shows the command's output in xterm.js and is read-only when the owner did not allow input", async () => {
  const id = sessionId("show");
  const o = await owner(id, { name: "show-output" });
  await o.print("hello from the owner\r\n\x1b[1mbold\x1b[0m and plain\r\n");
  const page = await openTerminal(id);
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });
  await waitWritten(page, o.length);
  const lines = await bufferLines(page);
  assert.equal(lines[0], "hello from the owner");
  assert.equal(lines[1], "bold and plain");
  assert.equal(await page.textContent("#title"), "show-output");
  assert.equal(await page.textContent("#command"), `node owner.mjs ${id}`);

  // Read-only: the page says so, does not send what is typed, and the hub refuses a push anyway.
  assert.equal(await page.textContent("#mode"), "read-only");
  await page.click("#terminal");
  await page.keyboard.type("ls\n");
  await page.waitForFunction(() => document.getElementById("mode").textContent.includes("not sent"), null, { timeout: WAIT_MS });
  const refused = await page.evaluate(() => new Promise((resolve) => {
    window.parleyChannel.push("input", { data_b64: btoa("ls\n") }, 10_000)
      .receive("ok", () => resolve({ status: "ok" }))
      .receive("error", (r) => resolve({ status: "error", reason: r.reason }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  }));
  assert.deepEqual(refused, { status: "error", reason: "forbidden" });
  await sleep(200);
  assert.deepEqual(o.inputs, [], "the owner got no input from a read-only viewer");

  // The panel polls get_stats every 2 s.
  await page.waitForFunction(() => document.getElementById("stat-viewers").textContent === "1", null, { timeout: WAIT_MS });
  assert.equal(await page.textContent("#stat-drops"), "0");
  assert.equal(await page.textContent("#stat-size"), "80×24");
  assert.deepEqual(page.consoleLines.filter((l) => /error|Content Security Policy/i.test(l)), [], "no errors or CSP violations in the console");
});

test("the pages and their modules are served with their content types and a same-origin Content-Security-Policy", async () => {
  const expect = {
    "/terminals": "text/html; charset=utf-8",
    "/terminals/some-id": "text/html; charset=utf-8",
    "/web/terminal.mjs": "text/javascript; charset=utf-8",
    "/web/vendor/xterm.mjs": "text/javascript; charset=utf-8",
    "/web/vendor/addon-fit.mjs": "text/javascript; charset=utf-8",
    "/web/vendor/phoenix.mjs": "text/javascript; charset=utf-8",
    "/web/vendor/xterm.css": "text/css; charset=utf-8",
  };
  for (const [path, type] of Object.entries(expect)) {
    const response = await fetch(new URL(path, hub.url));
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get("content-type"), type, path);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
    const csp = response.headers.get("content-security-policy");
    assert.match(csp, /default-src 'none'/, path);
    assert.match(csp, /script-src 'self'(;|$)/, path);
    assert.match(csp, /connect-src 'self'(;|$)/, path);
    const etag = response.headers.get("etag");
    const body = await response.arrayBuffer();
    assert.equal(Number(response.headers.get("content-length")), body.byteLength, path);
    const head = await fetch(new URL(path, hub.url), { method: "HEAD" });
    assert.equal(head.status, 200, `HEAD ${path}`);
    assert.equal(head.headers.get("content-length"), response.headers.get("content-length"), `HEAD ${path}`);
    assert.equal((await head.arrayBuffer()).byteLength, 0, `HEAD ${path} has no body`);
    assert.equal((await fetch(new URL(path, hub.url), { headers: { "if-none-match": etag } })).status, 304, path);
  }
  assert.equal((await fetch(new URL("/web/no-such-file.mjs", hub.url))).status, 404);
  assert.equal((await fetch(new URL("/web/vendor/README.md", hub.url))).status, 404, "only the modules and styles are served");
});

test("a late-joining page backfills the tail, then follows live output with no gap and no overlap", async () => {
  const id = sessionId("seam");
  const o = await owner(id);
  const line = (i) => `line ${String(i).padStart(6, "0")} ${"x".repeat(48)}\r\n`; // 62 bytes
  let n = 0;
  const batch = (count) => {
    let text = "";
    for (let k = 0; k < count; k++) text += line(++n);
    return o.print(text);
  };
  await batch(6000); // 372 000 bytes: more than the page's 256 KiB tail
  // Keep printing while the page opens, joins and backfills, so live frames arrive during the backfill.
  let printing = true;
  const printer = (async () => {
    while (printing && n < 8500) {
      await batch(10);
      await sleep(5);
    }
  })();
  // The page waits 300 ms before each fetch, so live frames surely arrive (and must be held back) mid-backfill.
  const page = await openTerminal(id, hub.url, () => { window.parleyFetchDelayMs = 300; });
  await page.waitForFunction(() => window.parleyState.live > 0, null, { timeout: WAIT_MS });
  printing = false;
  await printer;
  await batch(5);
  await o.flush();
  await waitWritten(page, o.length);

  const s = await state(page);
  console.log(`# late join: seam ${s.seam}, backfilled ${s.backfilled} B, live ${s.live} B, live frames held back during the backfill (high-water) ${s.queueHighWater}`);
  assert.ok(s.queueHighWater >= 2, `live frames were held back while the tail was fetched (high-water ${s.queueHighWater})`);
  assert.ok(s.backfilled > 0 && s.live > 0, `both paths were used: ${JSON.stringify({ backfilled: s.backfilled, live: s.live })}`);
  assert.equal(s.offset, o.length);
  assert.ok(s.seam > 256 * 1024, `joined after the tail start: seam ${s.seam}`);
  const numbers = (await bufferLines(page)).filter((l) => /^line \d{6} x{48}$/.test(l)).map((l) => Number(l.slice(5, 11)));
  assert.ok(numbers.length > 4000, `saw ${numbers.length} whole lines`);
  for (let k = 1; k < numbers.length; k++) {
    assert.equal(numbers[k], numbers[k - 1] + 1, `line ${numbers[k - 1]} is followed by ${numbers[k]}`);
  }
  assert.equal(numbers[numbers.length - 1], n);
  // The tail starts where the page said it would: the first whole line is the one after its start offset.
  const firstOffset = s.seam - 256 * 1024;
  assert.equal(numbers[0], Math.floor(firstOffset / 62) + (firstOffset % 62 === 0 ? 1 : 2));
});

test("typing into an input-allowed session (parley run --allow-input -- cat) shows its echo; keystroke-to-echo latency", async () => {
  const { url, exited, stderr } = await parleyRun(["--server", hub.url, "--allow-input", "--name", "cat-echo", "--", "cat"]);
  const page = await newPage();
  await page.goto(url, { timeout: WAIT_MS });
  await page.waitForFunction(() => document.getElementById("mode").textContent === "you can type", null, { timeout: WAIT_MS });
  await page.click("#terminal");
  await page.keyboard.type("hello parley\n");
  // The PTY echoes the line as it is typed, then cat prints it.
  await page.waitForFunction(() => {
    const b = window.parleyTerm.buffer.active;
    let seen = 0;
    for (let i = 0; i < b.length; i++) if (b.getLine(i).translateToString(true) === "hello parley") seen++;
    return seen >= 2;
  }, null, { timeout: WAIT_MS });

  // Latency: from the keydown event in the page to xterm having parsed the echoed byte.
  const KEYS = 50;
  await page.evaluate(() => {
    window.keyTimes = [];
    window.writeTimes = [];
    document.addEventListener("keydown", () => window.keyTimes.push(performance.now()), true);
    window.parleyState.onWrite = (written, at) => window.writeTimes.push([written, at]);
  });
  const befores = [];
  for (let k = 0; k < KEYS; k++) {
    const before = await page.evaluate(() => window.parleyState.written);
    befores.push(before);
    await page.keyboard.press(String.fromCharCode(97 + (k % 26)));
    await page.waitForFunction((b) => window.parleyState.written > b, before, { timeout: WAIT_MS });
  }
  const latencies = await page.evaluate((bs) => bs.map((b, k) => {
    const t0 = window.keyTimes[k];
    const echo = window.writeTimes.find(([written, at]) => written > b && at >= t0);
    return echo[1] - t0;
  }), befores);
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)];
  console.log(`# keystroke-to-echo latency over ${KEYS} keys (parley run -- cat through the hub): p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms`);
  assert.ok(pct(50) < 5000, "echoes arrive");

  // Ctrl-D on an empty line ends cat; the page shows the exit status.
  await page.keyboard.press("Enter");
  await page.keyboard.press("Control+d");
  const result = await Promise.race([exited, sleep(30_000).then(() => null)]);
  assert.deepEqual(result, { code: 0, signal: null }, `parley run exited (stderr: ${stderr()})`);
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "ended", null, { timeout: WAIT_MS });
  assert.match(await page.textContent("#state"), /exited with status 0/);
  assert.equal(await page.textContent("#mode"), "read-only");
});

test("/terminals lists a card per live session and updates it when the session ends", async () => {
  const id = sessionId("card");
  const o = await owner(id, { name: "card-session" });
  await o.print("first line\r\nthe last line here\r\n");
  const page = await newPage();
  await page.goto(`${hub.url}/terminals`, { timeout: WAIT_MS });
  const card = page.locator(`.card[data-id="${id}"]`);
  await card.waitFor({ timeout: WAIT_MS });
  assert.equal(await card.locator(".name").textContent(), "card-session");
  assert.equal(await card.locator(".command").textContent(), `node owner.mjs ${id}`);
  assert.equal(await card.getAttribute("href"), `/terminals/${id}`);
  assert.equal(await card.locator("dd.size").textContent(), "80×24");
  assert.equal(await card.locator("dd.status").textContent(), "live");
  await page.waitForFunction((sel) => document.querySelector(sel)?.querySelector(".last-line")?.textContent === "the last line here", `.card[data-id="${id}"]`, { timeout: WAIT_MS });
  assert.equal(await page.locator(".card .xterm").count(), 0, "no terminal is rendered in the list");

  await pushOk(o.channel, "exit", { exit_code: 3, signal: null });
  await page.waitForFunction((sel) => document.querySelector(sel)?.classList.contains("ended"), `.card[data-id="${id}"]`, { timeout: WAIT_MS });
  assert.equal(await card.locator("dd.status").textContent(), "ended, exit 3");

  // The card links to the session's page, which shows the exit status.
  await card.click();
  await page.waitForFunction(() => document.getElementById("state")?.dataset.state === "ended", null, { timeout: WAIT_MS });
  assert.match(await page.textContent("#state"), /exited with status 3/);
});

test("the state line shows the connection dropping and coming back (hub restart); output continues with no gap or overlap", async () => {
  const id = sessionId("drop");
  const o = await owner(id);
  let text = "";
  for (let i = 1; i <= 50; i++) text += `before ${i}\r\n`;
  await o.print(text);
  const page = await openTerminal(id);
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });

  await hub.restart();
  await page.waitForFunction(() => window.parleyState.history.includes("disconnected"), null, { timeout: WAIT_MS });
  await waitUntil(() => o.joins >= 2, { timeoutMs: WAIT_MS, what: "the owner to rejoin the restarted hub" });
  text = "";
  for (let i = 1; i <= 50; i++) text += `after ${i}\r\n`;
  await o.print(text);
  await page.waitForFunction(() => window.parleyState.rejoins >= 1 && document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });
  assert.match(await page.textContent("#state"), /^Reconnected at /);
  await waitWritten(page, o.length);
  const s = await state(page);
  assert.deepEqual(s.history.slice(s.history.indexOf("disconnected")), ["disconnected", "reconnected", "live"]);
  const lines = (await bufferLines(page)).filter((l) => l !== "");
  const expected = [];
  for (let i = 1; i <= 50; i++) expected.push(`before ${i}`);
  for (let i = 1; i <= 50; i++) expected.push(`after ${i}`);
  assert.deepEqual(lines, expected);
});

test("a session parley run hosts itself (no hub configured) is shown at the URL it prints, with no credential", async () => {
  const { url } = await parleyRun(["--", "sh", "-c", "echo hosted-by-parley-run; exec sleep 60"]);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/terminals\/[a-z0-9][a-z0-9_-]*$/);
  const page = await newPage();
  await page.goto(url, { timeout: WAIT_MS });
  await page.waitForFunction(() => {
    const b = window.parleyTerm?.buffer.active;
    for (let i = 0; b && i < b.length; i++) if (b.getLine(i).translateToString(true) === "hosted-by-parley-run") return true;
    return false;
  }, null, { timeout: WAIT_MS });
  assert.equal(await page.textContent("#mode"), "read-only");
});

test("a grant lets a signed-in viewer type at once (can_input), and a revoke makes the page read-only again", async (t) => {
  const authHub = await start({ auth: true });
  t.after(() => authHub.dispose());
  const ownerKey = readFileSync(join(authHub.dataDir, "initial-owner-key"), "utf8").trim();
  const bobKey = await ownerApi(authHub, ownerKey).user("bob");
  const id = sessionId("grant");
  const o = await owner(id, { on: authHub, token: ownerKey, name: "granted" });
  await o.print("type here\r\n");

  const page = await newPage();
  await page.goto(`${authHub.url}/terminals/${id}#token=${encodeURIComponent(bobKey)}`, { timeout: WAIT_MS });
  await page.waitForFunction(() => window.parleyState?.joinedOnce && document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });
  assert.equal(await page.textContent("#mode"), "read-only");
  assert.equal(await page.isHidden("#fit"), true);

  await pushOk(o.channel, "grant", { user: "bob", input: true });
  await page.waitForFunction(() => document.getElementById("mode").textContent === "you can type", null, { timeout: WAIT_MS });
  await page.click("#terminal");
  await page.keyboard.type("ok\n");
  await waitUntil(() => o.inputs.join("") === "ok\r", { timeoutMs: WAIT_MS, what: `bob's keystrokes at the owner (got ${JSON.stringify(o.inputs)})` });

  // Fit to window asks the owner to resize the session (a granted viewer may).
  const resized = new Promise((resolve) => o.channel.on("resize_request", resolve));
  await page.click("#fit");
  const request = await Promise.race([resized, sleep(WAIT_MS).then(() => null)]);
  assert.ok(request && request.cols > 0 && request.rows > 0 && request.from === "bob", `resize_request ${JSON.stringify(request)}`);

  await pushOk(o.channel, "grant", { user: "bob", input: false });
  await page.waitForFunction(() => document.getElementById("mode").textContent === "read-only", null, { timeout: WAIT_MS });
});

test("a fleet instance created with terminal: true is a page like any session: an admin types into it, a member only watches", async (t) => {
  const authHub = await start({ auth: true });
  t.after(() => authHub.dispose());
  const ownerKey = readFileSync(join(authHub.dataDir, "initial-owner-key"), "utf8").trim();
  const { api, user } = ownerApi(authHub, ownerKey);
  const miaKey = await user("mia");
  const name = `fleet-${process.pid}-${++sessionCounter}`;
  const instance = await api("POST", "/api/instances", { name, command: "/bin/sh", args: ["-c", "echo fleet says hi; exec cat"], terminal: true, start: true });
  assert.equal(instance.status, "running");
  const id = instance.terminal_id;
  assert.match(id, /^[a-z0-9_-]+$/);

  const open = async (key) => {
    const page = await newPage();
    await page.goto(`${authHub.url}/terminals/${id}#token=${encodeURIComponent(key)}`, { timeout: WAIT_MS });
    await page.waitForFunction(() => window.parleyState?.joinedOnce && document.getElementById("state").dataset.state === "live", null, { timeout: WAIT_MS });
    await page.waitForFunction(() => window.parleyTerm.buffer.active.getLine(0)?.translateToString(true) === "fleet says hi", null, { timeout: WAIT_MS });
    return page;
  };
  const admin = await open(ownerKey);
  const member = await open(miaKey);
  assert.equal(await admin.textContent("#title"), name);
  assert.equal(await admin.textContent("#mode"), "you can type");
  assert.equal(await member.textContent("#mode"), "read-only");

  await admin.click("#terminal");
  await admin.keyboard.type("typed by the admin\n");
  // The terminal echoes the line, then cat prints it: both pages show it twice.
  for (const page of [admin, member]) {
    await page.waitForFunction(() => {
      const b = window.parleyTerm.buffer.active;
      let n = 0;
      for (let i = 0; i < b.length; i++) if (b.getLine(i).translateToString(true) === "typed by the admin") n++;
      return n === 2;
    }, null, { timeout: WAIT_MS });
  }
  const stopped = await api("POST", `/api/instances/${name}/stop`);
  assert.equal(stopped.signal, 15);
  await member.waitForFunction(() => document.getElementById("state").dataset.state === "ended", null, { timeout: WAIT_MS });
  assert.equal(await member.textContent("#state"), "The command was killed by signal 15.");
});
