// /terminals/<id>: one session in xterm.js, as a viewer of term:<id> (docs/protocol.md §17, docs/terminals.md).
//
// Bytes reach xterm strictly in stream order. `offset` is the next output byte to show; live `output`
// frames carry no offset, so each is placed at `liveAt` (the join reply's output_size — the seam — or a
// resync's offset) and queued. pump() fills any gap before the queue's head with fetch_output and drops any
// part already shown, so backfill, live frames, resyncs and rejoins never leave a gap or an overlap.
import { Terminal } from "/web/vendor/xterm.mjs";
import { FitAddon } from "/web/vendor/addon-fit.mjs";
import { bytes, openSocket, readToken } from "/web/common.mjs";

const BACKFILL_BYTES = 256 * 1024; // how much of the tail a fresh page shows
const FETCH_BYTES = 1024 * 1024; // per fetch_output (the hub's MaxFetchBytes default; it caps larger asks)
const INPUT_CHUNK_BYTES = 32 * 1024; // well under the hub's 64 KiB MaxInputBytes
const STATS_INTERVAL_MS = 2000;
const PUSH_TIMEOUT_MS = 10_000;
// Set by the browser tests before the page loads, so live frames surely arrive while a range is being fetched.
const FETCH_DELAY_MS = Number(globalThis.parleyFetchDelayMs) || 0;

const id = decodeURIComponent(location.pathname.slice("/terminals/".length));
const $ = (name) => document.getElementById(name);

const term = new Terminal({ cols: 80, rows: 24, scrollback: 10_000, fontSize: 14 });
const fit = new FitAddon();
term.loadAddon(fit);
term.open($("terminal"));
term.focus();

const s = {
  id,
  start: 0, // where this page's backfill started
  offset: 0, // the next output byte to write to xterm
  liveAt: 0, // the stream offset of the next live output frame
  seam: 0, // output_size of the latest join reply
  queue: [], // live frames not written yet: {start, bytes}
  generation: 0, // bumped on every join reply; results of older fetches are dropped
  pumping: -1, // the generation whose pump is running, or -1
  joinedOnce: false,
  canInput: false,
  ended: false,
  resyncs: 0, // resync events this page received
  rejoins: 0,
  disconnects: 0,
  backfilled: 0, // bytes fetched with fetch_output
  live: 0, // bytes taken from live frames
  written: 0, // bytes xterm has parsed
  history: [], // state names, in order (for tests and curiosity)
  queueHighWater: 0, // most live frames held back while a gap before them was being fetched
  // FNV-1a (32-bit) of every byte handed to xterm, in order, when window.parleyDigest was true before the
  // page loaded (the browser tests compare it with the hub's bytes); null otherwise.
  digest: globalThis.parleyDigest === true ? 0x811c9dc5 : null,
  onWrite: null, // test hook: called with (written, performance.now()) after each xterm write
};

function setState(state, text) {
  const line = $("state");
  line.dataset.state = state;
  line.textContent = text;
  if (s.history[s.history.length - 1] !== state) s.history.push(state);
}

// ---- writing: at most one xterm write per animation frame ----
let pending = [];
let pendingBytes = 0;
let flushScheduled = false;

function write(chunk) {
  if (chunk.length === 0) return;
  if (s.digest !== null) {
    let h = s.digest;
    for (let i = 0; i < chunk.length; i++) h = Math.imul(h ^ chunk[i], 0x01000193);
    s.digest = h >>> 0;
  }
  pending.push(chunk);
  pendingBytes += chunk.length;
  if (!flushScheduled) {
    flushScheduled = true;
    requestAnimationFrame(flush);
    setTimeout(flush, 250); // animation frames stop in a hidden tab; keep the screen current anyway
  }
}

function flush() {
  if (!flushScheduled) return;
  flushScheduled = false;
  const chunks = pending;
  const n = pendingBytes;
  pending = [];
  pendingBytes = 0;
  let data = chunks[0];
  if (chunks.length > 1) {
    data = new Uint8Array(n);
    let at = 0;
    for (const c of chunks) {
      data.set(c, at);
      at += c.length;
    }
  }
  term.write(data, () => {
    s.written += n;
    s.onWrite?.(s.written, performance.now());
  });
}

