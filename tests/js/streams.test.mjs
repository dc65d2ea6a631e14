// Message events with the official client: phoenix.js joins events:messages and gets the same
// snapshot and message_event payloads as a plain `ws` client on /ws/messages, metadata only.
// The hub runs with authentication on, administered with its initial owner key.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, RawClient, joinOk, pushOk, waitUntil } from "./client.mjs";

let hub;
let ownerKey;
const clients = new Clients();

async function api(method, path, body) {
  const response = await fetch(new URL(path, hub.url), {
    method,
    headers: { Authorization: `Bearer ${ownerKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

async function register(name) {
  const { json: invite } = await api("POST", "/api/invites", { role: "member" });
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const response = await fetch(new URL("/api/register", hub.url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, public_key: raw.toString("base64url"), invite: invite.code }),
  });
  assert.equal(response.status, 201);
}

let carolKey;

before(async () => {
  hub = await start({ auth: true });
  ownerKey = readFileSync(join(hub.dataDir, "initial-owner-key"), "utf8").trim();
  await register("bob");
  await register("dave");
  await register("carol");
  // Direct messages come from users (a key without a user has no inbox to answer to): a key acting as carol.
  carolKey = (await api("POST", "/api/keys", { name: "carol-key", scope: "write", user: "carol" })).json.key;
});

afterEach(async (t) => {
  await clients.closeAll();
  reportOnFailure(t, hub);
});

after(async () => {
  await clients.closeAll();
  await hub?.dispose();
});

test("16a. events:messages and /ws/messages carry the same metadata-only events", async () => {
  const socket = await clients.connected(hub, { authToken: ownerKey });
  const events = socket.channel("events:messages", { instance: "bob" });
  const phoenixFrames = [];
  events.on("snapshot", (payload) => phoenixFrames.push(payload));
  events.on("message_event", (payload) => phoenixFrames.push(payload));
  await joinOk(events);

  const wsUrl = new URL(`/ws/messages?instance=bob&token=${encodeURIComponent(ownerKey)}`, hub.url);
  wsUrl.protocol = "ws:";
  const plain = await RawClient.open(wsUrl.toString());
  clients.raws.add(plain);
  assert.deepEqual(await plain.next(), { type: "snapshot", recent_events: [] });

  const sender = await clients.connected(hub, { authToken: carolKey });
  const lobby = sender.channel("hub:lobby");
  await joinOk(lobby);
  await pushOk(lobby, "dm", { to: "dave", body: "not about bob" });
  const sent = await pushOk(lobby, "dm", { to: "bob", body: "a secret body", correlation_id: "js-1" });

  const plainSent = await plain.next();
  const plainQueued = await plain.next();
  assert.equal(plainSent.type, "message_event");
  assert.deepEqual([plainSent.event, plainQueued.event], ["sent", "queued"]);
  assert.equal(plainSent.message_id, sent.id);
  assert.equal(plainSent.correlation_id, "js-1");
  assert.equal(plainQueued.to, "bob");

  await waitUntil(() => phoenixFrames.length >= 3, { what: "the phoenix snapshot and two events" });
  assert.equal(phoenixFrames[0].type, "snapshot");
  assert.deepEqual(phoenixFrames.slice(1), [plainSent, plainQueued]);

  plain.send({ type: "ping" });
  assert.deepEqual(await plain.next(), { type: "pong" });
  for (const frame of [...phoenixFrames, ...plain.received]) {
    assert.ok(!JSON.stringify(frame).includes("a secret body"));
    assert.ok(!("body" in frame));
  }
});
