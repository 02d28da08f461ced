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
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tryon_mock._server import MockServer

__all__ = [
    "tryon_mock",
    "tryon_mock_default_config",
    "tryon_mock_session",
    "tryon_mock_session_config",
]

MARKER = "tryon_mock"


def pytest_configure(config: pytest.Config) -> None:
    """Registers the ``tryon_mock`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(config=None, **options): configure the tryon_mock fixture "
        "(config: a dict written as TOML, or a path; options go to MockServer)",
    )


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
    with MockServer(config=config, **options) as mock:
        yield mock


@pytest.fixture(scope="session")
def tryon_mock_session_config() -> Any:
    """The config of ``tryon_mock_session`` (``None``: the mock's defaults)."""
    return None


@pytest.fixture(scope="session")
def tryon_mock_session(tryon_mock_session_config: Any) -> Iterator[MockServer]:
    """One ``MockServer`` shared by the session; stopped at its end."""
    with MockServer(config=tryon_mock_session_config) as mock:
        yield mock
