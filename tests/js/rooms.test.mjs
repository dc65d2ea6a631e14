// Room basics with the official phoenix client: join, push/broadcast, fan-out order, leave,
// topic errors, epoch mismatch, idempotent client_id and history paging. One hub for the file;
// every test uses its own room and its own sockets.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, join, joinOk, push, pushOk, sleep, uniqueRoom, waitUntil } from "./client.mjs";

let hub;
const clients = new Clients();

before(async () => {
  hub = await start();
});

afterEach(async (t) => {
  await clients.closeAll();
  reportOnFailure(t, hub);
});

after(async () => {
  await clients.closeAll();
  await hub?.dispose();
});

/** Collects the `msg` events a channel receives, in order. */
function collectMsgs(channel) {
  const msgs = [];
  channel.on("msg", (payload) => msgs.push(payload));
  return msgs;
}

test("1. connect and join a room: ok reply with a numeric offset and a string epoch", async () => {
  const socket = await clients.connected(hub);
  assert.equal(socket.isConnected(), true);
  const channel = socket.channel(uniqueRoom("join"));
  const r = await join(channel);
  assert.equal(r.status, "ok", JSON.stringify(r));
  assert.equal(typeof r.response.offset, "number");
  assert.ok(Number.isInteger(r.response.offset));
  assert.equal(r.response.offset, 0, "a new room's head is 0");
  assert.equal(typeof r.response.epoch, "string");
  assert.match(r.response.epoch, /^[0-9a-f]{12}$/, "the epoch is 12 hex digits (docs/protocol.md §5)");
  assert.equal("recovered" in r.response, false, "no recovered flag without since");
  assert.equal(channel.state, "joined");
});

test("2. push msg: ok reply {id, offset, ts}; the sender gets the broadcast with the same id and body", async () => {
  const socket = await clients.connected(hub);
  const topic = uniqueRoom("push");
  const channel = socket.channel(topic);
  const msgs = collectMsgs(channel);
  await joinOk(channel);

  const body = "hello from the phoenix client ✓";
  const r = await pushOk(channel, "msg", { body, meta: { kind: "greeting" } });
  assert.equal(typeof r.id, "string");
  assert.ok(r.id.length > 0);
  assert.equal(r.offset, 1);
  assert.equal(typeof r.ts, "number");
  assert.ok(Number.isInteger(r.ts) && r.ts > 0);
  assert.equal("duplicate" in r, false);

  await waitUntil(() => msgs.length >= 1, { what: "the broadcast msg" });
  const m = msgs[0];
  assert.equal(m.id, r.id);
  assert.equal(m.body, body);
  assert.equal(m.offset, r.offset);
  assert.equal(m.ts, r.ts);
  assert.equal(typeof m.from, "string");
  assert.deepEqual(m.meta, { kind: "greeting" });

  // On the wire the fan-out is a topic-wide broadcast: join_ref and ref are null.
  const frame = socket.frames.find((f) => f.topic === topic && f.event === "msg");
  assert.equal(frame.join_ref, null);
  assert.equal(frame.ref, null);

  await sleep(100);
  assert.equal(msgs.length, 1, "exactly one broadcast per push");
});

test("3. broadcast between two clients: B receives all N of A's messages in order, offsets +1 each", async () => {
  const N = 40;
  const topic = uniqueRoom("fanout");
  const a = await clients.connected(hub);
  const b = await clients.connected(hub);
  const chB = b.channel(topic);
  const got = collectMsgs(chB);
  const joinB = await joinOk(chB);
  const chA = a.channel(topic);
  await joinOk(chA);

  // Pipelined: all N pushes go out before any reply is awaited.
  const replies = await Promise.all(Array.from({ length: N }, (_, i) => push(chA, "msg", { body: `m${i}` })));
  for (const [i, r] of replies.entries()) {
    assert.equal(r.status, "ok", `push ${i}: ${JSON.stringify(r)}`);
  }

  await waitUntil(() => got.length >= N, { what: `${N} messages at B (got ${got.length})` });
  await sleep(100);
  assert.equal(got.length, N, "no extra messages");
  assert.deepEqual(got.map((m) => m.body), Array.from({ length: N }, (_, i) => `m${i}`), "push order");
  for (let i = 1; i < N; i++) {
    assert.equal(got[i].offset, got[i - 1].offset + 1, `offset step at ${i}`);
  }
  assert.equal(got[0].offset, joinB.offset + 1);
  assert.deepEqual(got.map((m) => m.id), replies.map((r) => r.response.id), "B sees the ids A was acknowledged");
  assert.deepEqual(got.map((m) => m.offset), replies.map((r) => r.response.offset));
});

