"""Record once, replay without a key or a network: a plain mock stands in
for the real service as the upstream, `MockServer.proxy(..., record=DIR)`
records Segmind's official SDK running through it, and
`MockServer.replay(DIR, virtual_time=True)` serves that recording to the
same SDK flow."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import segmind

import tryon_mock as tm

PERSON = "https://example.com/person.jpg"
SHIRT = "https://example.com/shirt.jpg"
# Distinctive, so that a grep for it cannot match anything else.
KEY = "sk-record-9f3c2a71e4"
VIRTUAL = {"virtual_time": True, "timing": {"mode": "fixed", "queued": 1.0, "processing": 2.0}}


@dataclass
class Run:
    """What one SDK flow saw."""

    request_id: str
    result: dict[str, object]
    output: bytes


def try_on(url: str, clock: tm.MockServer, key: str = KEY, seed: int = 42) -> Run:
    """The flow of `test_segmind_sdk.py::test_job_completes_and_its_output_is_served`:
    submit, move `clock` past the job's stages, poll to COMPLETED, fetch the
    output. The SDK never sleeps (conftest.py): its first poll is terminal."""
    client = segmind.SegmindClient(api_key=key, base_url=url + "/v1")
    job = client.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT], seed=seed)
    assert job.status()["status"] == "QUEUED"
    clock.advance(3)
    result = job.wait(timeout=5)
    assert result["status"] == "COMPLETED"
    assert str(result["output"]).startswith(url + "/")  # served by the proxy or the replay
    with urllib.request.urlopen(result["output"], timeout=10) as image:
        return Run(job.request_id, result, image.read())


def record(directory: Path) -> Run:
    """Runs the flow through a recording proxy in front of a mock; checks
    that the mock gave the proxy no drift."""
    with tm.MockServer(config=VIRTUAL) as upstream, tm.MockServer.proxy(upstream.url, record=directory) as proxy:
        assert proxy.mode == "proxy"
        run = try_on(proxy.url, clock=upstream)
        assert proxy.drift() == {"count": 0, "dropped": 0, "records": []}
        assert upstream.billed_submits(KEY) == 1
    assert not proxy.running and not upstream.running
    return run


def test_a_replay_serves_the_recorded_job_with_the_same_bytes(tmp_path: Path) -> None:
    recorded = record(tmp_path / "rec")
    assert recorded.output.startswith(b"\x89PNG\r\n\x1a\n")

    # No upstream any more: the replay alone, on a clock that only advance() moves.
    with tm.MockServer.replay(tmp_path / "rec", virtual_time=True) as replay:
        assert replay.mode == "replay"
        assert replay.now() == 0.0
        replayed = try_on(replay.url, clock=replay, key="sk-any-other-key")
        assert replay.now() == 3.0

    assert replayed.request_id == recorded.request_id
    assert replayed.output == recorded.output
    assert replayed.result["metrics"] == recorded.result["metrics"]


def test_a_submit_nothing_recorded_matches_gets_the_409_near_miss(tmp_path: Path) -> None:
    recorded = record(tmp_path / "rec")
    with tm.MockServer.replay(tmp_path / "rec", virtual_time=True) as replay:
        client = segmind.SegmindClient(api_key=KEY, base_url=replay.url + "/v1")
        with pytest.raises(segmind.SegmindError) as miss:
            client.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT], seed=43)
    assert miss.value.status == 409
    assert miss.value.detail == (
        "replay: no recorded request matches POST /v2/p-image-try-on; nearest is exchanges/000001.json "
        f"(seq 1, request_id {recorded.request_id}): seed: recorded 42, got 43"
    )


def test_the_api_key_is_in_no_file_of_the_recording(tmp_path: Path) -> None:
    record(tmp_path / "rec")
    files = sorted(p for p in (tmp_path / "rec").rglob("*") if p.is_file())
    names = [p.relative_to(tmp_path / "rec").as_posix() for p in files]
    # submit, status (QUEUED), status (COMPLETED), result, output; the output image once.
    exchanges = [f"exchanges/00000{n}.json" for n in range(1, 6)]
    assert names[:5] == exchanges and names[6:] == ["jobs.json", "recording.json"]
    assert names[5].startswith("images/") and names[5].endswith(".png")
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    submit = json.loads((tmp_path / "rec" / "exchanges" / "000001.json").read_text())
    assert submit["request"]["api_key"] is True  # only whether one was sent


def test_a_proxy_reports_where_its_upstream_departs_from_the_spec() -> None:
    with tm.MockServer(config=VIRTUAL) as upstream, tm.MockServer.proxy(upstream.url) as proxy:
        job = segmind.SegmindClient(api_key=KEY, base_url=proxy.url + "/v1").submit_async(
            "p-image-try-on", person_image=PERSON, garment_images=[SHIRT]
        )
        upstream.add_fault("status", kind="not_json", times=1)
        request = urllib.request.Request(job.status_url, headers={"x-api-key": KEY})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.headers["x-tryon-drift"] == "1"
        drift = proxy.drift()
    assert drift["count"] == 1 and drift["dropped"] == 0
    [found] = drift["records"]
    assert (found["operation"], found["method"], found["status"]) == ("get_status", "GET", 200)
    assert found["path"] == "/v2/requests/{request_id}/status"
    # The mock's `not_json` fault answers an HTML page where JSON is declared.
    assert (found["pointer"], found["expected"], found["actual"]) == (
        "/headers/content-type",
        "one of application/json",
        "text/html",
    )
    assert KEY not in json.dumps(drift)


def test_a_replay_has_no_drift_route_and_a_proxy_no_clock(tmp_path: Path) -> None:
    record(tmp_path / "rec")
    with tm.MockServer.replay(tmp_path / "rec", virtual_time=True) as replay:
        with pytest.raises(tm.MockControlError) as no_drift:
            replay.drift()
    assert no_drift.value.status == 404
    with tm.MockServer() as upstream, tm.MockServer.proxy(upstream.url) as proxy:
        with pytest.raises(tm.MockControlError) as no_clock:
            proxy.advance(1)
    assert no_clock.value.status == 404


def test_a_real_time_replay_at_a_speed(tmp_path: Path) -> None:
    """`speed` reaches the binary: an out-of-range one is its error."""
    record(tmp_path / "rec")
    with tm.MockServer.replay(tmp_path / "rec", speed=1000) as replay:
        assert replay.running
    with pytest.raises(tm.MockStartError) as bad:
        tm.MockServer.replay(tmp_path / "rec", speed=5000).start()
    assert "--replay-speed" in bad.value.stderr


def _unknown_format(rec: Path) -> tm.MockServer:
    manifest = json.loads((rec / "recording.json").read_text())
    (rec / "recording.json").write_text(json.dumps({**manifest, "format": "tryon-recording/9"}))
    return tm.MockServer.replay(rec)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (
            _unknown_format,
            'recording.json: format "tryon-recording/9" is not supported (this build reads "tryon-recording/1")',
        ),
        (
            lambda rec: tm.MockServer.proxy("http://127.0.0.1:9", record=rec),
            ": already holds a recording; choose an empty directory",
        ),
        (
            lambda rec: tm.MockServer(record=rec.parent / "new"),
            "--record needs --proxy URL (it records what the upstream answers)",
        ),
    ],
    ids=["unknown-format", "record-over-a-recording", "record-without-proxy"],
)
def test_the_binarys_refusals_are_start_errors_with_its_message(
    tmp_path: Path, server: Callable[[Path], tm.MockServer], message: str
) -> None:
    record(tmp_path / "rec")
    with pytest.raises(tm.MockStartError) as refused:
        server(tmp_path / "rec").start()
    assert refused.value.returncode == 2
    assert message in refused.value.stderr
    assert message in str(refused.value)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"proxy": "http://127.0.0.1:9", "config": {"virtual_time": True}}, "config: a proxy or a replay"),
        ({"replay": "rec", "config": {"virtual_time": True}}, "config: a proxy or a replay"),
        ({"keep_output_urls": True}, "keep_output_urls: only with proxy="),
        ({"proxy_upload": "http://127.0.0.1:9"}, "proxy_upload: only with proxy="),
        ({"proxy": "http://127.0.0.1:9", "virtual_time": True}, "virtual_time: a proxy forwards in real time"),
        ({"replay_speed": 2.0}, "replay_speed: only with replay="),
        ({"proxy": "http://127.0.0.1:9", "record": "rec", "record_limit": 0}, "record_limit: 0 given"),
    ],
)
def test_options_the_binary_would_ignore_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tm.MockServer(**options)
