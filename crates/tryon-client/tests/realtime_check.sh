#!/usr/bin/env bash
# The issues' real-time checks: `tryon batch` of ROWS rows (1-3 garments)
# against `tryon mock --config`, and what it cost. Two mocks:
#
#   MOCK=realistic (the default): the realistic profile and a token bucket
#     of 8.33 requests/s (burst 10, about 500/min) on every keyed request;
#   MOCK=default: the mock's defaults (jobs done in 0.1 s), no limit.
#
# Prints the wall time, the rows completed, the keyed requests, the keyed
# calls a job, the 429s (from the mock's journal, GET /__mock/journal) and,
# with a limit, jobs a minute over R/3.
#
# Real time, so not part of `cargo test`. From the workspace root, after
# `cargo build --release -p tryon-cli`:
#
#   TRYON=target/release/tryon crates/tryon-client/tests/realtime_check.sh 240
#   TRYON=target/release/tryon crates/tryon-client/tests/realtime_check.sh 240 --rate 500/min
#   TRYON=target/release/tryon MOCK=default CONCURRENCY=8 crates/tryon-client/tests/realtime_check.sh 100
#
# TRYON=path/to/tryon picks the binary (default target/debug/tryon);
# CONCURRENCY the batch's --concurrency (default 16).
set -euo pipefail
rows=${1:?usage: realtime_check.sh ROWS [batch flags...]}
shift
tryon=${TRYON:-target/debug/tryon}
mock=${MOCK:-realistic}
concurrency=${CONCURRENCY:-16}
dir=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

case "$mock" in
realistic)
  per_second=8.33
  cat >"$dir/mock.toml" <<'TOML'
keys = ["sk-realtime-check"]
[timing]
mode = "realistic"
[rate_limit]
per_second = 8.33
burst = 10
TOML
  ;;
default)
  per_second=
  cat >"$dir/mock.toml" <<'TOML'
keys = ["sk-realtime-check"]
TOML
  ;;
*)
  echo "MOCK must be realistic or default, not $mock" >&2
  exit 2
  ;;
esac

# shellcheck source=realtime_mock.sh
. "$(dirname "$0")/realtime_mock.sh"
start_mock

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
  --base-url "$url" --concurrency "$concurrency" --out-dir "$dir/out" "$@" >"$dir/batch.out" 2>&1 || true
end=$(date +%s.%N)
tail -n 3 "$dir/batch.out"

curl -sf "$control/journal" >"$dir/journal.json"
[ -n "${KEEP_JOURNAL:-}" ] && cp "$dir/journal.json" "$KEEP_JOURNAL"
python3 - "$dir/journal.json" "$start" "$end" "$rows" "$dir/out" "$per_second" "$concurrency" "$mock" <<'PY'
import json, os, sys
path, start, end, rows, out, per_second, concurrency, mock = sys.argv[1:]
j = json.load(open(path))
entries = j if isinstance(j, list) else j.get("entries", j.get("journal", []))
keyed = [e for e in entries if e["path"].startswith("/v2/")]
refused = sum(1 for e in keyed if e.get("status") == 429)
images = [f for f in os.listdir(out) if f.startswith("row")] if os.path.isdir(out) else []
wall = float(end) - float(start)
done = len(images)
line = (f"{mock} mock, {rows} rows at --concurrency {concurrency}: wall {wall:.1f} s, outputs {done}, "
        f"keyed requests {len(keyed)} ({len(keyed) / max(done, 1):.2f} a job), "
        f"429 {refused} ({100 * refused / max(len(keyed), 1):.1f} %)")
if per_second:
    r = float(per_second) * 60
    line += f", {done / wall * 60:.1f} jobs/min = {done / wall * 60 / (r / 3):.2f} x R/3 (R = {r:.0f}/min)"
print(line)
PY
