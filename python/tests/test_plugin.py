"""The pytest plugin: fixtures, the marker and indirect parameters."""

from __future__ import annotations

import pytest

import tryon_mock as tm

pytest_plugins = ["pytester"]


def test_default_fixture_runs_the_mocks_defaults(tryon_mock: tm.MockServer) -> None:
    assert tryon_mock.running
    assert tryon_mock.url.startswith("http://127.0.0.1:")
    assert tryon_mock.faults() == []


@pytest.mark.tryon_mock(config={"virtual_time": True, "faults": [{"route": "any", "kind": "not_json"}]}, start_timeout=20)
def test_marker_config(tryon_mock: tm.MockServer) -> None:
    assert tryon_mock.now() == 0.0
    assert tryon_mock.faults() == [{"route": "any", "kind": "not_json", "times": None}]


@pytest.mark.parametrize("tryon_mock", [{"virtual_time": True, "keys": ["sk-1"]}, None], indirect=True)
def test_indirect_parameter(tryon_mock: tm.MockServer) -> None:
    assert tryon_mock.running


SESSION_URLS: set[str] = set()


@pytest.mark.parametrize("round", [1, 2])
def test_session_fixture_is_one_server_for_every_test(
    round: int, tryon_mock_session: tm.MockServer, tryon_mock: tm.MockServer
) -> None:
    SESSION_URLS.add(tryon_mock_session.url)
    assert len(SESSION_URLS) == 1  # the same server in both rounds
    assert tryon_mock_session.url != tryon_mock.url
    # conftest.py configures the session mock with a virtual clock.
    before = tryon_mock_session.now()
    assert tryon_mock_session.advance(5) == before + 5


def test_plugin_is_loaded_from_its_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tryon_mock(config={"virtual_time": True})
        def test_inner(tryon_mock):
            assert tryon_mock.advance(2) == 2.0

        @pytest.mark.tryon_mock("positional")
        def test_positional(tryon_mock):
            pass

        @pytest.mark.tryon_mock(config={"virtual_time": True})
        @pytest.mark.parametrize("tryon_mock", [None], indirect=True)
        def test_both(tryon_mock):
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*use keywords*", "*config given both*"])


def test_a_failing_test_still_stops_its_mock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def test_fails(tryon_mock):
            with open("pid", "w") as f:
                f.write(str(tryon_mock._proc.pid))
            raise AssertionError("boom")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    pid = int((pytester.path / "pid").read_text())
    try:
        import os

        os.kill(pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"mock {pid} still running after its test failed")
