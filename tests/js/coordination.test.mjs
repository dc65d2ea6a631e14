// Coordination with the official client: shared state (snapshot in the join reply, then state_change),
// task boards (one winner of racing claims), and direct messages (dm on hub:lobby, delivered on
// user:<name>). The hub runs with authentication on; users are registered through the HTTP API and
// given API keys by the initial owner key.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join as joinPath } from "node:path";
import { reportOnFailure, start } from "./hub.mjs";
import { ownerApi } from "./identity.mjs";
import { Clients, join, joinOk, push, pushOk, waitUntil } from "./client.mjs";

let hub;
let ownerKey;
let api;
let user;
const clients = new Clients();
let counter = 0;
const unique = (label) => `${label}-${process.pid}-${++counter}`;

const eventsOf = (socket, topic, event) => socket.frames.filter((f) => f.topic === topic && f.event === event).map((f) => f.payload);

before(async () => {
  hub = await start({ auth: true });
  ownerKey = readFileSync(joinPath(hub.dataDir, "initial-owner-key"), "utf8").trim();
  ({ api, user } = ownerApi(hub, ownerKey));
});

afterEach(async (t) => {
  await clients.closeAll();
  reportOnFailure(t, hub);
});

after(async () => {
  await clients.closeAll();
  await hub?.dispose();
});

test("9a. state: the join reply is the snapshot, then every write is a state_change with the next revision", async () => {
  const topic = `state:${unique("js")}`;
  const writer = await clients.connected(hub, { authToken: ownerKey });
  const writing = writer.channel(topic);
  assert.deepEqual(await joinOk(writing), { revision: 0, entries: [] });
  const first = await pushOk(writing, "set", { key: "build/main", value: { green: true }, expected_version: 0 });
  assert.deepEqual({ version: first.version, revision: first.revision }, { version: 1, revision: 1 });

  const watcher = await clients.connected(hub, { authToken: ownerKey });
  const watching = watcher.channel(topic);
  const snapshot = await joinOk(watching);
  assert.equal(snapshot.revision, 1);
  assert.deepEqual(snapshot.entries.map((e) => [e.key, e.value, e.version]), [["build/main", { green: true }, 1]]);

  const stale = await push(writing, "set", { key: "build/main", value: { green: false }, expected_version: 0 });
  assert.equal(stale.status, "error");
  assert.equal(stale.response.reason, "version_conflict");
  await pushOk(writing, "set", { key: "build/main", value: { green: false }, expected_version: 1 });
  const changes = await waitUntil(() => eventsOf(watcher, topic, "state_change").length === 1 && eventsOf(watcher, topic, "state_change"), { what: "a state_change" });
  assert.equal(changes[0].revision, 2);
  assert.equal(changes[0].op, "set");
  assert.deepEqual(changes[0].value, { green: false });
});

test("9b. tasks: of two racing claims exactly one wins", async () => {
  const board = `tasks:${unique("js")}`;
  const [ann, ben] = [await user(unique("ann")), await user(unique("ben"))];
  const a = (await clients.connected(hub, { authToken: ann })).channel(board);
  const b = (await clients.connected(hub, { authToken: ben })).channel(board);
  await joinOk(a);
  await joinOk(b);
  const task = await pushOk(a, "create", { title: "ship it", tags: ["release"] });
  const claims = await Promise.all([push(a, "claim", { id: task.id }), push(b, "claim", { id: task.id })]);
  assert.deepEqual(claims.map((c) => c.status).sort(), ["error", "ok"]);
  assert.equal(claims.find((c) => c.status === "error").response.reason, "already_claimed");
});

test("9c. a direct message is stored before its ack and delivered on the recipient's user: topic", async () => {
  const [aliceName, bobName] = [unique("alice"), unique("bob")];
  const [alice, bob] = [await user(aliceName), await user(bobName)];
  const sender = await clients.connected(hub, { authToken: alice });
  const lobby = sender.channel("hub:lobby");
  await joinOk(lobby);
  const sent = await pushOk(lobby, "dm", { to: bobName, body: "are you there?", priority: "now" });
  assert.deepEqual(sent.recipients, [bobName]);

  const receiver = await clients.connected(hub, { authToken: bob });
  const inbox = receiver.channel(`user:${bobName}`);
  await joinOk(inbox);
  const [dm] = await waitUntil(() => eventsOf(receiver, `user:${bobName}`, "dm").length > 0 && eventsOf(receiver, `user:${bobName}`, "dm"), { what: "a dm" });
  assert.equal(dm.id, sent.id);
  assert.equal(dm.from, aliceName);
  assert.equal(dm.body, "are you there?");
  assert.equal((await pushOk(inbox, "ack", { ids: [dm.id] })).read, 1);
  const status = await pushOk(lobby, "message_status", { id: sent.id });
  assert.equal(status.recipients[0].state, "read");

  const other = sender.channel(`user:${bobName}`);
  const refused = await join(other);
  assert.equal(refused.status, "error");
  assert.equal(refused.response.reason, "forbidden");
});

test("9d. fleet: the join reply is the snapshot, then every lifecycle change is an event; logs: tails the output", async () => {
  const name = unique("js").toLowerCase();
  const socket = await clients.connected(hub, { authToken: ownerKey });
  const fleet = socket.channel("fleet:instances");
  const snapshot = await joinOk(fleet);
  assert.ok(Array.isArray(snapshot.instances));
  await api("POST", "/api/instances", { name, command: "/bin/sh", args: ["-c", "while true; do echo hello-from-js; sleep 0.1; done"] });
  const created = await waitUntil(() => eventsOf(socket, "fleet:instances", "instance_created").find((e) => e.name === name), { what: "instance_created" });
  assert.equal(created.status, "stopped");
  await api("POST", `/api/instances/${name}/start`);
  await waitUntil(() => eventsOf(socket, "fleet:instances", "status_changed").find((e) => e.name === name && e.status === "running"), { what: "running" });

  const logs = socket.channel(`logs:${name}`, { backlog: 1 });
  await joinOk(logs);
  const lines = await waitUntil(() => eventsOf(socket, `logs:${name}`, "lines").flatMap((e) => e.lines).find((l) => l.includes("hello-from-js")), { what: "a log line" });
  assert.match(lines, /^\d{4}-\d\d-\d\dT.*Z stdout hello-from-js$/);
  await api("POST", `/api/instances/${name}/stop`);
  await waitUntil(() => eventsOf(socket, "fleet:instances", "status_changed").find((e) => e.name === name && e.status === "stopped"), { what: "stopped" });
});

