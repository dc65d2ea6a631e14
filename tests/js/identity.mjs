// The hub's HTTP API as a test's owner uses it: calls with the owner's key, and users registered through
// an invite with a fresh Ed25519 key, each given a write-scoped API key that acts as them.
//
//   const { api, user } = ownerApi(hub, ownerKey);
//   const bobKey = await user("bob");

import { generateKeyPairSync } from "node:crypto";

export function ownerApi(hub, ownerKey) {
  async function api(method, path, body, bearer = ownerKey) {
    const response = await fetch(new URL(path, hub.url), {
      method,
      headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) {
      throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    }
    return json;
  }

  /** Registers a user (an invite from the owner, a fresh Ed25519 key) and returns an API key that acts as them. */
  async function user(name) {
    const { code } = await api("POST", "/api/invites", { role: "member" });
    const publicKey = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x;
    await api("POST", "/api/register", { name, public_key: publicKey, invite: code });
    return (await api("POST", "/api/keys", { name: `${name}-key`, scope: "write", user: name })).key;
  }

  return { api, user };
}
