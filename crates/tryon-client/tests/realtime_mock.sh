# Sourced by realtime_check.sh and realtime_shared.sh: start `tryon mock
# --config "$dir/mock.toml"` in the background and wait for its readiness
# line. Sets mock_pid, url and control (no trailing slash). Needs $tryon
# and $dir.
start_mock() {
  "$tryon" mock --config "$dir/mock.toml" --json >"$dir/ready.json" 2>"$dir/mock.log" &
  mock_pid=$!
  for _ in $(seq 100); do
    [ -s "$dir/ready.json" ] && break
    sleep 0.1
  done
  if [ ! -s "$dir/ready.json" ]; then
    echo "tryon mock did not start: $(cat "$dir/mock.log")" >&2
    exit 1
  fi
  url=$(jq -r .url "$dir/ready.json")
  control=$(jq -r .control "$dir/ready.json")
  control=${control%/}
}
