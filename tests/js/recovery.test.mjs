// Recovery with the official phoenix client: a client that disconnected rejoins with
// {since, epoch} and gets exactly what it missed; a client whose hub restarts reconnects by itself
// and, through a params *function*, rejoins from where it was.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, joinOk, push, pushOk, sleep, uniqueRoom, waitUntil } from "./client.mjs";

let hub;
const clients = new Clients();
const extraHubs = new Set(); // hubs started by single tests, disposed even when the test fails

before(async () => {
  hub = await start();
});

afterEach(async (t) => {
  await clients.closeAll();
  reportOnFailure(t, hub, ...extraHubs);
  await Promise.all([...extraHubs].map((h) => h.dispose()));
  extraHubs.clear();
});

after(async () => {
  await clients.closeAll();
  await Promise.all([...extraHubs].map((h) => h.dispose()));
  await hub?.dispose();
});

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Records msg events with the raw frame's join_ref (null = broadcast, else scoped to a join). */
function collectWithJoinRef(socket, channel) {
  const msgs = [];
  channel.on("msg", (payload) => msgs.push(payload));
  // socket.frames (filled by socket.onMessage) keeps the wire join_ref that channel callbacks hide.
  return {
    msgs,
    joinRefOf: (offset) => socket.frames.find((f) => f.topic === channel.topic && f.event === "msg" && f.payload.offset === offset)?.join_ref,
  };
}

test("6. recovery after a client disconnect: exactly the missed messages, in order, then live ones", async () => {
  const M = 25;
  const L = 5;
  const topic = uniqueRoom("recover");
  const a = await clients.connected(hub);
  const chA = a.channel(topic);
  await joinOk(chA);

  // B follows the room and remembers the last offset and the epoch.
  const b = await clients.connected(hub);
  const chB = b.channel(topic);
  const seenB = [];
  chB.on("msg", (m) => seenB.push(m));
  const joinB = await joinOk(chB);
  const epoch = joinB.epoch;
  for (let i = 1; i <= 3; i++) {
    await pushOk(chA, "msg", { body: `pre${i}` });
  }
  await waitUntil(() => seenB.length === 3, { what: "B to see the first 3 messages" });
  const lastOffset = seenB.at(-1).offset;
  assert.equal(lastOffset, 3);
  await clients.disconnect(b);
  assert.equal(b.isConnected(), false);

  // A pushes M messages while B is away.
  const missed = [];
  for (let i = 1; i <= M; i++) {
    missed.push(await pushOk(chA, "msg", { body: `missed${i}` }));
  }
  assert.deepEqual(missed.map((r) => r.offset), range(4, 3 + M));

  // B comes back on a new Socket and joins with {since, epoch}.
  const b2 = await clients.connected(hub);
  const chB2 = b2.channel(topic, { since: lastOffset, epoch });
  const { msgs, joinRefOf } = collectWithJoinRef(b2, chB2);
  const r = await joinOk(chB2);
  assert.equal(r.recovered, true);
  assert.equal(r.epoch, epoch);
  assert.equal(r.offset, 3 + M, "the reply carries the head");

  await waitUntil(() => msgs.length >= M, { what: `${M} replayed messages (got ${msgs.length})` });
  await sleep(100);
  assert.equal(msgs.length, M, "exactly the missed messages, no more");
  assert.deepEqual(msgs.map((m) => m.offset), range(4, 3 + M));
  assert.deepEqual(msgs.map((m) => m.body), range(1, M).map((i) => `missed${i}`));
  assert.deepEqual(msgs.map((m) => m.id), missed.map((x) => x.id));
  for (const m of msgs) {
    assert.equal(joinRefOf(m.offset), chB2.joinRef(), `replayed offset ${m.offset} is scoped to the join`);
  }

  // Then live ones, after the replay.
  for (let i = 1; i <= L; i++) {
    await pushOk(chA, "msg", { body: `live${i}` });
  }
  await waitUntil(() => msgs.length >= M + L, { what: `${M + L} messages (got ${msgs.length})` });
  await sleep(100);
  assert.deepEqual(msgs.map((m) => m.offset), range(4, 3 + M + L), "no duplicates, no gaps");
  assert.deepEqual(msgs.slice(M).map((m) => m.body), range(1, L).map((i) => `live${i}`));
  for (const m of msgs.slice(M)) {
    assert.equal(joinRefOf(m.offset), null, `live offset ${m.offset} is a broadcast`);
  }
});

