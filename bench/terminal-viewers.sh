#!/usr/bin/env bash
# Measures a terminal session's output throughput through a hub to N viewers, on loopback:
# a hub (--insecure-no-auth, a temporary data dir), `parley run` writing SIZE bytes through its PTY,
# and N `parley attach` viewers (output to /dev/null). Prints MB/s from the burst's start (stamped by
# the command itself) until the last viewer has seen the session end, and the hub's get_stats.
# Usage: bench/terminal-viewers.sh [VIEWERS (default 10)] [MEGABYTES (default 100)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
viewers="${1:-10}"
megabytes="${2:-100}"
dll="$root/src/Parley.Cli/bin/Release/net10.0/parley.dll"
[ -f "$dll" ] || { echo "build first: dotnet build Parley.slnx -c Release" >&2; exit 2; }
work="$(mktemp -d)"
port=$(( 20000 + RANDOM % 20000 ))
cleanup() { [ -n "${hub:-}" ] && kill "$hub" 2>/dev/null; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export XDG_STATE_HOME="$work/state" XDG_CONFIG_HOME="$work/config" PARLEY_SERVER= PARLEY_TOKEN=
parley() { dotnet "$dll" "$@"; }

dotnet "$dll" serve --listen "127.0.0.1:$port" --data "$work/hub" --insecure-no-auth --log-level warning >"$work/hub.log" 2>&1 &
hub=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port"

echo "==> $viewers viewers, $megabytes MB through a PTY and the hub at $url"
parley run --server "$url" --record "$work/rec" --quiet -- sh -c \
  "sleep 8; date +%s%N > '$work/start'; head -c $((megabytes * 1000000)) /dev/zero | tr '\\0' x" >/dev/null 2>"$work/run.err" &
run=$!
id=""
for _ in $(seq 100); do
  id="$(curl -fs "$url/api/terminals" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4 || true)"
  [ -n "$id" ] && break
  sleep 0.1
done
[ -n "$id" ] || { echo "the session never appeared on the hub" >&2; cat "$work/run.err" >&2; exit 1; }
pids=()
for i in $(seq "$viewers"); do
  parley attach "$id" --server "$url" --backfill 0 >/dev/null 2>"$work/attach-$i.err" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
end=$(date +%s%N)
wait "$run" || true
start=$(cat "$work/start")
ms=$(( (end - start) / 1000000 ))
echo "last viewer saw the end after ${ms} ms: $(( megabytes * 1000 / (ms > 0 ? ms : 1) )) MB/s per viewer, $(( megabytes * viewers * 1000 / (ms > 0 ? ms : 1) )) MB/s delivered in all"
curl -fs "$url/api/terminals?all=true" | head -c 600; echo
curl -fs "$url/metrics" | grep -E '^parley_terminal_viewer_drops_total|^parley_channel_resyncs_total' || true
