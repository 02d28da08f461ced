#!/usr/bin/env bash
# The issue's real-time check of throughput at the account's rate limit:
# `tryon batch` of ROWS rows (1-3 garments, --concurrency 16) against
# `tryon mock --config` with the realistic profile and a token bucket of
# 8.33 requests/s (burst 10, about 500/min) on every keyed request. Prints
# the wall time, the rows completed, and the keyed requests and 429s from
# the mock's journal (GET /__mock/journal).
#
# Real time (about a minute for 120 rows), so not part of `cargo test`.
# From the workspace root, after `cargo build -p tryon-cli`:
#
#   crates/tryon-client/tests/realtime_check.sh 120              # learned
#   crates/tryon-client/tests/realtime_check.sh 120 --rate 500/min
#
# TRYON=path/to/tryon picks another binary (default target/debug/tryon).
set -euo pipefail
rows=${1:?usage: realtime_check.sh ROWS [batch flags...]}
shift
tryon=${TRYON:-target/debug/tryon}
dir=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

cat >"$dir/mock.toml" <<'TOML'
keys = ["sk-realtime-check"]
[timing]
mode = "realistic"
[rate_limit]
per_second = 8.33
burst = 10
TOML

"$tryon" mock --config "$dir/mock.toml" --json >"$dir/ready.json" 2>"$dir/mock.log" &
mock_pid=$!
for _ in $(seq 100); do
  [ -s "$dir/ready.json" ] && break
  sleep 0.1
done
url=$(jq -r .url "$dir/ready.json")
control=$(jq -r .control "$dir/ready.json")
control=${control%/}

{
  echo "id,person,garments,seed"
  for i in $(seq "$rows"); do
    n=$((1 + i % 3))
    garments=$(seq -s '|' -f "https://example.com/g%g.jpg" "$n")
    echo "row$i,https://example.com/person.jpg,$garments,$i"
  done
} >"$dir/manifest.csv"

start=$(date +%s.%N)
SEGMIND_API_KEY=sk-realtime-check "$tryon" batch "$dir/manifest.csv" \
  --base-url "$url" --concurrency 16 --out-dir "$dir/out" "$@" >"$dir/batch.out" 2>&1 || true
end=$(date +%s.%N)
tail -n 3 "$dir/batch.out"

curl -sf "$control/journal" >"$dir/journal.json"
python3 - "$dir/journal.json" "$start" "$end" "$rows" "$dir/out" <<'PY'
import json, os, sys
path, start, end, rows, out = sys.argv[1:]
j = json.load(open(path))
entries = j if isinstance(j, list) else j.get("entries", j.get("journal", []))
keyed = [e for e in entries if e["path"].startswith("/v2/")]
refused = sum(1 for e in keyed if e.get("status") == 429)
images = [f for f in os.listdir(out) if f.startswith("row")]
print(f"rows {rows}: wall {float(end) - float(start):.1f} s, outputs {len(images)}, "
      f"keyed requests {len(keyed)}, 429 {refused} ({100 * refused / max(len(keyed), 1):.1f} %)")
PY
