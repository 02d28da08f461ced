"""Shared setup: the SDK may never sleep (virtual time moves jobs), and the
session-wide mock runs on a virtual clock."""

from __future__ import annotations

import os
import time
import types
from typing import Any

import pytest
import segmind.v2

from tryon_mock.pytest_plugin import RECORD_ENV


@pytest.fixture(autouse=True)
def no_real_waiting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails a test whose SDK call would sleep between polls: every test moves
    jobs with `advance()` before it waits, so the first poll is terminal.
    Except while a replayed test records its recording again
    (`TRYON_MOCK_RECORD`): a real service takes real time."""
    marker = request.node.get_closest_marker("tryon_mock")
    if os.environ.get(RECORD_ENV) and marker is not None and "replay" in marker.kwargs:
        return

    def refuse(seconds: float) -> None:
        raise AssertionError(f"the SDK tried to sleep {seconds} s: advance the mock clock first")

    # Only the SDK's view of `time` changes; the real module stays intact.
    fake_time = types.SimpleNamespace(monotonic=time.monotonic, sleep=refuse)
    monkeypatch.setattr(segmind.v2, "time", fake_time)


@pytest.fixture(scope="session")
def tryon_mock_session_config() -> Any:
    """The shared mock of `test_session_fixture.py` runs on a virtual clock."""
    return {"virtual_time": True}
