// Starts and stops a real Parley hub (`parley serve --json`) for the protocol tests.
//
//   const hub = await start({ env: { PARLEY_HUB__IDLETIMEOUT: "00:00:02" } });
//   hub.url, hub.socketUrl, hub.port, hub.dataDir, hub.stderr
//   await hub.stop();     // SIGTERM, wait for exit (SIGKILL after a bound)
//   await hub.restart();  // stop if running, start again on the same port and data dir
//   hub.kill();           // SIGKILL now
//   await hub.dispose();  // kill if running and remove the data dir (call from `after`)
//
// The dll comes from PARLEY_CLI_DLL, else the Release build path relative to the repository.
// Every wait is bounded. Inherited PARLEY_* variables are not passed to the hub (only opts.env),
// and XDG_CONFIG_HOME points into the temp dir, so a developer's hub.json cannot leak in.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export const CLI_DLL = process.env.PARLEY_CLI_DLL
  ? resolve(process.env.PARLEY_CLI_DLL)
  : resolve(here, "../../src/Parley.Cli/bin/Release/net10.0/parley.dll");

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const STDERR_KEEP_CHARS = 256 * 1024;

// Every hub process this module started and has not seen exit, killed if the test process exits.
const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/**
 * Starts a hub. opts: { env?: {NAME: value}, port?: number (0 = any), dataDir?: string, readyTimeoutMs?,
 * auth?: boolean (default false: the hub runs with --insecure-no-auth; true: sockets need a credential) }
 */
export async function start(opts = {}) {
  if (!existsSync(CLI_DLL)) {
    throw new Error(`parley.dll not found at ${CLI_DLL}; build it with 'dotnet build src/Parley.Cli -c Release' or set PARLEY_CLI_DLL`);
  }
  const ownsDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "parley-js-"));
  const hub = new Hub(dataDir, ownsDataDir, opts.env ?? {}, opts.readyTimeoutMs ?? READY_TIMEOUT_MS);
  hub.auth = opts.auth === true;
  try {
    await hub.launch(opts.port ?? 0);
  } catch (err) {
    await hub.dispose();
    throw err;
  }
  return hub;
}

class Hub {
  constructor(dataDir, ownsDataDir, env, readyTimeoutMs) {
    this.dataDir = dataDir;
    this.ownsDataDir = ownsDataDir;
    this.extraEnv = env;
    this.readyTimeoutMs = readyTimeoutMs;
    this.child = null;
    this.exited = null; // promise of {code, signal} for the current child
    this.port = 0;
    this.url = null;
    this.socketUrl = null;
    this.ready = null; // the parsed "listening" line
    this.log = ""; // stderr of every run, oldest trimmed
    this.runLog = ""; // stderr of the current run
    this.runs = 0;
  }

  /** Everything the hub processes wrote to stderr (all runs, most recent 256 KiB). */
  get stderr() {
    return this.log;
  }

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  appendLog(text) {
    this.runLog += text;
    this.log += text;
    if (this.log.length > STDERR_KEEP_CHARS) {
      this.log = this.log.slice(this.log.length - STDERR_KEEP_CHARS);
    }
  }

