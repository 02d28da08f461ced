#!/usr/bin/env bash
# Schemathesis (PyPI, pinned) against the standalone mock: every operation of
# the API spec (crates/tryon-api/openapi/segmind-tryon.yaml), every check, a bounded number of examples.
# Exits non-zero on any failure. Loopback only; the mock is stopped on exit.
#
#   .ci/schemathesis.sh            # builds target/debug/tryon-mock first
#   ST_MAX_EXAMPLES=300 ST_SEED=7 .ci/schemathesis.sh   # more cases, another seed
#   TRYON_MOCK_BIN=path/to/tryon-mock .ci/schemathesis.sh  # another build of the mock
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
max_examples="${ST_MAX_EXAMPLES:-100}"
seed="${ST_SEED:-1}"
key="st-ci-key"

venv="${TMPDIR:-/tmp}/tryon-ci-schemathesis-venv"
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1)" != "$SCHEMATHESIS_VERSION" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [ -n "${TRYON_MOCK_BIN:-}" ]; then
  mock="$TRYON_MOCK_BIN"
else
  # Always (re)build: a stale binary would test old code. A no-op when fresh.
  cargo build -p tryon-mock --features bin --bin tryon-mock --locked
  mock=target/debug/tryon-mock
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/tryon-schemathesis.XXXXXX")"
mock_pid=
cleanup() {
  if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A configured key list: only this key is accepted, anything else is 401.
printf 'keys = ["%s"]\n' "$key" > "$work/mock.toml"
mkfifo "$work/url"
"$mock" --port 0 --config "$work/mock.toml" > "$work/url" 2> "$work/mock.log" &
mock_pid=$!
# The first stdout line is the base URL, or a JSON object with a "url".
read -r first < "$work/url"
case "$first" in
  "{"*) url="$(printf '%s' "$first" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')" ;;
  *) url="$first" ;;
esac
echo "mock at $url (pid $mock_pid), schemathesis $SCHEMATHESIS_VERSION, $max_examples examples per operation, seed $seed"

# Run from the scratch folder: schemathesis keeps a cache (.schemathesis/)
# in its working directory, which must not land in the repository.
spec="$PWD/crates/tryon-api/openapi/segmind-tryon.yaml"
# One documented exception, for the history's date window (see the file).
config="$PWD/.ci/schemathesis.toml"
status=0
(cd "$work" && "$venv/bin/schemathesis" --config-file "$config" run "$spec" \
  --url "$url" \
  --checks all \
  --header "x-api-key: $key" \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --generation-database none \
  --request-timeout 10 \
  --no-color) \
  || status=$?

if grep -q panicked "$work/mock.log"; then
  echo "the mock panicked:" >&2
  grep -A5 panicked "$work/mock.log" >&2
  status=1
fi
exit "$status"
