// Reference peer for the benchmarks (bench/compare, docs/benchmarks.md): a plain Socket.IO server
// with rooms and acks, written the way a typical Socket.IO user would write it (default options:
// polling and websocket transports, default parser).
//
//   node server.mjs [--port 5200]      (listens on 127.0.0.1 only; --port 0 picks a free port)
//
// Once listening it prints one line: {"event":"listening","url":"http://127.0.0.1:PORT"}
// Clients: raw Engine.IO v4 over WebSocket at ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket
import { createServer } from "node:http";
import { Server } from "socket.io";

const DEFAULT_PORT = 5200;

function parseArgs(argv) {
  let port = DEFAULT_PORT;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log("usage: node server.mjs [--port PORT]   (127.0.0.1 only; 0 picks a free port)");
      process.exit(0);
    }
    let value;
    if (arg === "--port" && i + 1 < argv.length) value = argv[++i];
    else if (arg.startsWith("--port=")) value = arg.slice("--port=".length);
    else {
      console.error(`socketio peer: unknown argument '${arg}' (see --help)`);
      process.exit(2);
    }
    port = Number(value);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      console.error(`socketio peer: --port must be 0..65535, not '${value}'`);
      process.exit(2);
    }
  }
  return { port };
}

const { port } = parseArgs(process.argv.slice(2));
const httpServer = createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  socket.on("join", (channel, ack) => {
    socket.join(channel);
    if (typeof ack === "function") ack(true);
  });
  socket.on("publish", (channel, body, ack) => {
    io.to(channel).emit("msg", body);
    if (typeof ack === "function") ack(true);
  });
});

httpServer.on("error", (err) => {
  console.error(`socketio peer: ${err.message}`);
  process.exit(1);
});

httpServer.listen(port, "127.0.0.1", () => {
  const { address, port: bound } = httpServer.address();
  process.stdout.write(JSON.stringify({ event: "listening", url: `http://${address}:${bound}` }) + "\n");
});

function shutdown() {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
