"""pytest plugin (entry point ``pytest11``, loaded when the wheel is
installed): the ``tryon_mock`` and ``tryon_mock_session`` fixtures.

``tryon_mock`` starts one mock per test and stops it after, also when the
test failed. Configure it with a marker::

    @pytest.mark.tryon_mock(config={"virtual_time": True})
    def test_x(tryon_mock):
        tryon_mock.advance(3)

or with an indirect parameter (one test per config)::

    @pytest.mark.parametrize("tryon_mock", [{"virtual_time": True}], indirect=True)
    def test_y(tryon_mock): ...

The marker's other keyword arguments go to ``MockServer`` (``start_timeout``,
``env``, ``binary``). Without either, the mock runs with
``tryon_mock_default_config`` (a fixture returning ``None``: the mock's own
defaults; override it in a ``conftest.py``).

``tryon_mock_session`` is one mock for the whole session, configured by the
session fixture ``tryon_mock_session_config`` (override it in a
``conftest.py``); tests that share it should ``reset()`` it.

Record and replay: ``@pytest.mark.tryon_mock(replay="recordings/x")`` gives
the test a replay of the recording in that directory (relative to the test
file), on a virtual clock (``virtual_time=False`` or ``replay_speed=X`` to
play it in real time). With ``TRYON_MOCK_RECORD`` set to an upstream URL
(``https://api.segmind.com``), the same test gets a validating proxy in front
of that upstream that records into a new directory instead; when the test
passes, that recording replaces the old one (a failed test keeps the old
one). A recording that lost an exchange (a full disk, ``record_limit=``),
that holds no exchange, or whose proxy did not stop cleanly never replaces
a recording: the test fails with the reason, and the old one is kept (a
live recording costs money; a broken one would fail every replay after). The test tells the two apart by ``tryon_mock.mode`` (``"replay"`` or
``"proxy"``), e.g. to ``advance()`` a replay's clock.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tryon_mock._server import MockServer

__all__ = [
    "RECORD_ENV",
    "tryon_mock",
    "tryon_mock_default_config",
    "tryon_mock_session",
    "tryon_mock_session_config",
]

MARKER = "tryon_mock"

#: The environment variable that re-records: set to an upstream URL, every
#: test marked ``tryon_mock(replay=DIR)`` records ``DIR`` again through a
#: proxy in front of it. Unset (as in CI), those tests replay ``DIR``.
RECORD_ENV = "TRYON_MOCK_RECORD"

_CALL_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Registers the ``tryon_mock`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(config=None, replay=None, **options): configure the tryon_mock fixture "
        "(config: a dict written as TOML, or a path; replay: a recording directory, "
        f"relative to the test file, recorded again when ${RECORD_ENV} names an upstream; "
        "options go to MockServer)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Notes whether the test itself failed, for a recording fixture to
    decide whether its new recording replaces the old one."""
    report = yield
    if call.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def tryon_mock_default_config() -> Any:
    """The config of ``tryon_mock`` when a test gives none (``None``: the
    mock's defaults). Override it to change every test's default."""
    return None


@pytest.fixture
def tryon_mock(request: pytest.FixtureRequest, tryon_mock_default_config: Any) -> Iterator[MockServer]:
    """A running ``MockServer`` for one test; stopped after it."""
    options: dict[str, Any] = {}
    config = tryon_mock_default_config
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER}: use keywords, e.g. {MARKER}(config={{...}})"
            )
        options = dict(marker.kwargs)
        config = options.pop("config", config)
    if hasattr(request, "param"):
        if marker is not None and "config" in marker.kwargs:
            raise pytest.UsageError(
                f"{request.node.nodeid}: config given both by @pytest.mark.{MARKER} and by an indirect parameter"
            )
        config = request.param
    replay = options.pop("replay", None)
    if replay is None:
        with MockServer(config=config, **options) as mock:
            yield mock
        return
    if config is not None:
        raise pytest.UsageError(f"@pytest.mark.{MARKER}: replay= serves a recording; it takes no config")
    directory = Path(request.node.path).parent / replay
    upstream = os.environ.get(RECORD_ENV)
    if upstream:
        yield from _record(request, directory, upstream, options)
        return
    if not (directory / "recording.json").is_file():
        pytest.fail(
            f"no recording in {directory}: record it once with "
            f"{RECORD_ENV}=<upstream URL, e.g. https://api.segmind.com> pytest {request.node.nodeid}",
            pytrace=False,
        )
    options.setdefault("virtual_time", "replay_speed" not in options)
    with MockServer(replay=directory, **options) as mock:
        yield mock


def _record(request: pytest.FixtureRequest, directory: Path, upstream: str, options: dict[str, Any]) -> Iterator[MockServer]:
    """A proxy in front of ``upstream`` recording into a new directory next
    to ``directory``, which replaces it once the test has passed."""
    for replay_only in ("replay_speed", "virtual_time"):
        options.pop(replay_only, None)
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{directory.name}.recording-", dir=directory.parent))
    try:
        with MockServer(proxy=upstream, record=fresh, **options) as proxy:
            yield proxy
            drift = proxy.drift()
        broken = _unusable(fresh, proxy)
        if drift["count"]:
            first = drift["records"][0] if drift["records"] else None
            warnings.warn(
                f"{upstream} departed from the API's spec {drift['count']} time(s) while recording "
                f"{directory}" + (f"; first: {first['pointer']} of {first['method']} {first['path']}: "
                                  f"expected {first['expected']}, got {first['actual']}" if first else ""),
                stacklevel=1,
            )
        if not request.node.stash.get(_CALL_FAILED, True):
            if broken is not None:
                kept = "the old recording is kept" if directory.exists() else "nothing was written"
                pytest.fail(f"the new recording of {directory} is not used ({kept}): {broken}", pytrace=False)
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(fresh, directory)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _unusable(fresh: Path, proxy: MockServer) -> str | None:
    """Why the recording in ``fresh`` must not replace a good one, or
    ``None``: marked incomplete, holding no exchange, or its proxy did not
    exit cleanly (exit 6 is an incomplete recording)."""
    manifest = fresh / "recording.json"
    try:
        lost = json.loads(manifest.read_text(encoding="utf-8")).get("incomplete")
    except (OSError, ValueError, AttributeError) as e:
        return f"{manifest} cannot be read: {e}"
    if lost:
        return (
            f"it is incomplete: {lost.get('lost')} exchange(s) were proxied but not recorded "
            f"(first: {lost.get('reason')})"
        )
    if not any((fresh / "exchanges").glob("*.json")):
        return "it holds no exchanges (the test sent nothing through the proxy)"
    if proxy.returncode not in (0, None):
        return f"the recording proxy exited with status {proxy.returncode}: {proxy.logs().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="session")
def tryon_mock_session_config() -> Any:
    """The config of ``tryon_mock_session`` (``None``: the mock's defaults)."""
    return None


@pytest.fixture(scope="session")
def tryon_mock_session(tryon_mock_session_config: Any) -> Iterator[MockServer]:
    """One ``MockServer`` shared by the session; stopped at its end."""
    with MockServer(config=tryon_mock_session_config) as mock:
        yield mock
