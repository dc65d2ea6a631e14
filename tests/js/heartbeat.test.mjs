// Heartbeats: phoenix.js heartbeats keep a socket alive past the hub's idle timeout, ping() gets an
// RTT, and the raw heartbeat frame gets the exact Phoenix reply. The hub runs with a 1 s idle
// timeout so "stays connected" means something: a silent socket is closed with 4000.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, joinOk, sleep, uniqueRoom, waitUntil } from "./client.mjs";

const IDLE_TIMEOUT_MS = 1000;
let hub;
const clients = new Clients();

before(async () => {
  hub = await start({ env: { PARLEY_HUB__IDLETIMEOUT: "00:00:01" } });
});

afterEach(async (t) => {
  await clients.closeAll();
  reportOnFailure(t, hub);
});

after(async () => {
  await clients.closeAll();
  await hub?.dispose();
});

test("5a. heartbeat: the phoenix socket stays connected across many heartbeats; ping() gets an RTT", async () => {
  // phoenix.js also uses the interval as the reply timeout, so 300 ms leaves room for a busy machine.
  const socket = await clients.connected(hub, { heartbeatIntervalMs: 300 });
  const channel = socket.channel(uniqueRoom("hb"));
  await joinOk(channel);

  // Three idle timeouts with nothing but heartbeats on the wire.
  await sleep(3 * IDLE_TIMEOUT_MS);
  const heartbeatReplies = socket.frames.filter((f) => f.topic === "phoenix" && f.event === "phx_reply");
  assert.ok(heartbeatReplies.length >= 6, `expected >= 6 heartbeat replies in 3 s at 300 ms, got ${heartbeatReplies.length}`);
  for (const f of heartbeatReplies) {
    assert.deepEqual(f.payload, { status: "ok", response: {} });
    assert.equal(f.join_ref, null);
  }
  assert.deepEqual(socket.closes, [], "the socket never closed");
  assert.equal(socket.opens, 1, "no reconnects");
  assert.equal(socket.isConnected(), true);
  assert.equal(channel.state, "joined");

  const rtt = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("ping callback not called within 3 s")), 3000);
    const sent = socket.ping((ms) => {
      clearTimeout(timer);
      resolve(ms);
    });
    if (!sent) {
      clearTimeout(timer);
      reject(new Error("ping() returned false: socket not connected"));
    }
  });
  assert.equal(typeof rtt, "number");
  assert.ok(rtt >= 0 && rtt < 3000, `rtt ${rtt}`);
});

test("5b. heartbeat: raw frame [null,\"1\",\"phoenix\",\"heartbeat\",{}] gets the exact phx_reply", async () => {
  const raw = await clients.raw(hub);
  raw.send([null, "1", "phoenix", "heartbeat", {}]);
  assert.deepEqual(await raw.next(), [null, "1", "phoenix", "phx_reply", { status: "ok", response: {} }]);

  // Refs are opaque strings and are echoed as sent.
  raw.send([null, "hb-x", "phoenix", "heartbeat", {}]);
  assert.deepEqual(await raw.next(), [null, "hb-x", "phoenix", "phx_reply", { status: "ok", response: {} }]);
});

test("5c. control: a socket that sends nothing is closed with 4000 after the idle timeout", async () => {
  const raw = await clients.raw(hub);
  const started = Date.now();
  const closed = await Promise.race([raw.closed, sleep(5000).then(() => null)]);
  assert.ok(closed, "the hub closed the silent socket within 5 s");
  assert.equal(closed.code, 4000);
  assert.ok(Date.now() - started >= IDLE_TIMEOUT_MS - 100, "not before the idle timeout");
});