test("4. leave: ok reply, phx_close for the join, and no messages after leaving", async () => {
  const topic = uniqueRoom("leave");
  const a = await clients.connected(hub);
  const b = await clients.connected(hub);
  const chA = a.channel(topic);
  const gotA = collectMsgs(chA);
  await joinOk(chA);
  const chB = b.channel(topic);
  const gotB = collectMsgs(chB);
  await joinOk(chB);
  const joinRefB = chB.joinRef();

  await pushOk(chA, "msg", { body: "before leave" });
  await waitUntil(() => gotB.length === 1, { what: "B to get the message sent before leaving" });

  let closed = false;
  chB.onClose(() => {
    closed = true;
  });
  const left = await new Promise((resolve) => {
    chB.leave(3000)
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  });
  assert.equal(left.status, "ok");
  assert.equal(closed, true, "the channel closed");
  // phoenix.js resolves leave() "ok" locally at once (its state is already "leaving"), so check
  // the wire: the server answers the phx_leave with ok…
  const isLeaveReply = (f) => f.topic === topic && f.event === "phx_reply" && f.join_ref === joinRefB && f.ref !== joinRefB;
  await waitUntil(() => b.frames.some(isLeaveReply), { what: `the server's reply to phx_leave; frames: ${JSON.stringify(b.frames)}` });
  assert.deepEqual(b.frames.find(isLeaveReply).payload, { status: "ok", response: {} });
  // …and followed by phx_close for the join.
  await waitUntil(() => b.frames.some((f) => f.topic === topic && f.event === "phx_close"), { what: "phx_close" });
  const close = b.frames.find((f) => f.topic === topic && f.event === "phx_close");
  assert.equal(close.join_ref, joinRefB);
  assert.equal(close.ref, joinRefB);

  const framesAtLeave = b.frames.length;
  await pushOk(chA, "msg", { body: "after leave 1" });
  await pushOk(chA, "msg", { body: "after leave 2" });
  await waitUntil(() => gotA.length === 3, { what: "A to get its own 3 broadcasts" });
  await sleep(200);
  const late = b.frames.slice(framesAtLeave).filter((f) => f.topic === topic);
  assert.deepEqual(late, [], "B's socket gets nothing for the room after leaving");
  assert.equal(gotB.length, 1);
  assert.equal(b.isConnected(), true, "leaving a channel keeps the socket open");
});

test("8. topic errors: unmatched topic prefix, invalid room name", async () => {
  const socket = await clients.connected(hub);

  const nope = socket.channel("nope:x");
  const r1 = await join(nope);
  assert.equal(r1.status, "error");
  assert.equal(r1.response.reason, "unmatched topic");
  const frame = socket.frames.find((f) => f.topic === "nope:x" && f.event === "phx_reply");
  assert.equal(frame.join_ref, null, "Phoenix answers unmatched topic with join_ref null");
  nope.leave(); // stop phoenix.js from retrying the join

  const bad = socket.channel("room:bad name!");
  const r2 = await join(bad);
  assert.equal(r2.status, "error");
  assert.equal(r2.response.reason, "invalid_topic");
  bad.leave();

  const tooLong = socket.channel(`room:${"x".repeat(101)}`);
  const r3 = await join(tooLong);
  assert.equal(r3.status, "error");
  assert.equal(r3.response.reason, "invalid_topic");
  tooLong.leave();

  const empty = socket.channel("room:");
  const r4 = await join(empty);
  assert.equal(r4.status, "error");
  assert.equal(r4.response.reason, "invalid_topic");
  empty.leave();

  // The socket stays usable.
  const ok = socket.channel(`room:${"y".repeat(100)}`);
  await joinOk(ok);
});

