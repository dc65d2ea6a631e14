// Frame-exact cases with a raw `ws` client (no phoenix.js in between).

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, sleep, uniqueRoom } from "./client.mjs";

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

// Presence frames come after every join (presence.test.mjs covers them); these tests look past them.
const notPresence = (f) => f[3] !== "presence_state" && f[3] !== "presence_diff";
const nextOf = (raw) => raw.nextMatching(notPresence);

test("10. duplicate join on one socket: phx_close for the old join_ref, then ok for the new join", async () => {
  const topic = uniqueRoom("a");
  const raw = await clients.raw(hub);

  raw.send(["1", "1", topic, "phx_join", {}]);
  const first = await raw.next();
  assert.equal(first.length, 5);
  assert.deepEqual(first.slice(0, 4), ["1", "1", topic, "phx_reply"]);
  assert.equal(first[4].status, "ok");
  assert.equal(first[4].response.offset, 0);
  assert.equal(typeof first[4].response.epoch, "string");
  assert.deepEqual(await raw.next(), ["1", null, topic, "presence_state", {}], "presence_state right after the join reply");

  raw.send(["5", "5", topic, "phx_join", {}]);
  assert.deepEqual(await nextOf(raw), ["1", "1", topic, "phx_close", {}]);
  const second = await nextOf(raw);
  assert.deepEqual(second, ["5", "5", topic, "phx_reply", { status: "ok", response: { offset: 0, epoch: first[4].response.epoch } }]);
  assert.deepEqual((await raw.next()).slice(0, 4), ["5", null, topic, "presence_state"], "and again after the rejoin");

  // Only the new instance is subscribed: one push gives one reply and exactly one broadcast.
  raw.send(["5", "6", topic, "msg", { body: "after rejoin" }]);
  const reply = await nextOf(raw);
  assert.deepEqual(reply.slice(0, 4), ["5", "6", topic, "phx_reply"]);
  assert.equal(reply[4].status, "ok");
  assert.equal(reply[4].response.offset, 1);
  const broadcast = await nextOf(raw);
  assert.deepEqual(broadcast.slice(0, 4), [null, null, topic, "msg"]);
  assert.equal(broadcast[4].offset, 1);
  assert.equal(broadcast[4].body, "after rejoin");
  raw.send([null, "7", "phoenix", "heartbeat", {}]);
  assert.deepEqual(await nextOf(raw), [null, "7", "phoenix", "phx_reply", { status: "ok", response: {} }],
    "the next frame after the one broadcast is the heartbeat reply (no second broadcast)");
});

test("10b. raw join with since replays with the join's join_ref, then live broadcasts have join_ref null", async () => {
  const topic = uniqueRoom("replay");
  const writer = await clients.raw(hub);
  writer.send(["1", "1", topic, "phx_join", {}]);
  const joined = await writer.next();
  const epoch = joined[4].response.epoch;
  for (let i = 1; i <= 3; i++) {
    writer.send(["1", String(i + 1), topic, "msg", { body: `r${i}` }]);
  }
  // 3 replies + 3 broadcasts, in some interleaving.
  for (let i = 0; i < 6; i++) {
    await nextOf(writer);
  }

  const reader = await clients.raw(hub);
  reader.send(["9", "9", topic, "phx_join", { since: 1, epoch }]);
  assert.deepEqual(await reader.next(), ["9", "9", topic, "phx_reply", { status: "ok", response: { offset: 3, epoch, recovered: true } }]);
  for (const offset of [2, 3]) {
    const f = await reader.next();
    assert.deepEqual(f.slice(0, 4), ["9", null, topic, "msg"], "a replayed message is scoped to the join");
    assert.equal(f[4].offset, offset);
    assert.equal(f[4].body, `r${offset}`);
  }
  assert.deepEqual((await reader.next()).slice(0, 4), ["9", null, topic, "presence_state"], "presence_state after the replay");
  writer.send(["1", "20", topic, "msg", { body: "live" }]);
  const live = await nextOf(reader);
  assert.deepEqual(live.slice(0, 4), [null, null, topic, "msg"]);
  assert.equal(live[4].offset, 4);
  await sleep(50);
  assert.equal(reader.queue.filter(notPresence).length, 0, "nothing else arrived");
});
