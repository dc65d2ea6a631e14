// Credentials with the official client: phoenix.js `authToken` (the bearer subprotocol) and
// `params: {token}` both authenticate; a socket without one never opens; hub:lobby answers
// token.refresh. The hub runs with authentication on, administered with its initial owner key.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { reportOnFailure, start } from "./hub.mjs";
import { Clients, joinOk, pushOk, sleep, uniqueRoom } from "./client.mjs";

let hub;
let ownerKey;
const clients = new Clients();

before(async () => {
  hub = await start({ auth: true });
  ownerKey = readFileSync(join(hub.dataDir, "initial-owner-key"), "utf8").trim();
});

afterEach(async (t) => {
  await clients.closeAll();
  reportOnFailure(t, hub);
});

after(async () => {
  await clients.closeAll();
  await hub?.dispose();
});

test("7a. authToken (bearer subprotocol) authenticates the official client", async () => {
  const socket = await clients.connected(hub, { authToken: ownerKey });
  const lobby = socket.channel("hub:lobby");
  const joined = await joinOk(lobby);
  assert.equal(joined.name, "key:initial-owner");
  assert.equal(joined.role, "owner");

  const room = socket.channel(uniqueRoom("auth"));
  await joinOk(room);
  const ack = await pushOk(room, "msg", { body: "with a credential" });
  assert.equal(ack.offset, 1);
});

test("7b. params.token works too, and an in-band token.refresh with a bad token is refused", async () => {
  const socket = await clients.connected(hub, { params: { token: ownerKey } });
  const lobby = socket.channel("hub:lobby");
  await joinOk(lobby);
  const reply = await new Promise((resolve) => {
    lobby.push("token.refresh", { access_token: "not-a-token" })
      .receive("ok", (r) => resolve({ status: "ok", r }))
      .receive("error", (r) => resolve({ status: "error", r }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  });
  assert.equal(reply.status, "error");
  assert.equal(reply.r.reason, "invalid_token");
});

test("7c. without a credential the socket never opens (401 before the upgrade)", async () => {
  const socket = clients.socket(hub, { reconnectAfterMs: () => 60_000 });
  await sleep(500);
  assert.equal(socket.opens, 0);
  assert.ok(socket.closes.length >= 1, "the failed upgrade should surface as a close");
  assert.equal(socket.isConnected(), false);
});