test("6b. recovery racing live pushes: every message exactly once, in order", async () => {
  // A backlog from three writers (each under the per-socket push burst of 200), then a fourth
  // writer pushing every few ms while B joins with since:0, so live messages are committed while
  // B's replay is being sent: none may be lost or delivered twice.
  const PER_WRITER = 150;
  const WRITERS = 3;
  const L = 120;
  const backlog = PER_WRITER * WRITERS;
  const topic = uniqueRoom("race");
  const writers = [];
  let epoch;
  for (let w = 0; w < WRITERS + 1; w++) {
    const socket = await clients.connected(hub);
    const channel = socket.channel(topic);
    ({ epoch } = await joinOk(channel));
    writers.push(channel);
  }
  const stored = await Promise.all(writers.slice(0, WRITERS).flatMap((ch, w) =>
    range(1, PER_WRITER).map((i) => push(ch, "msg", { body: `w${w}-${i}` }))));
  assert.deepEqual(stored.filter((r) => r.status !== "ok"), [], "backlog stored");

  const liveWriter = writers[WRITERS];
  const live = [];
  const pacer = (async () => {
    for (let i = 1; i <= L; i++) {
      live.push(push(liveWriter, "msg", { body: `live${i}` }));
      await sleep(2);
    }
  })();
  await waitUntil(() => live.length >= 10, { what: "the live stream to start" });
  await live[9];

  const b = await clients.connected(hub);
  const chB = b.channel(topic, { since: 0, epoch });
  const got = [];
  chB.on("msg", (m) => got.push(m.offset));
  const r = await joinOk(chB);
  assert.equal(r.recovered, true);
  assert.ok(r.offset >= backlog + 10 && r.offset <= backlog + L, `head at join ${r.offset}`);
  await pacer;
  const liveReplies = await Promise.all(live);
  assert.deepEqual(liveReplies.filter((x) => x.status !== "ok"), [], "all live pushes stored");
  const total = backlog + L;
  await waitUntil(() => got.length >= total, { what: `${total} messages (got ${got.length})` });
  await sleep(100);
  assert.equal(got.length, total, "no duplicates");
  assert.deepEqual(got, range(1, total), "every offset once, in order");
});