  environment() {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith("PARLEY_")) {
        env[k] = v;
      }
    }
    env.XDG_CONFIG_HOME = join(this.dataDir, "config");
    env.DOTNET_CLI_TELEMETRY_OPTOUT = "1";
    env.DOTNET_NOLOGO = "1";
    return { ...env, ...this.extraEnv };
  }

  async launch(port) {
    this.runs++;
    this.runLog = "";
    this.appendLog(`----- hub run ${this.runs} (port ${port}) -----\n`);
    const args = [CLI_DLL, "serve", "--listen", `127.0.0.1:${port}`, "--data", this.dataDir, "--json"];
    if (!this.auth) {
      args.push("--insecure-no-auth");
    }
    const child = spawn("dotnet", args, { env: this.environment(), stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolveExit) => {
      child.once("exit", (code, signal) => {
        live.delete(child);
        resolveExit({ code, signal });
      });
      child.once("error", (err) => {
        live.delete(child);
        this.appendLog(`spawn error: ${err.message}\n`);
        resolveExit({ code: null, signal: null, error: err });
      });
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => this.appendLog(chunk));
    child.stdout.setEncoding("utf8");

    let stdoutBuffer = "";
    const ready = new Promise((resolveReady, rejectReady) => {
      child.stdout.on("data", (chunk) => {
        stdoutBuffer += chunk;
        let newline;
        while ((newline = stdoutBuffer.indexOf("\n")) >= 0) {
          const line = stdoutBuffer.slice(0, newline).trim();
          stdoutBuffer = stdoutBuffer.slice(newline + 1);
          if (!line) {
            continue;
          }
          let parsed = null;
          try {
            parsed = JSON.parse(line);
          } catch {
            this.appendLog(`[stdout] ${line}\n`);
            continue;
          }
          if (parsed && parsed.event === "listening") {
            resolveReady(parsed);
          }
        }
      });
      this.exited.then(({ code, signal }) =>
        {
        const err = new Error(`hub exited before it was ready (code ${code}, signal ${signal})\n${this.runLog}`);
        err.portInUse = /already in use/i.test(this.runLog);
        rejectReady(err);
      });
    });
    let timer;
    const timeout = new Promise((_, rejectTimeout) => {
      timer = setTimeout(() => rejectTimeout(new Error(`hub not ready within ${this.readyTimeoutMs} ms\n${this.log}`)), this.readyTimeoutMs);
    });
    try {
      this.ready = await Promise.race([ready, timeout]);
    } catch (err) {
      this.kill();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.url = this.ready.url;
    this.socketUrl = this.ready.socket_url;
    this.port = Number(new URL(this.url).port);
    return this;
  }

  /** The phoenix Socket endpoint (phoenix.js appends /websocket itself). */
  get endpoint() {
    return this.socketUrl.replace(/\/websocket(\?.*)?$/, "");
  }

  /** SIGTERM and wait for the exit (SIGKILL after timeoutMs). Returns {code, signal}. */
  async stop(timeoutMs = STOP_TIMEOUT_MS) {
    if (!this.child) {
      return null;
    }
    const exited = this.exited;
    if (this.running) {
      this.child.kill("SIGTERM");
    }
    let timer;
    const result = await Promise.race([
      exited,
      new Promise((resolveTimeout) => {
        timer = setTimeout(() => resolveTimeout(null), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (result === null) {
      this.appendLog(`hub did not exit within ${timeoutMs} ms of SIGTERM; killing it\n`);
      this.kill();
      return { ...(await exited), timedOut: true };
    }
    return result;
  }

  /** SIGKILL now (no graceful shutdown). */
  kill() {
    if (this.running) {
      this.child.kill("SIGKILL");
    }
  }

  /**
   * Stops the hub if it runs and starts it again on the same port and data dir. A port that is
   * briefly still taken is retried until the ready timeout.
   */
  async restart() {
    await this.stop();
    const port = this.port;
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      try {
        return await this.launch(port);
      } catch (err) {
        if (!err.portInUse || Date.now() > deadline) {
          throw err;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Kills the hub (if running), waits for it to exit (bounded) and removes a data dir this module created. */
  async dispose() {
    if (this.child) {
      this.kill();
      let timer;
      await Promise.race([this.exited, new Promise((r) => { timer = setTimeout(r, STOP_TIMEOUT_MS); })]);
      clearTimeout(timer);
    }
    if (this.ownsDataDir) {
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

/**
 * For afterEach hooks: when the test failed, prints the stderr of the given hubs so the failure
 * comes with the hub's side of the story. (node:test sets t.passed on the test's context.)
 */
export function reportOnFailure(t, ...hubs) {
  if (t.passed !== false) {
    return;
  }
  for (const hub of hubs) {
    if (hub) {
      console.error(`\n----- hub stderr for failed test "${t.name}" (data dir ${hub.dataDir}) -----\n${hub.stderr}\n----- end of hub stderr -----`);
    }
  }
}