// ---- the socket and the channel ----
const socket = openSocket(readToken(), { onRefused: (message) => setState("refused", message) });
const channel = socket.channel(`term:${id}`, { role: "viewer" });

function request(event, payload) {
  return new Promise((resolve, reject) => {
    channel.push(event, payload, PUSH_TIMEOUT_MS)
      .receive("ok", resolve)
      .receive("error", (r) => reject(Object.assign(new Error(r?.detail ?? r?.reason ?? "error"), { reason: r?.reason })))
      .receive("timeout", () => reject(Object.assign(new Error(`${event} timed out`), { reason: "timeout" })));
  });
}

// One pump per join generation: a fetch still waiting on a dead connection (it times out after
// PUSH_TIMEOUT_MS) must not hold up the catch-up after a rejoin, so a new generation starts its own pump and
// the old one drops whatever it gets back.
async function pump() {
  if (s.pumping === s.generation) return;
  const generation = s.generation;
  s.pumping = generation;
  let retry = false;
  try {
    while (generation === s.generation) {
      const head = s.queue[0];
      const target = head ? head.start : s.liveAt;
      if (s.offset < target) {
        if (FETCH_DELAY_MS > 0) await new Promise((r) => setTimeout(r, FETCH_DELAY_MS));
        const got = new Uint8Array(await request("fetch_output", { offset: s.offset, limit: Math.min(FETCH_BYTES, target - s.offset) }));
        if (generation !== s.generation) break;
        if (got.length === 0) {
          retry = true; // the hub does not hold these bytes yet
          break;
        }
        write(got);
        s.offset += got.length;
        s.backfilled += got.length;
        continue;
      }
      if (!head) break;
      s.queue.shift();
      const end = head.start + head.bytes.length;
      if (end > s.offset) {
        write(head.bytes.subarray(s.offset - head.start));
        s.live += end - s.offset;
        s.offset = end;
      }
    }
  } catch {
    retry = true; // disconnected or timed out: the next join reply, frame or this timer carries on
  } finally {
    if (s.pumping === generation) s.pumping = -1;
  }
  if (generation !== s.generation) return; // the new generation's pump carries on
  if (retry) {
    setTimeout(pump, 1000);
  } else {
    caughtUp();
  }
}

function caughtUp() {
  if (s.ended || s.offset < s.seam) return;
  const state = $("state").dataset.state;
  if (state === "backfilling" || state === "reconnected" || state === "connecting") {
    setState("live", s.rejoins > 0
      ? `Reconnected at ${new Date().toLocaleTimeString()}; live again (caught up from byte ${s.offset.toLocaleString()}).`
      : "Live.");
  }
}

channel.on("output", (payload) => {
  const chunk = new Uint8Array(payload);
  s.queue.push({ start: s.liveAt, bytes: chunk });
  s.liveAt += chunk.length;
  if (s.queue.length > s.queueHighWater) s.queueHighWater = s.queue.length;
  pump();
});

channel.on("resync", ({ offset }) => {
  s.resyncs++;
  s.liveAt = offset;
  pump();
});

channel.on("resize", ({ cols, rows }) => resize(cols, rows));
channel.on("exit", (info) => ended(info));
channel.on("can_input", ({ can_input }) => setCanInput(can_input));

channel.onError(() => {
  if (s.joinedOnce && $("state").dataset.state !== "disconnected") {
    s.disconnects++;
    setState("disconnected", `Disconnected from the hub at ${new Date().toLocaleTimeString()}; reconnecting…`);
  }
});