test("7. hub restart: the phoenix client reconnects by itself and rejoins from its last offset", async () => {
  const hub7 = await start();
  extraHubs.add(hub7);
  const topic = uniqueRoom("restart");

  // Client 1 keeps its position in `state`; the channel params are a function of it, so every
  // (re)join sends the current since/epoch.
  const state = { lastOffset: null, epoch: null };
  const paramsSent = [];
  const c1 = await clients.connected(hub7);
  const ch1 = c1.channel(topic, () => {
    const params = state.lastOffset === null ? {} : { since: state.lastOffset, epoch: state.epoch };
    paramsSent.push(params);
    return params;
  });
  const received = [];
  ch1.on("msg", (m) => {
    received.push(m);
    state.lastOffset = m.offset;
  });
  const joins = [];
  const joinPush = ch1.join(5000);
  joinPush.receive("ok", (resp) => {
    joins.push(resp);
    state.epoch ??= resp.epoch;
    state.lastOffset ??= resp.offset;
  });
  joinPush.receive("error", (resp) => joins.push({ error: resp }));
  await waitUntil(() => joins.length === 1, { what: "the first join" });
  assert.deepEqual(paramsSent, [{}]);
  assert.equal(joins[0].offset, 0);
  const epoch = joins[0].epoch;

  for (let i = 1; i <= 3; i++) {
    await pushOk(ch1, "msg", { body: `before${i}` });
  }
  await waitUntil(() => received.length === 3, { what: "client 1 to see its 3 messages" });

  // Graceful stop: the socket is closed with 1001, which makes phoenix.js reconnect. (The exit
  // code is checked by test 7b: it is sometimes 1 because of a hub shutdown race.)
  const stopped = await hub7.stop();
  assert.equal(stopped.timedOut, undefined, "the hub exits within the stop timeout");
  await waitUntil(() => c1.closes.length >= 1, { what: "client 1 to see the close" });
  assert.equal(c1.closes[0].code, 1001);
  assert.equal(c1.closes[0].reason, "server shutting down");
  assert.equal(c1.isConnected(), false);

  await hub7.restart();
  assert.equal(hub7.socketUrl.includes(`:${hub7.port}/`), true);

  // Client 2 writes right after the restart, possibly before client 1 is back.
  const c2 = await clients.connected(hub7);
  const ch2 = c2.channel(topic);
  const j2 = await joinOk(ch2);
  assert.equal(j2.epoch, epoch, "same data dir, same epoch");
  for (let i = 1; i <= 4; i++) {
    await pushOk(ch2, "msg", { body: `after${i}` });
  }

  await waitUntil(() => joins.length >= 2, { timeoutMs: 15000, what: "client 1 to rejoin by itself" });
  assert.ok(c1.opens >= 2, "client 1 reconnected");
  assert.equal(joins.length, 2, `one rejoin: ${JSON.stringify(joins)}`);
  assert.deepEqual(paramsSent.at(-1), { since: 3, epoch }, "the rejoin sent the last seen offset");
  assert.equal(joins[1].recovered, true);
  assert.equal(joins[1].epoch, epoch);

  // Live messages after the rejoin.
  for (let i = 5; i <= 7; i++) {
    await pushOk(ch2, "msg", { body: `after${i}` });
  }
  await waitUntil(() => received.length >= 10, { timeoutMs: 5000, what: `client 1 to hold 10 messages (has ${received.length})` });
  await sleep(200);
  assert.deepEqual(received.map((m) => m.offset), range(1, 10), "every message exactly once, in order");
  assert.deepEqual(received.map((m) => m.body), [
    "before1", "before2", "before3",
    "after1", "after2", "after3", "after4", "after5", "after6", "after7",
  ]);
  assert.equal(ch1.state, "joined");
});

test("7b. graceful stop: SIGTERM closes every joined socket with 1001 and the hub exits 0", async () => {
  const CYCLES = 3;
  const SOCKETS = 5;
  const hubS = await start();
  extraHubs.add(hubS);
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    if (cycle > 1) {
      await hubS.restart();
    }
    const sockets = [];
    for (let i = 0; i < SOCKETS; i++) {
      // No automatic reconnect during this test: only the close code matters.
      const socket = await clients.connected(hubS, { reconnectAfterMs: () => 60_000 });
      const channel = socket.channel(uniqueRoom("stop"));
      await joinOk(channel);
      await pushOk(channel, "msg", { body: `cycle ${cycle}` });
      sockets.push(socket);
    }
    const stopped = await hubS.stop();
    await waitUntil(() => sockets.every((s) => s.closes.length > 0), { what: "every socket to see a close" });
    assert.deepEqual(sockets.map((s) => s.closes[0].code), Array(SOCKETS).fill(1001), `cycle ${cycle}: every socket gets 1001`);
    assert.equal(stopped.code, 0, `cycle ${cycle}: exit code after SIGTERM`);
    assert.doesNotMatch(hubS.stderr, /Unhandled exception/, `cycle ${cycle}: no unhandled exception`);
    await clients.closeAll();
  }
});
