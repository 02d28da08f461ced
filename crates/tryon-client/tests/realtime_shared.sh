#!/usr/bin/env bash
# The issue's real-time check of a shared budget: three `tryon batch`
# processes of ROWS rows each (1-3 garments, --concurrency 16), started
# together against one `tryon mock --config` with the realistic profile and
# a token bucket of 8.33 requests/s (burst 10, about 500/min) on every keyed
# request, sharing their budget through MODE:
#
#   redis  --shared-budget redis://127.0.0.1:PORT/0 (a redis-server this
#          script starts on a free loopback port, and stops)
#   file   --shared-budget file:DIR/budget
#   none   each process on its own (as before the shared budget)
#
# Prints each batch's last line, then the wall time, the rows completed,
# the keyed requests and 429s from the mock's request log, the submits
# billed, and together/(R/3): rows a minute over all three, over a third of
# the bucket's rate (a submit, a poll and the result a row).
#
# Real time (about 1.5 minutes for 3 x 80 rows), so not part of `cargo
# test`. From the workspace root, after `cargo build -p tryon-cli`:
#
#   crates/tryon-client/tests/realtime_shared.sh redis 80
#   crates/tryon-client/tests/realtime_shared.sh file 80 --rate 500/min
#
# TRYON=path/to/tryon picks another binary (default target/debug/tryon).
# RESTART_AT=S (redis only) kills the redis-server S seconds in and starts
# a fresh one on the same port 5 s later.
set -euo pipefail
mode=${1:?usage: realtime_shared.sh redis|file|none [ROWS] [batch flags...]}
rows=${2:-80}
shift $(($# >= 2 ? 2 : 1))
tryon=${TRYON:-target/debug/tryon}
dir=$(mktemp -d)
mock_pid= redis_pid=
cleanup() {
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/mock.toml" <<'TOML'
keys = ["sk-realtime-check"]
[timing]
mode = "realistic"
[rate_limit]
per_second = 8.33
burst = 10
TOML

# shellcheck source=realtime_mock.sh
. "$(dirname "$0")/realtime_mock.sh"
start_mock

start_redis() {
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$dir" >"$dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "redis-server did not start" >&2
  exit 1
}

share=()
case "$mode" in
  redis)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    start_redis
    share=(--shared-budget "redis://127.0.0.1:$port/0")
    ;;
  file) share=(--shared-budget "file:$dir/budget") ;;
  none) ;;
  *) echo "MODE is redis, file or none" >&2; exit 2 ;;
esac

for p in 1 2 3; do
  {
    echo "id,person,garments,seed"
    for i in $(seq "$rows"); do
      n=$((1 + i % 3))
      garments=$(seq -s '|' -f "https://example.com/g%g.jpg" "$n")
      echo "row$i,https://example.com/person.jpg,$garments,$((p * 1000 + i))"
    done
  } >"$dir/manifest$p.csv"
done

start=$(date +%s.%N)
pids=()
for p in 1 2 3; do
  SEGMIND_API_KEY=sk-realtime-check "$tryon" batch "$dir/manifest$p.csv" \
    --base-url "$url" --concurrency 16 --out-dir "$dir/out$p" "${share[@]}" "$@" \
    >"$dir/batch$p.out" 2>&1 &
  pids+=($!)
done
if [ "$mode" = redis ] && [ -n "${RESTART_AT:-}" ]; then
  sleep "$RESTART_AT"
  kill -9 "$redis_pid"
  wait "$redis_pid" 2>/dev/null || true
  sleep 5
  start_redis
  echo "redis-server restarted at ${RESTART_AT}s (+5s)"
fi
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
end=$(date +%s.%N)
for p in 1 2 3; do
  echo "batch $p: $(grep -v "^report: " "$dir/batch$p.out" | tail -n 1)"
  echo "  said 'shared budget lost': $(grep -c "shared budget lost" "$dir/batch$p.out" || true) time(s)"
done

curl -sf "$control/request_log" >"$dir/log.json"
curl -sf "$control/billing" >"$dir/billing.json"
python3 - "$dir" "$start" "$end" "$rows" "$status" <<'PY'
import json, os, sys
d, start, end, rows, status = sys.argv[1:]
rows = int(rows)
entries = json.load(open(os.path.join(d, "log.json")))
entries = entries if isinstance(entries, list) else entries.get("entries", [])
keyed = [e for e in entries if e["path"].startswith("/v2/")]
refused = sum(1 for e in keyed if e.get("status") == 429)
billed = json.load(open(os.path.join(d, "billing.json")))["billed_submits"]
outputs = [len([f for f in os.listdir(os.path.join(d, f"out{p}")) if f.startswith("row")])
           for p in (1, 2, 3)]
wall = float(end) - float(start)
together = sum(outputs) / (wall / 60) / (500 / 3)
print(f"3 x {rows} rows: wall {wall:.1f} s, outputs {outputs} ({sum(outputs)}), billed {billed}, "
      f"keyed requests {len(keyed)}, 429 {refused} ({100 * refused / max(len(keyed), 1):.1f} %), "
      f"together {together:.2f} x R/3, exit codes worst {status}")
# When the 429s came, in 10 s steps from the first keyed request (the
# request log's `at` is seconds on the mock's clock).
def secs(e):
    at = e.get("at")
    return at.get("secs", 0) + at.get("nanos", 0) / 1e9 if isinstance(at, dict) else float(at)
if keyed:
    t0 = min(secs(e) for e in keyed)
    steps = {}
    for e in keyed:
        if e.get("status") == 429:
            k = int((secs(e) - t0) // 10) * 10
            steps[k] = steps.get(k, 0) + 1
    later = [e for e in keyed if secs(e) - t0 >= 60]
    late = sum(1 for e in later if e.get("status") == 429)
    print(f"429s by 10 s from the first request: {dict(sorted(steps.items()))}; "
          f"after the first minute {late} of {len(later)} ({100 * late / max(len(later), 1):.1f} %)")
PY
