// A Node owner of term:<id> for the terminal tests (docs/protocol.md §17): record_output as binary pushes of an
// 8-byte big-endian offset and the bytes, one in flight. It keeps every byte it printed and, after each join reply
// (so also after a hub restart), sends the part the hub does not hold yet. Viewers' input events are kept.
import { push } from "./client.mjs";

export const CHUNK_BYTES = 60 * 1024;

/**
 * @param clients a Clients (client.mjs) that closes the socket after the test
 * @param hub the hub to own the session on
 * @param id the session id
 * @param options allowInput, name, socketOpts (extra phoenix Socket options, e.g. { params: { token } })
 */
export async function terminalOwner(clients, hub, id, { allowInput = false, name = id, socketOpts = {} } = {}) {
  const socket = await clients.connected(hub, { reconnectAfterMs: () => 200, rejoinAfterMs: () => 200, ...socketOpts });
  const channel = socket.channel(`term:${id}`, () => ({
    role: "owner", name, command: ["node", "owner.mjs", id], cols: 80, rows: 24, pid: process.pid, started_at: Date.now(), allow_input: allowInput,
  }));
  const o = { channel, socket, parts: [], length: 0, size: 0, inputs: [], joins: 0, chain: Promise.resolve() };
  /** Everything printed so far, as one Buffer. */
  o.bytes = () => {
    const all = Buffer.concat(o.parts);
    o.parts = [all];
    return all;
  };
  o.flush = () => {
    o.chain = o.chain.then(async () => {
      while (o.size < o.length) {
        const all = o.bytes();
        const part = all.subarray(o.size, Math.min(all.length, o.size + CHUNK_BYTES));
        const frame = new ArrayBuffer(8 + part.length);
        new DataView(frame).setBigUint64(0, BigInt(o.size));
        new Uint8Array(frame, 8).set(part);
        const r = await push(channel, "record_output", frame, 10_000);
        if (r.status !== "ok") return; // disconnected: the next join reply says where to continue
        o.size = r.response.size;
      }
    });
    return o.chain;
  };
  o.print = (data) => {
    const buf = Buffer.from(data);
    o.parts.push(buf);
    o.length += buf.length;
    return o.flush();
  };
  channel.on("input", ({ data_b64 }) => {
    o.inputs.push(Buffer.from(data_b64, "base64").toString());
  });
  await new Promise((resolve, reject) => {
    channel.join(10_000)
      .receive("ok", (reply) => {
        o.joins++;
        o.size = reply.output_size;
        o.flush();
        resolve();
      })
      .receive("error", (r) => reject(new Error(`owner join failed: ${JSON.stringify(r)}`)))
      .receive("timeout", () => reject(new Error("owner join timed out")));
  });
  return o;
}
