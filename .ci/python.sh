#!/usr/bin/env bash
# The Python package from scratch: a throwaway virtualenv with pinned tools
# from PyPI, the tryon-mock wheel built by maturin (debug profile: the tests
# do not need an optimised mock, and it builds much faster on 2 cores),
# installed like a user would, then its pytest suite driving Segmind's
# official SDK. Exits non-zero on any failure, and when pytest runs no test.
set -euo pipefail
cd "$(dirname "$0")/.."

MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
SEGMIND_VERSION=1.3.0
MYPY_VERSION=2.4.1

work="$(mktemp -d "${TMPDIR:-/tmp}/tryon-python.XXXXXX")"
trap 'rm -rf "$work"' EXIT
venv="$work/venv"

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "maturin==$MATURIN_VERSION" "pytest==$PYTEST_VERSION" "segmind==$SEGMIND_VERSION" \
  "mypy==$MYPY_VERSION"

# The package promises full type hints (it ships py.typed): hold it to that.
"$venv/bin/mypy" --strict --cache-dir "$work/mypy-cache" python/src/tryon_mock

# python/pyproject.toml points maturin at crates/tryon-mock and builds
# with --locked. The log is shown whole only when the build fails.
if ! (cd python && "$venv/bin/maturin" build --out "$work/wheels") >"$work/maturin.log" 2>&1; then
  cat "$work/maturin.log" >&2
  echo "python.sh: maturin build failed" >&2
  exit 1
fi
grep -E 'Finished|Built wheel' "$work/maturin.log"
wheel=("$work"/wheels/tryon_mock-*.whl)
[ -f "${wheel[0]}" ] || { echo "python.sh: maturin built no wheel" >&2; exit 1; }
"$venv/bin/pip" install --quiet --disable-pip-version-check "${wheel[0]}"

# The tests run against the installed wheel (its binary, its plugin entry
# point), not the source tree: run from outside it, with the env override off.
cp -r python/tests "$work/tests"
cd "$work"
status=0
env -u TRYON_MOCK_BIN "$venv/bin/python" -m pytest tests -p no:cacheprovider -q || status=$?
if [ "$status" -eq 5 ]; then
  echo "python.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
