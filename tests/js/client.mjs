// Client-side helpers for the protocol tests: the official phoenix Socket (with `ws` as its
// transport) wrapped in promises, and a raw `ws` client for frame-level assertions.
// Every wait is bounded and fails with a message that says what it waited for.

import { Socket } from "phoenix";
import WebSocket from "ws";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond() every 10 ms until it is truthy; rejects after timeoutMs naming `what`. */
export async function waitUntil(cond, { timeoutMs = 5000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = cond();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(10);
  }
}

/** Resolves with {status, response} for the first of ok / error / timeout of a phoenix Push. */
export function reply(push) {
  return new Promise((resolve) => {
    push
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout", response: null }));
  });
}

/** Joins and resolves with the join reply. The phoenix default timeout (10 s) is lowered. */
export const join = (channel, timeoutMs = 5000) => reply(channel.join(timeoutMs));

/** Pushes and resolves with the reply. */
export const push = (channel, event, payload, timeoutMs = 5000) => reply(channel.push(event, payload, timeoutMs));

/** Joins and asserts the reply is ok; returns the response. */
export async function joinOk(channel, timeoutMs) {
  const r = await join(channel, timeoutMs);
  if (r.status !== "ok") {
    throw new Error(`join ${channel.topic} failed: ${JSON.stringify(r)}`);
  }
  return r.response;
}

/** Pushes and asserts the reply is ok; returns the response. */
export async function pushOk(channel, event, payload, timeoutMs) {
  const r = await push(channel, event, payload, timeoutMs);
  if (r.status !== "ok") {
    throw new Error(`push ${event} to ${channel.topic} failed: ${JSON.stringify(r)}`);
  }
  return r.response;
}

let roomCounter = 0;
/** A fresh room topic for one test, so tests sharing a hub never see each other's messages. */
export function uniqueRoom(label = "t") {
  roomCounter++;
  return `room:${label}-${process.pid}-${roomCounter}-${Date.now().toString(36)}`;
}

/**
 * Tracks the sockets a test opens so `closeAll()` (in afterEach/after) always disconnects them.
 */
export class Clients {
  constructor() {
    this.sockets = new Set();
    this.raws = new Set();
  }

  /**
   * A phoenix Socket on hub.endpoint, with `ws` as transport. Records every raw frame it receives
   * in socket.frames ({join_ref, ref, topic, event, payload}) and every close event in socket.closes.
   * Pass connect: false to connect later.
   */
  socket(hub, opts = {}) {
    const { connect = true, endpoint, ...socketOpts } = opts;
    const socket = new Socket(endpoint ?? hub.endpoint, { transport: WebSocket, ...socketOpts });
    socket.frames = [];
    socket.closes = [];
    socket.opens = 0;
    socket.onMessage((msg) => socket.frames.push(msg));
    socket.onClose((event) => socket.closes.push({ code: event.code, reason: event.reason, wasClean: event.wasClean }));
    socket.onOpen(() => {
      socket.opens++;
    });
    this.sockets.add(socket);
    if (connect) {
      socket.connect();
    }
    return socket;
  }

  /** A phoenix Socket that is open (bounded wait). */
  async connected(hub, opts = {}) {
    const socket = this.socket(hub, opts);
    await waitUntil(() => socket.isConnected(), { timeoutMs: 5000, what: "the phoenix socket to open" });
    return socket;
  }

  /** A raw ws client on hub.socketUrl. */
  async raw(hub, url = hub.socketUrl) {
    const client = await RawClient.open(url);
    this.raws.add(client);
    return client;
  }

  /** Disconnects one phoenix socket and waits (bounded) until its transport is closed. */
  async disconnect(socket, timeoutMs = 3000) {
    this.sockets.delete(socket);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      socket.disconnect(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async closeAll() {
    const sockets = [...this.sockets];
    const raws = [...this.raws];
    this.sockets.clear();
    this.raws.clear();
    await Promise.all([...sockets.map((s) => this.disconnect(s, 1500)), ...raws.map((r) => r.close())]);
  }
}

/**
 * A raw Phoenix V2 client: sends arrays, queues every received frame (parsed) in order.
 * next() takes the next frame; nextMatching() skips frames until one matches.
 */
export class RawClient {
  constructor(ws) {
    this.ws = ws;
    this.received = []; // every frame, for diagnostics
    this.queue = [];
    this.waiters = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        this.flushWaiters();
      });
    });
    ws.on("message", (data, isBinary) => {
      const frame = isBinary ? data : JSON.parse(data.toString());
      this.received.push(frame);
      this.queue.push(frame);
      this.flushWaiters();
    });
    ws.on("error", () => {});
  }

  static open(url, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const client = new RawClient(ws);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`raw ws did not open within ${timeoutMs} ms: ${url}`));
      }, timeoutMs);
      ws.once("open", () => {
        clearTimeout(timer);
        resolve(client);
      });
      ws.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  send(frame) {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  flushWaiters() {
    while (this.waiters.length > 0 && (this.queue.length > 0 || this.closeInfo)) {
      const waiter = this.waiters.shift();
      clearTimeout(waiter.timer);
      if (this.queue.length > 0) {
        waiter.resolve(this.queue.shift());
      } else {
        waiter.reject(new Error(`socket closed (${JSON.stringify(this.closeInfo)}) while waiting for a frame; received so far: ${JSON.stringify(this.received)}`));
      }
    }
  }

  /** The next received frame (bounded wait). */
  next(timeoutMs = 5000) {
    if (this.queue.length > 0) {
      return Promise.resolve(this.queue.shift());
    }
    if (this.closeInfo) {
      return Promise.reject(new Error(`socket closed (${JSON.stringify(this.closeInfo)}); received: ${JSON.stringify(this.received)}`));
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: null };
      waiter.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no frame within ${timeoutMs} ms; received so far: ${JSON.stringify(this.received)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Skips frames until pred(frame) is true (bounded overall). */
  async nextMatching(pred, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no matching frame within ${timeoutMs} ms; received: ${JSON.stringify(this.received)}`);
      }
      const frame = await this.next(left);
      if (pred(frame)) {
        return frame;
      }
    }
  }

  /** Closes (bounded); resolves when closed. */
  async close(timeoutMs = 2000) {
    if (this.closeInfo) {
      return this.closeInfo;
    }
    try {
      this.ws.close(1000);
    } catch {
      // not open yet
    }
    const timer = setTimeout(() => this.ws.terminate(), timeoutMs);
    const info = await this.closed;
    clearTimeout(timer);
    return info;
  }
}
