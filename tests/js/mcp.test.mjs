// parley mcp through the official TypeScript MCP client: a real child process over stdio against a
// real hub with authentication on. Users are registered through the HTTP API; other users act through
// the parley CLI (whisper, send), as a person would.

import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { promisify } from "node:util";
import Ajv from "ajv";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CLI_DLL, reportOnFailure, start } from "./hub.mjs";
import { sleep, waitUntil } from "./client.mjs";

const run = promisify(execFile);
const CONTRACT = ["whoami", "peers", "set_status", "send", "dm", "inbox", "ack", "history", "state", "tasks", "channels"];

let hub;
let ownerKey;
let home;
const keys = {};
const agents = [];
let counter = 0;
const unique = (label) => `${label}-${process.pid}-${++counter}`;

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

async function user(name) {
  const { code } = await api("POST", "/api/invites", { role: "member" });
  const publicKey = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x;
  await api("POST", "/api/register", { name, public_key: publicKey, invite: code });
  keys[name] = (await api("POST", "/api/keys", { name: `${name}-key`, scope: "write", user: name })).key;
  return name;
}

/** Runs the parley CLI as `who` (an API key in PARLEY_TOKEN); resolves with stdout. */
async function parley(who, ...args) {
  const env = { ...process.env, XDG_CONFIG_HOME: joinPath(home, `cli-${who}`), PARLEY_SERVER: hub.url, PARLEY_TOKEN: keys[who] };
  const { stdout } = await run("dotnet", [CLI_DLL, ...args], { env, timeout: 30_000 });
  return stdout;
}

/** Starts `parley mcp` as `who` and connects the official client; notifications/claude/channel are collected. */
async function agent(who, ...extra) {
  const transport = new StdioClientTransport({
    command: "dotnet",
    args: [CLI_DLL, "mcp", "--server", hub.url, ...extra],
    env: { ...process.env, PARLEY_TOKEN: keys[who], XDG_CONFIG_HOME: joinPath(home, `agent-${who}`) },
    stderr: "pipe",
  });
  const a = { who, transport, pushes: [], stderr: "" };
  transport.stderr.on("data", (chunk) => (a.stderr += chunk));
  a.client = new Client({ name: "parley-test", version: "1.0.0" });
  a.client.fallbackNotificationHandler = async (n) => {
    if (n.method === "notifications/claude/channel") {
      a.pushes.push({ ...n.params, at: Date.now() });
    }
  };
  await a.client.connect(transport, { timeout: 30_000 });
  a.call = async (name, args = {}) => {
    const result = await a.client.callTool({ name, arguments: args }, undefined, { timeout: 30_000 });
    const text = result.content[0].text;
    return result.isError ? { error: text } : JSON.parse(text);
  };
  a.ok = async (name, args) => {
    const r = await a.call(name, args);
    assert.equal(r.error, undefined, `${name} ${JSON.stringify(args)} failed: ${r.error}`);
    return r;
  };
  agents.push(a);
  return a;
}

before(async () => {
  home = mkdtempSync(joinPath(tmpdir(), "parley-mcp-"));
  hub = await start({ auth: true });
  ownerKey = readFileSync(joinPath(hub.dataDir, "initial-owner-key"), "utf8").trim();
});

afterEach(async (t) => {
  for (const a of agents.splice(0)) {
    if (t.passed === false) {
      console.error(`----- parley mcp (${a.who}) stderr -----\n${a.stderr}`);
    }
    await a.client.close().catch(() => {});
  }
  reportOnFailure(t, hub);
});

after(async () => {
  await hub?.dispose();
  rmSync(home, { recursive: true, force: true });
});

test("mcp 1. initialize declares claude/channel; tools/list is the contract: at most 12 tools, each with a valid schema", async () => {
  const ada = await agent(await user(unique("ada")));
  assert.deepEqual(ada.client.getServerCapabilities().experimental, { "claude/channel": {} });
  assert.equal(ada.client.getServerVersion().name, "parley");
  const { tools } = await ada.client.listTools();
  assert.ok(tools.length <= 12, `${tools.length} tools`);
  assert.deepEqual(tools.map((t) => t.name).sort(), [...CONTRACT].sort());
  const ajv = new Ajv({ strict: false });
  for (const tool of tools) {
    assert.ok(tool.description.length > 20 && !tool.description.includes("\n"), `${tool.name}: one-line description`);
    assert.equal(tool.inputSchema.type, "object");
    assert.equal(tool.inputSchema.additionalProperties, false, `${tool.name} rejects unknown arguments`);
    assert.doesNotThrow(() => ajv.compile(tool.inputSchema), `${tool.name}: schema compiles`);
    for (const name of tool.inputSchema.required ?? []) {
      assert.ok(tool.inputSchema.properties[name], `${tool.name}: required ${name} is a property`);
    }
  }
  const me = await ada.ok("whoami");
  assert.equal(me.name, ada.who);
  assert.equal(me.client, "agent");
});
