// /terminals: a card per session on term:lobby (docs/protocol.md §17): the join reply's snapshot, then
// session_started / session_updated / session_ended. No terminal is rendered here; each card links to its page.
import { ago, bytes, el, openSocket, readToken } from "/web/common.mjs";

const sessions = new Map(); // id → session
const cards = document.getElementById("cards");
const stateLine = document.getElementById("state");
let joinedOnce = false;

function setState(state, text) {
  stateLine.dataset.state = state;
  stateLine.textContent = text;
}

function field(dl, name, value) {
  dl.append(el("dt", "", name), el("dd", name.replace(/\W+/g, "-"), value));
}

function card(s) {
  const a = el("a", s.live === false || s.ended_at ? "card ended" : "card");
  a.href = `/terminals/${encodeURIComponent(s.id)}`;
  a.dataset.id = s.id;
  a.append(el("h2", "name", s.name || s.id));
  a.append(el("div", "command", (s.command ?? []).join(" ")));
  const dl = el("dl");
  field(dl, "owner", s.owner ?? "");
  field(dl, "size", `${s.cols}×${s.rows}`);
  field(dl, "viewers", String(s.viewers ?? 0));
  field(dl, "bytes/s", bytes(s.bytes_per_second ?? 0) + "/s");
  field(dl, "output", bytes(s.output_size ?? 0));
  field(dl, "last activity", ago(s.last_activity));
  const status = s.ended_at
    ? `ended${s.exit_code === null || s.exit_code === undefined ? "" : `, exit ${s.exit_code}`}`
    : s.owner_connected === false ? "owner away" : "live";
  field(dl, "status", status);
  a.append(dl);
  a.append(el("div", "last-line", s.last_line ?? ""));
  return a;
}

function render() {
  const list = [...sessions.values()].sort((x, y) => (y.started_at ?? 0) - (x.started_at ?? 0));
  cards.replaceChildren(...list.map(card));
  const live = list.filter((s) => !s.ended_at).length;
  document.getElementById("count").textContent = `${live} live`;
  document.getElementById("empty").hidden = list.length > 0;
}

const socket = openSocket(readToken(), { onRefused: (message) => setState("refused", message) });
socket.onClose(() => {
  if (joinedOnce) setState("disconnected", "Disconnected from the hub; reconnecting…");
});
const lobby = socket.channel("term:lobby", {});
function replaceAll(list) {
  sessions.clear();
  for (const s of list ?? []) sessions.set(s.id, s);
  render();
}
const upsert = (payload) => {
  const s = payload.session ?? payload;
  sessions.set(s.id, s);
  render();
};
lobby.on("session_started", upsert);
lobby.on("session_updated", upsert);
lobby.on("session_ended", upsert);
// The hub sends the whole list again when this page fell behind on deltas (protocol.md §17).
lobby.on("snapshot", (reply) => replaceAll(reply.sessions));
lobby.join()
  .receive("ok", (reply) => {
    replaceAll(reply.sessions);
    setState("live", joinedOnce ? "Reconnected; the list is current." : "Live: the list follows the hub.");
    joinedOnce = true;
  })
  .receive("error", (reply) => setState("error", `The hub refused term:lobby: ${reply.reason ?? JSON.stringify(reply)}${reply.detail ? ` (${reply.detail})` : ""}`));

// "last activity" is relative: refresh it.
setInterval(render, 5000);
window.parleyLobby = { sessions, socket, channel: lobby };
