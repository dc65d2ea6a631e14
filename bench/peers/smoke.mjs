// Round-trip smoke client for the benchmark peers (run by bench/peers/smoke.sh).
//
//   node bench/peers/smoke.mjs signalr  http://127.0.0.1:PORT
//   node bench/peers/smoke.mjs socketio http://127.0.0.1:PORT
//
// Speaks each peer's wire protocol over a raw WebSocket — the way `parley bench` does — with two
// connections: a subscriber that joins a channel and a publisher that does not. Checks the handshake,
// the Join/Publish acks, that the subscriber receives exactly the published body and that the
// publisher (not a member) receives nothing. Prints one line per check: "PASS name" or
// "FAIL name: reason". Exit code 0 when every check passed.
import { createRequire } from "node:module";

const require = createRequire(new URL("./socketio/package.json", import.meta.url));
const WebSocket = require("ws");

const STEP_TIMEOUT_MS = 5000;
const QUIET_MS = 300;

let failed = 0;
function pass(name) {
  console.log(`PASS ${name}`);
}
function fail(name, reason) {
  failed++;
  console.log(`FAIL ${name}: ${reason}`);
}
async function check(name, fn) {
  try {
    await fn();
    pass(name);
    return true;
  } catch (err) {
    fail(name, err?.message ?? String(err));
    return false;
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** A WebSocket whose incoming text frames are queued; next(pred) waits for the first matching one. */
class Conn {
  constructor(url, label) {
    this.label = label;
    this.queue = [];
    this.waiters = [];
    this.ws = new WebSocket(url);
    this.ws.on("message", (data, isBinary) => this.push(isBinary ? data : data.toString("utf8")));
    this.ws.on("close", (code) => this.push({ wsClosed: code }));
    this.ws.on("error", (err) => this.push({ wsError: err.message }));
  }
  open() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no WebSocket open within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
      this.ws.once("open", () => { clearTimeout(timer); resolve(); });
      this.ws.once("error", (err) => { clearTimeout(timer); reject(new Error(`${this.label}: ${err.message}`)); });
    });
  }
  push(item) {
    const i = this.waiters.findIndex((w) => w.pred(item));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(item);
    } else {
      this.queue.push(item);
    }
  }
  /** Next message matching pred (messages that do not match stay queued). */
  next(pred, what, timeoutMs = STEP_TIMEOUT_MS) {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const seen = this.queue.map((m) => JSON.stringify(m)).join(", ");
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs} ms (unmatched: ${seen || "none"})`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
  /** Fails if a message matching pred arrives within ms. */
  async none(pred, what, ms = QUIET_MS) {
    try {
      const m = await this.next(pred, what, ms);
      throw new Error(`${this.label}: unexpected ${what}: ${JSON.stringify(m)}`);
    } catch (err) {
      if (err.message.startsWith(`${this.label}: no `)) return;
      throw err;
    }
  }
  send(text) {
    this.ws.send(text);
  }
  close() {
    try { this.ws.terminate(); } catch { /* already gone */ }
  }
}

// ---- SignalR JSON hub protocol (records end with 0x1e) -------------------------------------------
const RS = "\x1e";

class SignalRConn extends Conn {
  constructor(url, label) {
    super(url, label);
    this.nextId = 1;
    this.records = [];
  }
  push(item) {
    if (typeof item !== "string") return super.push(item);
    for (const rec of item.split(RS)) {
      if (rec.length > 0) super.push(JSON.parse(rec));
    }
  }
  async handshake() {
    this.send(JSON.stringify({ protocol: "json", version: 1 }) + RS);
    // The handshake response is the first record without a "type": {} or {"error": "..."}.
    const m = await this.next((r) => r && typeof r === "object" && r.type === undefined && !("wsClosed" in r) && !("wsError" in r), "handshake response");
    assert(m.error === undefined, `${this.label}: handshake error ${m.error}`);
  }
  async invoke(target, ...args) {
    const invocationId = String(this.nextId++);
    this.send(JSON.stringify({ type: 1, invocationId, target, arguments: args }) + RS);
    const m = await this.next((r) => r?.type === 3 && r.invocationId === invocationId, `completion of ${target}`);
    assert(m.error === undefined, `${this.label}: ${target} failed: ${m.error}`);
    return m.result;
  }
}

async function smokeSignalR(base) {
  const url = base.replace(/^http/, "ws") + "/hub";
  const channel = `smoke:${process.pid}`;
  const body = `hello from smoke ${Date.now()}`;
  const sub = new SignalRConn(url, "subscriber");
  const pub = new SignalRConn(url, "publisher");
  try {
    if (!(await check("signalr: WebSocket handshake (json protocol v1)", async () => {
      await Promise.all([sub.open(), pub.open()]);
      await Promise.all([sub.handshake(), pub.handshake()]);
    }))) return;
    await check("signalr: Join returns true", async () => {
      const r = await sub.invoke("Join", channel);
      assert(r === true, `Join returned ${JSON.stringify(r)}`);
    });
    await check("signalr: Publish returns true", async () => {
      const r = await pub.invoke("Publish", channel, body);
      assert(r === true, `Publish returned ${JSON.stringify(r)}`);
    });
    await check("signalr: subscriber receives msg with the body", async () => {
      const m = await sub.next((r) => r?.type === 1 && r.target === "msg", "msg invocation");
      assert(JSON.stringify(m.arguments) === JSON.stringify([body]), `arguments ${JSON.stringify(m.arguments)}`);
    });
    await check("signalr: non-member publisher receives nothing", async () => {
      await pub.none((r) => r?.type === 1 && r.target === "msg", "msg invocation");
    });
  } finally {
    sub.close();
    pub.close();
  }
}

// ---- Socket.IO v5 over raw Engine.IO v4 WebSocket ------------------------------------------------
class SocketIOConn extends Conn {
  constructor(url, label) {
    super(url, label);
    this.nextAck = 0;
  }
  push(item) {
    // Engine.IO ping ("2") must be answered with pong ("3") or the server drops us.
    if (item === "2") {
      this.send("3");
      return;
    }
    super.push(item);
  }
  async handshake() {
    const open = await this.next((m) => typeof m === "string" && m.startsWith("0"), "Engine.IO open packet");
    const info = JSON.parse(open.slice(1));
    assert(typeof info.sid === "string" && info.pingInterval > 0, `open packet ${open}`);
    this.send("40");
    const connect = await this.next((m) => typeof m === "string" && (m.startsWith("40") || m.startsWith("44")), "namespace connect");
    assert(connect.startsWith("40{"), `namespace connect answered ${connect}`);
  }
  async emitWithAck(...args) {
    const id = this.nextAck++;
    this.send(`42${id}${JSON.stringify(args)}`);
    const prefix = `43${id}[`;
    const m = await this.next((x) => typeof x === "string" && x.startsWith(prefix), `ack ${id} for ${args[0]}`);
    return JSON.parse(m.slice(prefix.length - 1));
  }
}

async function smokeSocketIO(base) {
  const url = base.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
  const channel = `smoke:${process.pid}`;
  const body = `hello from smoke ${Date.now()}`;
  const sub = new SocketIOConn(url, "subscriber");
  const pub = new SocketIOConn(url, "publisher");
  const isMsg = (m) => typeof m === "string" && m.startsWith('42["msg"');
  try {
    if (!(await check("socketio: Engine.IO v4 open + namespace connect (40)", async () => {
      await Promise.all([sub.open(), pub.open()]);
      await Promise.all([sub.handshake(), pub.handshake()]);
    }))) return;
    await check("socketio: join acked with true", async () => {
      const r = await sub.emitWithAck("join", channel);
      assert(JSON.stringify(r) === "[true]", `ack ${JSON.stringify(r)}`);
    });
    await check("socketio: publish acked with true", async () => {
      const r = await pub.emitWithAck("publish", channel, body);
      assert(JSON.stringify(r) === "[true]", `ack ${JSON.stringify(r)}`);
    });
    await check("socketio: subscriber receives 42[\"msg\",body]", async () => {
      const m = await sub.next(isMsg, "msg event");
      assert(m === `42${JSON.stringify(["msg", body])}`, `got ${m}`);
    });
    await check("socketio: non-member publisher receives nothing", async () => {
      await pub.none(isMsg, "msg event");
    });
  } finally {
    sub.close();
    pub.close();
  }
}

const [target, base] = process.argv.slice(2);
if (!base || !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(base)) {
  console.error("usage: node bench/peers/smoke.mjs signalr|socketio http://127.0.0.1:PORT");
  process.exit(2);
}
if (target === "signalr") await smokeSignalR(base);
else if (target === "socketio") await smokeSocketIO(base);
else {
  console.error(`unknown target '${target}'`);
  process.exit(2);
}
process.exit(failed === 0 ? 0 : 1);
