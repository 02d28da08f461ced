"""The pytest side of record and replay: `@pytest.mark.tryon_mock(replay=DIR)`
replays a committed recording; `TRYON_MOCK_RECORD=<upstream URL>` records it
again through a proxy (never set in CI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import tryon_mock as tm
from tryon_mock.pytest_plugin import RECORD_ENV

pytest_plugins = ["pytester"]

RECORDINGS = Path(__file__).parent / "recordings"

# The README's example, replayed in CI from the committed recording.
TRY_ON = (Path(__file__).parent / "test_replayed.py").read_text()


def files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`, by relative path."""
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def recorded_ids(directory: Path) -> list[str]:
    return [job["request_id"] for job in json.loads((directory / "jobs.json").read_text())]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A test project holding the README's test and a copy of its committed
    recording; the switch and the key unset, as in CI."""
    monkeypatch.delenv(RECORD_ENV, raising=False)
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    pytester.makepyfile(test_try_on=TRY_ON)
    shutil.copytree(RECORDINGS / "try_on", pytester.path / "recordings" / "try_on")
    return pytester.path / "recordings"


def test_the_record_switch_is_off_by_default(pytester: pytest.Pytester, project: Path) -> None:
    assert RECORD_ENV == "TRYON_MOCK_RECORD"
    before = files(project)
    pytester.makepyfile(
        test_mode="""
        import pytest

        @pytest.mark.tryon_mock(replay="recordings/try_on")
        def test_mode(tryon_mock):
            assert tryon_mock.mode == "replay"
            assert tryon_mock.now() == 0.0  # virtual time unless replay_speed= is given
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert files(project) == before  # replaying writes nothing


def test_the_switch_records_again_and_the_new_recording_replaces_the_old(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_ids = recorded_ids(project / "try_on")
    key = "sk-rerecord-51c0de77aa"
    # The upstream: a mock whose jobs finish at once in real time, so the
    # SDK's first poll is terminal and nothing sleeps here either.
    instant = {"timing": {"mode": "fixed", "queued": 0.0, "processing": 0.0}}
    with tm.MockServer(config=instant) as upstream:
        monkeypatch.setenv(RECORD_ENV, upstream.url)
        monkeypatch.setenv("SEGMIND_API_KEY", key)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)
        assert upstream.billed_submits(key) == 1  # it went to the upstream, with the key

    new = files(project)
    assert all(name.startswith("try_on/") for name in new)  # no leftover directory
    new_ids = recorded_ids(project / "try_on")
    assert len(new_ids) == 1 and new_ids != old_ids
    assert not any(key.encode() in data for data in new.values())

    # And CI replays the new recording.
    monkeypatch.delenv(RECORD_ENV)
    monkeypatch.delenv("SEGMIND_API_KEY")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_failing_test_keeps_the_old_recording(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = files(project)
    pytester.makepyfile(
        test_try_on=TRY_ON + "\n    raise AssertionError('the new answer is wrong')\n"
    )
    with tm.MockServer(config={"timing": {"mode": "fixed", "queued": 0.0, "processing": 0.0}}) as upstream:
        monkeypatch.setenv(RECORD_ENV, upstream.url)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        assert upstream.billed_submits() == 1  # it did record, through the proxy
    assert files(project) == before


def test_a_missing_recording_says_how_to_record_it(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RECORD_ENV, raising=False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tryon_mock(replay="recordings/none")
        def test_missing(tryon_mock):
            pass

        @pytest.mark.tryon_mock(replay="recordings/none", config={"virtual_time": True})
        def test_with_config(tryon_mock):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            f"*no recording in {pytester.path}/recordings/none: record it once with "
            f"{RECORD_ENV}=<upstream URL, e.g. https://api.segmind.com> pytest "
            "test_a_missing_recording_says_how_to_record_it.py::test_missing*",
            "*replay= serves a recording; it takes no config*",
        ]
    )



def test_drift_seen_while_recording_is_a_warning(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        """
        import urllib.error
        import urllib.request

        import pytest

        @pytest.mark.tryon_mock(replay="recordings/teapot")
        def test_teapot(tryon_mock):
            request = urllib.request.Request(tryon_mock.url + "/v2/requests/some-id/status",
                                             headers={"x-api-key": "sk-anything"})
            with pytest.raises(urllib.error.HTTPError) as teapot:
                urllib.request.urlopen(request, timeout=10)
            assert teapot.value.code == 418
        """
    )
    with tm.MockServer() as upstream:
        upstream.add_fault("status", status=418, times=None)  # a status the spec does not declare
        monkeypatch.setenv(RECORD_ENV, upstream.url)
        result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            f"*UserWarning: {upstream.url} departed from the API's spec 1 time(s) while recording "
            f"{pytester.path}/recordings/teapot; first: /status of GET /v2/requests/{{request_id}}/status: "
            "expected one of *, got 418"
        ]
    )
    assert (pytester.path / "recordings" / "teapot" / "recording.json").is_file()  # it passed: kept


def test_an_incomplete_or_empty_recording_never_replaces_a_good_one(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the plugin moved in whatever the proxy wrote (no exchanges,
    # `.tmp` files), and every replay after answered 409.
    before = files(project)
    marker = 'replay="recordings/try_on"'
    assert marker in TRY_ON
    # Room for the submit's exchange only: the rest are lost.
    pytester.makepyfile(test_try_on=TRY_ON.replace(marker, marker + ", record_limit=1500"))
    instant = {"timing": {"mode": "fixed", "queued": 0.0, "processing": 0.0}}
    with tm.MockServer(config=instant) as upstream:
        monkeypatch.setenv(RECORD_ENV, upstream.url)
        monkeypatch.setenv("SEGMIND_API_KEY", "sk-rerecord-incomplete")
        result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*the new recording of {project}/try_on is not used (the old recording is kept): "
            "it is incomplete: * exchange(s) were proxied but not recorded "
            "(first: the recording reached --record-limit (1500 bytes))*"
        ]
    )
    assert files(project) == before

    pytester.makepyfile(
        test_try_on=f"""
        import pytest

        @pytest.mark.tryon_mock({marker})
        def test_sends_nothing(tryon_mock):
            assert tryon_mock.mode == "proxy"
        """
    )
    with tm.MockServer() as upstream:
        monkeypatch.setenv(RECORD_ENV, upstream.url)
        result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*is not used (the old recording is kept): it holds no exchanges*"])
    assert files(project) == before
    # No half-written directory beside it either.
    assert sorted(p.name for p in project.iterdir()) == ["try_on"]
