#!/usr/bin/env bash
# Smoke check for the benchmark peers (bench/peers/signalr, bench/peers/socketio), so they cannot rot.
# Starts each peer on 127.0.0.1 port 0, checks its listening line, does a Join/Publish round trip
# with a raw WebSocket client (bench/peers/smoke.mjs), checks that a non-loopback address is refused,
# prints "N passed, N failed" and exits non-zero on any failure. Bounded to ~30 s.
# Needs dotnet, node and npm; runs `npm ci` in bench/peers/socketio and builds the SignalR peer
# (Release) if it is not built yet.
# Usage: bench/peers/smoke.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

case "${1:-}" in
  -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "bench/peers/smoke.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
esac

signalr_dll="$root/bench/peers/signalr/bin/Release/net10.0/Parley.Bench.SignalRPeer.dll"
socketio_dir="$root/bench/peers/socketio"
deadline=$((SECONDS + 30))
passed=0
failed=0
pids=()
tmp="$(mktemp -d)"

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "PASS $1"; passed=$((passed + 1)); }
ko() { echo "FAIL $1"; failed=$((failed + 1)); }
left() { local s=$((deadline - SECONDS)); [ "$s" -lt 1 ] && s=1; echo "$s"; }

# Setup (not counted against the 30 s: a cold npm ci or build can take longer).
(cd "$socketio_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
if [ ! -f "$signalr_dll" ]; then
  echo "building the SignalR peer (Release)"
  dotnet build "$root/bench/peers/signalr/Parley.Bench.SignalRPeer.csproj" -c Release --nologo -v quiet -clp:ErrorsOnly >/dev/null
fi
deadline=$((SECONDS + 30))

# start_peer NAME CMD... : starts a peer in the background, waits for its listening line, sets $url.
start_peer() {
  local name="$1"; shift
  local out="$tmp/$name.out"
  url=""
  "$@" >"$out" 2>"$tmp/$name.err" &
  pids+=("$!")
  local pid=$! wait_until=$((SECONDS + 15))
  while [ "$SECONDS" -lt "$wait_until" ] && [ "$SECONDS" -lt "$deadline" ]; do
    if grep -q '"event":"listening"' "$out" 2>/dev/null; then
      url="$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("event") == "listening": print(d["url"]); break' "$out")"
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && [ "${url##*:}" != 0 ]; then
    ok "$name: listening line with a bound loopback URL ($url)"
    return 0
  fi
  ko "$name: no listening line with a bound loopback URL (stdout: $(head -c 300 "$out"); stderr: $(head -c 300 "$tmp/$name.err"))"
  return 1
}

# round_trip NAME URL : runs the raw WebSocket client and counts its PASS/FAIL lines.
round_trip() {
  local name="$1" url="$2" log="$tmp/$1.smoke" rc=0
  timeout "$(left)" node "$root/bench/peers/smoke.mjs" "$name" "$url" >"$log" 2>&1 || rc=$?
  cat "$log"
  passed=$((passed + $(grep -c '^PASS ' "$log" || true)))
  failed=$((failed + $(grep -c '^FAIL ' "$log" || true)))
  if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$log"; then
    ko "$name: smoke client exited with $rc (timed out or crashed)"
  fi
}

# refuses NAME CMD... : the peer must exit non-zero at once when asked to listen on a non-loopback address.
refuses() {
  local name="$1"; shift
  local rc=0
  timeout 10 "$@" >"$tmp/$name.refuse" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
    ok "$name: refuses a non-loopback address"
  else
    ko "$name: did not refuse a non-loopback address (exit $rc: $(head -c 300 "$tmp/$name.refuse"))"
  fi
}

if start_peer signalr dotnet "$signalr_dll" --urls http://127.0.0.1:0; then
  round_trip signalr "$url"
fi
refuses signalr dotnet "$signalr_dll" --urls http://0.0.0.0:0

if start_peer socketio node "$socketio_dir/server.mjs" --port 0; then
  round_trip socketio "$url"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