channel.join(PUSH_TIMEOUT_MS)
  .receive("ok", (reply) => {
    s.generation++;
    s.queue = [];
    s.seam = reply.output_size;
    s.liveAt = reply.output_size;
    if (s.joinedOnce) {
      s.rejoins++;
      setState("reconnected", `Reconnected; catching up from byte ${s.offset.toLocaleString()}…`);
    } else {
      s.offset = Math.max(0, reply.output_size - BACKFILL_BYTES);
      s.start = s.offset;
      setState("backfilling", `Loading the last ${bytes(reply.output_size - s.offset)}…`);
    }
    s.joinedOnce = true;
    $("title").textContent = reply.name || id;
    document.title = `${reply.name || id} · Parley`;
    $("command").textContent = (reply.command ?? []).join(" ");
    resize(reply.cols, reply.rows);
    setCanInput(reply.can_input);
    if (reply.ended_at) ended(reply);
    pump();
  })
  .receive("error", (reply) => {
    const why = reply?.reason === "session_not_found"
      ? `No session ${id} on this hub (it may have ended long ago). See /terminals.`
      : `The hub refused to show this session: ${reply?.reason ?? "error"}${reply?.detail ? ` (${reply.detail})` : ""}.`;
    setState("error", why);
  });

function resize(cols, rows) {
  if (cols > 0 && rows > 0 && (cols !== term.cols || rows !== term.rows)) term.resize(cols, rows);
  $("stat-size").textContent = `${term.cols}×${term.rows}`;
}

function ended(info) {
  s.ended = true;
  const how = info.signal ? `was killed by signal ${info.signal}` : info.exit_code === null || info.exit_code === undefined ? "ended" : `exited with status ${info.exit_code}`;
  setState("ended", `The command ${how}.`);
  setCanInput(false);
}

// ---- input ----
function setCanInput(can) {
  s.canInput = !!can && !s.ended;
  const mode = $("mode");
  mode.dataset.canInput = String(s.canInput);
  mode.textContent = s.canInput ? "you can type" : "read-only";
  mode.title = s.canInput ? "" : "The owner has not allowed you to type (parley run --allow-input, or parley term grant).";
  $("fit").hidden = !s.canInput;
}

function sendInput(data) {
  if (!s.canInput) {
    $("mode").textContent = "read-only: typing is not sent";
    return;
  }
  for (let at = 0; at < data.length; at += INPUT_CHUNK_BYTES) {
    const part = data.subarray(at, at + INPUT_CHUNK_BYTES);
    let text = "";
    for (const b of part) text += String.fromCharCode(b);
    request("input", { data_b64: btoa(text) }).catch((err) => {
      if (err.reason === "forbidden") setCanInput(false);
      $("mode").textContent = `input refused: ${err.reason ?? err.message}`;
    });
  }
}

const encoder = new TextEncoder();
term.onData((data) => sendInput(encoder.encode(data)));
term.onBinary((data) => sendInput(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));

$("fit").addEventListener("click", () => {
  const dims = fit.proposeDimensions();
  if (dims && dims.cols > 0 && dims.rows > 0) {
    request("resize", { cols: dims.cols, rows: dims.rows }).catch((err) => {
      $("mode").textContent = `resize refused: ${err.reason ?? err.message}`;
    });
  }
});

// ---- the stats panel ----
let lastStats = null;
setInterval(async () => {
  if (!channel.state || channel.state !== "joined") return;
  try {
    const stats = await request("get_stats", {});
    const now = performance.now();
    if (lastStats) {
      const rate = Math.max(0, (stats.bytes_in - lastStats.stats.bytes_in) / ((now - lastStats.at) / 1000));
      $("stat-rate").textContent = `${bytes(rate)}/s`;
    }
    lastStats = { stats, at: now };
    $("stat-viewers").textContent = String(stats.viewers);
    $("stat-drops").textContent = String(stats.drops);
    $("stat-resyncs").textContent = `${stats.resyncs} (this page: ${s.resyncs})`;
    $("stat-backlog").textContent = bytes(stats.backlog_high_water);
    $("stat-offset").textContent = bytes(s.offset);
  } catch {
    // shown by the state line when it is the connection
  }
}, STATS_INTERVAL_MS);

window.parleyTerm = term;
window.parleyChannel = channel;
window.parleySocket = socket;
window.parleyState = s;
