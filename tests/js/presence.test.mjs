// Presence with the stock phoenix.js Presence class: it must track joins, leaves, status/summary
// updates and the disappearance of clients that die without a close frame. The hub runs without auth
// (every socket is its own user, anon-<connection id>) and with a 1 s idle timeout, so a silent
// client is dropped quickly; the live clients heartbeat every 300 ms.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { Presence } from "phoenix";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, joinOk, pushOk, push, uniqueRoom, waitUntil } from "./client.mjs";

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

/** A connected socket, its user name (from the hub:lobby join) and its lobby channel. */
async function peer(opts = {}) {
  const socket = await clients.connected(hub, { heartbeatIntervalMs: 300, ...opts });
  const lobby = socket.channel("hub:lobby");
  const { name } = await joinOk(lobby);
  return { socket, lobby, name };
}

/** Joins topic with a phoenix Presence attached; resolves once the first presence_state arrived. */
async function joinWithPresence(socket, topic, params = {}) {
  const channel = socket.channel(topic, params);
  const presence = new Presence(channel);
  let syncs = 0;
  presence.onSync(() => syncs++);
  await joinOk(channel);
  await waitUntil(() => syncs > 0, { what: `presence_state on ${topic}` });
  return { channel, presence };
}

/** {name: metas} as phoenix.js sees it. */
const listed = (presence) => Object.fromEntries(presence.list((id, { metas }) => [id, metas]));

const waitForKeys = (presence, keys, what) =>
  waitUntil(() => JSON.stringify(Object.keys(listed(presence)).sort()) === JSON.stringify([...keys].sort()), {
    what: `${what}: presence.list() = ${JSON.stringify(keys.sort())}`,
  });

test("presence: joins, leaves and a status/summary update are tracked by phoenix.js Presence", async () => {
  const topic = uniqueRoom("presence");
  const a = await peer({ params: { client: "agent" } });
  const b = await peer();
  const c = await peer();

  const pa = await joinWithPresence(a.socket, topic);
  await waitForKeys(pa.presence, [a.name], "a sees itself");
  const pb = await joinWithPresence(b.socket, topic);
  const pc = await joinWithPresence(c.socket, topic, { client: "tui" });
  for (const p of [pa, pb, pc]) {
    await waitForKeys(p.presence, [a.name, b.name, c.name], "three peers");
  }

  const seenByB = listed(pb.presence);
  assert.equal(seenByB[a.name].length, 1, "one meta per connection");
  const before = seenByB[a.name][0];
  assert.equal(before.client, "agent", "client from the socket connect param");
  assert.equal(seenByB[b.name][0].client, "service", "a client without an Origin that declared nothing");
  assert.equal(seenByB[c.name][0].client, "tui", "client from the join param");
  assert.equal(before.status, "idle");
  assert.equal(before.summary, null);
  assert.equal(typeof before.phx_ref, "string");
  assert.ok(Math.abs(before.online_at - Date.now()) < 60_000, `online_at ${before.online_at} is Unix ms`);

  // A status/summary update: leave of the old meta plus join of the new one with phx_ref_prev.
  const updated = await pushOk(a.lobby, "presence.update", { status: "working", summary: "porting the tracker" });
  assert.deepEqual(updated, { status: "working", summary: "porting the tracker", hidden: false });
  await waitUntil(() => listed(pb.presence)[a.name]?.[0]?.status === "working", { what: "b sees a working" });
  const after = listed(pb.presence)[a.name];
  assert.equal(after.length, 1, "the old meta left");
  assert.equal(after[0].summary, "porting the tracker");
  assert.equal(after[0].phx_ref_prev, before.phx_ref);
  assert.notEqual(after[0].phx_ref, before.phx_ref);
  await waitUntil(() => listed(pc.presence)[a.name]?.[0]?.summary === "porting the tracker", { what: "c sees a's summary" });

  // Bad values are refused with a reason.
  const bad = await push(a.lobby, "presence.update", { status: "busy" });
  assert.equal(bad.status, "error");
  assert.equal(bad.response.reason, "invalid_status");
  const long = await push(a.lobby, "presence.update", { summary: "x".repeat(201) });
  assert.equal(long.response.reason, "too_large");

  // A leave.
  await new Promise((resolve) => pb.channel.leave().receive("ok", resolve));
  await waitForKeys(pa.presence, [a.name, c.name], "b left");
  await waitForKeys(pc.presence, [a.name, c.name], "b left (c's view)");

  // Hidden: gone from everyone's list, but still gets messages.
  await pushOk(c.lobby, "presence.update", { hidden: true });
  await waitForKeys(pa.presence, [a.name], "c hidden");
  const got = [];
  pc.channel.on("msg", (m) => got.push(m.body));
  await pushOk(pa.channel, "msg", { body: "still there?" });
  await waitUntil(() => got.includes("still there?"), { what: "the hidden peer gets messages" });
});

test("presence: a rejoin gets a fresh presence_state", async () => {
  const topic = uniqueRoom("presence-rejoin");
  const a = await peer();
  const b = await peer();
  const pa = await joinWithPresence(a.socket, topic);
  const pb = await joinWithPresence(b.socket, topic);
  await waitForKeys(pa.presence, [a.name, b.name], "both");

  const states = () => b.socket.frames.filter((f) => f.topic === topic && f.event === "presence_state").length;
  assert.equal(states(), 1);
  await new Promise((resolve) => pb.channel.leave().receive("ok", resolve));
  const again = await joinWithPresence(b.socket, topic);
  assert.equal(states(), 2, "a presence_state for the second join too");
  await waitForKeys(again.presence, [a.name, b.name], "b sees both after the rejoin");
  await waitForKeys(pa.presence, [a.name, b.name], "a sees b again");
});

test("presence: a client killed without a close frame disappears (socket destroyed, and silent until the idle timeout)", async () => {
  const topic = uniqueRoom("presence-ghost");
  const watcher = await peer();
  const pw = await joinWithPresence(watcher.socket, topic);

  // Neither victim may come back on its own: no reconnects, no heartbeats.
  const quiet = { reconnectAfterMs: () => 600_000, heartbeatIntervalMs: 600_000, rejoinAfterMs: () => 600_000 };
  const destroyed = await peer(quiet);
  const silent = await peer(quiet);
  await joinWithPresence(destroyed.socket, topic);
  await joinWithPresence(silent.socket, topic);
  await waitForKeys(pw.presence, [watcher.name, destroyed.name, silent.name], "all three");

  // The TCP connection goes away without a WebSocket close frame.
  destroyed.socket.conn._socket.destroy();
  clients.sockets.delete(destroyed.socket);
  await waitForKeys(pw.presence, [watcher.name, silent.name], "the destroyed client left");

  // The connection stays open but nothing is read or sent: only the idle timeout (1 s) and the
  // close grace (2 s) can end it.
  silent.socket.conn._socket.pause();
  clients.sockets.delete(silent.socket);
  const started = Date.now();
  await waitUntil(() => !(silent.name in listed(pw.presence)), { timeoutMs: 8000, what: "the silent client to leave presence" });
  assert.ok(Date.now() - started >= 900, "not before the idle timeout");
  assert.deepEqual(Object.keys(listed(pw.presence)), [watcher.name]);

  // Stop the victims' (long) reconnect and heartbeat timers, or they keep node running.
  for (const victim of [destroyed, silent]) {
    victim.socket.conn?._socket?.destroy();
    victim.socket.disconnect();
  }
});