test("9. recovered:false when the epoch differs, and nothing is replayed", async () => {
  const topic = uniqueRoom("epoch");
  const a = await clients.connected(hub);
  const chA = a.channel(topic);
  const first = await joinOk(chA);
  await pushOk(chA, "msg", { body: "one" });
  await pushOk(chA, "msg", { body: "two" });

  const b = await clients.connected(hub);
  const chB = b.channel(topic, { since: 0, epoch: "not-the-epoch" });
  const got = collectMsgs(chB);
  const r = await joinOk(chB);
  assert.equal(r.recovered, false);
  assert.equal(r.offset, 2, "offset is the head");
  assert.equal(r.epoch, first.epoch, "the reply carries the real epoch");

  // Sync point: a live message. It must be the first (and only) msg B sees.
  const live = await pushOk(chA, "msg", { body: "three" });
  await waitUntil(() => got.length >= 1, { what: "the live message at B" });
  await sleep(100);
  assert.deepEqual(got.map((m) => m.offset), [live.offset]);
  assert.equal(got[0].body, "three");
});

test("11. idempotent client_id: same id and offset, duplicate:true, one broadcast", async () => {
  const topic = uniqueRoom("idem");
  const socket = await clients.connected(hub);
  const channel = socket.channel(topic);
  const msgs = collectMsgs(channel);
  await joinOk(channel);
  const other = await clients.connected(hub);
  const chOther = other.channel(topic);
  const otherMsgs = collectMsgs(chOther);
  await joinOk(chOther);

  const r1 = await pushOk(channel, "msg", { body: "once", client_id: "cid-1" });
  const r2 = await pushOk(channel, "msg", { body: "once", client_id: "cid-1" });
  assert.equal("duplicate" in r1, false, "the first push is not a duplicate");
  assert.equal(r2.duplicate, true);
  assert.equal(r2.id, r1.id);
  assert.equal(r2.offset, r1.offset);
  assert.equal(r2.ts, r1.ts);

  // Sync point: a different message after the duplicate.
  const r3 = await pushOk(channel, "msg", { body: "next", client_id: "cid-2" });
  assert.equal(r3.offset, r1.offset + 1, "the duplicate did not take an offset");
  for (const [who, list] of [["sender", msgs], ["other subscriber", otherMsgs]]) {
    await waitUntil(() => list.some((m) => m.client_id === "cid-2"), { what: `the sync message at the ${who}` });
    assert.deepEqual(list.map((m) => [m.client_id, m.offset]), [["cid-1", r1.offset], ["cid-2", r3.offset]], who);
  }
});

test("12. history paging: newest first, limit and before, more flag", async () => {
  const topic = uniqueRoom("history");
  const socket = await clients.connected(hub);
  const channel = socket.channel(topic);
  await joinOk(channel);
  for (let i = 1; i <= 5; i++) {
    await pushOk(channel, "msg", { body: `h${i}` });
  }

  const page1 = await pushOk(channel, "history", { limit: 2 });
  assert.deepEqual(page1.messages.map((m) => m.offset), [5, 4]);
  assert.deepEqual(page1.messages.map((m) => m.body), ["h5", "h4"]);
  assert.equal(page1.more, true);
  for (const m of page1.messages) {
    assert.equal(typeof m.id, "string");
    assert.equal(typeof m.ts, "number");
    assert.equal(typeof m.from, "string");
  }

  const page2 = await pushOk(channel, "history", { before: 4, limit: 10 });
  assert.deepEqual(page2.messages.map((m) => m.offset), [3, 2, 1]);
  assert.deepEqual(page2.messages.map((m) => m.body), ["h3", "h2", "h1"]);
  assert.equal(page2.more, false);

  const all = await pushOk(channel, "history", {});
  assert.deepEqual(all.messages.map((m) => m.offset), [5, 4, 3, 2, 1]);
  assert.equal(all.more, false);

  const bad = await push(channel, "history", { limit: 0 });
  assert.equal(bad.status, "error");
  assert.equal(bad.response.reason, "invalid_payload");
});
