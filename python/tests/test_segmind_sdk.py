"""Segmind's official SDK (`segmind`, pinned in .ci/python.sh) against the mock,
through the `tryon_mock` fixture. Jobs move on the mock's virtual clock; the
SDK is never allowed to sleep (see conftest.py)."""

from __future__ import annotations

import urllib.request

import pytest
import segmind

import tryon_mock as tm

PERSON = "https://example.com/person.jpg"
SHIRT = "https://example.com/shirt.jpg"
KEY = "sk-test"
# 1 s queued + 2 s processing, on a clock that only moves when told.
VIRTUAL = {"virtual_time": True, "timing": {"mode": "fixed", "queued": 1.0, "processing": 2.0}}


def sdk(mock: tm.MockServer, key: str = KEY) -> segmind.SegmindClient:
    # The SDK takes a base URL ending in /v1 and derives /v2 from it.
    return segmind.SegmindClient(api_key=key, base_url=mock.url + "/v1")


def submit(mock: tm.MockServer, **params: object) -> segmind.AsyncJob:
    """A submit on a new connection. The mock answers a POST it refuses
    early (a fault, a 429, a 401) without reading its body, and hyper then
    closes that keep-alive connection; a client that reuses it at that moment
    sees "Server disconnected" (about 1 run in 3 here). Until the mock drains
    the body or says `Connection: close`, refused submits get a fresh client."""
    return sdk(mock).submit_async("p-image-try-on", **params)


# The README's five-line example, verbatim.
@pytest.mark.tryon_mock(config={"virtual_time": True})
def test_try_on(tryon_mock):
    client = segmind.SegmindClient(api_key="sk-test", base_url=tryon_mock.url + "/v1")
    job = client.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT])
    tryon_mock.advance(3)
    assert job.wait()["status"] == "COMPLETED"


@pytest.mark.tryon_mock(config=VIRTUAL)
def test_job_completes_and_its_output_is_served(tryon_mock: tm.MockServer) -> None:
    job = sdk(tryon_mock).submit_async(
        "p-image-try-on", person_image=PERSON, garment_images=[SHIRT], seed=42, output_format="png"
    )
    assert job.submit_response["status"] == "QUEUED"
    assert job.status()["status"] == "QUEUED"
    tryon_mock.advance(1.5)
    assert job.status()["status"] == "PROCESSING"
    tryon_mock.advance(1.5)

    result = job.wait(timeout=5)

    assert result["status"] == "COMPLETED"
    assert result["metrics"]["inference_time"] == 2.0
    assert result["output"] == f"{tryon_mock.url}/outputs/{job.request_id}.png"
    with urllib.request.urlopen(result["output"], timeout=10) as image:
        assert image.status == 200
        assert image.headers["content-type"] == "image/png"
        assert image.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.tryon_mock(config=VIRTUAL)
def test_failed_job_raises_the_sdks_inference_failed(tryon_mock: tm.MockServer) -> None:
    tryon_mock.set_fail_rules([{"match": {"seed": 7}, "error": "Content blocked by the safety filter"}])
    client = sdk(tryon_mock)
    failing = client.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT], seed=7)
    fine = client.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT], seed=8)
    tryon_mock.advance(3)

    with pytest.raises(segmind.InferenceFailed) as failed:
        failing.wait(timeout=5)

    assert failed.value.detail == "Content blocked by the safety filter"
    assert failed.value.status_body["status"] == "FAILED"
    assert failed.value.status_body["request_id"] == failing.request_id
    assert fine.wait(timeout=5)["status"] == "COMPLETED"
    # The SDK builds its error from the status body: no result fetch.
    paths = [e["path"] for e in tryon_mock.journal()]
    assert f"/v2/requests/{failing.request_id}" not in paths


@pytest.mark.parametrize(
    "tryon_mock",
    [{**VIRTUAL, "fail_rules": [{"match": {"prompt_contains": "blocked"}, "error": "Blocked"}]}],
    indirect=True,
)
def test_fail_rules_from_the_config(tryon_mock: tm.MockServer) -> None:
    """The same failure, declared in the config (an indirect parameter)."""
    job = sdk(tryon_mock).submit_async(
        "p-image-try-on", person_image=PERSON, garment_images=[SHIRT], prompt="please blocked"
    )
    tryon_mock.advance(3)
    with pytest.raises(segmind.InferenceFailed) as failed:
        job.wait(timeout=5)
    assert failed.value.detail == "Blocked"


@pytest.mark.tryon_mock(config=VIRTUAL)
def test_429_storm_then_recovery(tryon_mock: tm.MockServer) -> None:
    tryon_mock.add_fault("submit", status=429, retry_after=1, times=3)

    # The SDK does not retry: each call meets one 429 and raises it.
    for _ in range(3):
        with pytest.raises(segmind.SegmindError) as storm:
            submit(tryon_mock, person_image=PERSON, garment_images=[SHIRT])
        assert storm.value.status == 429
        assert storm.value.detail == "Too many requests"
    assert tryon_mock.faults() == []  # the storm is spent

    job = submit(tryon_mock, person_image=PERSON, garment_images=[SHIRT])
    tryon_mock.advance(3)
    assert job.wait(timeout=5)["status"] == "COMPLETED"
    statuses = [e["status"] for e in tryon_mock.journal() if e["path"] == "/v2/p-image-try-on"]
    assert statuses == [429, 429, 429, 200]
    assert tryon_mock.billed_submits() == 1  # a 429 is never billed


@pytest.mark.tryon_mock(config=VIRTUAL)
def test_rate_limit_refills_on_the_virtual_clock(tryon_mock: tm.MockServer) -> None:
    tryon_mock.set_rate_limit(per_second=1.0, burst=2)
    for _ in range(2):
        submit(tryon_mock, person_image=PERSON, garment_images=[SHIRT])
    with pytest.raises(segmind.SegmindError) as limited:
        submit(tryon_mock, person_image=PERSON, garment_images=[SHIRT])
    assert limited.value.status == 429

    tryon_mock.advance(1)  # one token back
    submit(tryon_mock, person_image=PERSON, garment_images=[SHIRT])
    tryon_mock.set_rate_limit(None)
    assert tryon_mock.billed_submits() == 3


@pytest.mark.tryon_mock(config=VIRTUAL)
def test_results_expire_after_an_hour(tryon_mock: tm.MockServer) -> None:
    job = sdk(tryon_mock).submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT])
    tryon_mock.advance(3)
    assert job.status()["status"] == "COMPLETED"

    tryon_mock.advance(3601)

    with pytest.raises(segmind.SegmindError) as gone:
        job.wait(timeout=5)
    assert gone.value.status == 404
    with pytest.raises(segmind.SegmindError) as gone_result:
        job.result()
    assert gone_result.value.status == 404
    assert tryon_mock.now() == pytest.approx(3604.0)


@pytest.mark.tryon_mock(config=VIRTUAL)
def test_billing_counts_accepted_jobs_per_key(tryon_mock: tm.MockServer) -> None:
    alice, bob = sdk(tryon_mock, "sk-alice"), sdk(tryon_mock, "sk-bob")
    for _ in range(2):
        alice.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT])
    bob.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT, SHIRT])
    with pytest.raises(segmind.SegmindError) as invalid:
        bob.submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT] * 12)

    assert invalid.value.status == 422
    assert invalid.value.detail == "garment_images: 12 given, at most 11 allowed"
    assert tryon_mock.billed_submits() == 3
    assert tryon_mock.billed_submits("sk-alice") == 2
    assert tryon_mock.billed_submits("sk-bob") == 1
    assert tryon_mock.billed_submits("sk-nobody") == 0

    tryon_mock.reset()
    assert tryon_mock.billed_submits() == 0


@pytest.mark.tryon_mock(config=VIRTUAL)
def test_fault_on_status_ends_the_sdks_wait(tryon_mock: tm.MockServer) -> None:
    job = sdk(tryon_mock).submit_async("p-image-try-on", person_image=PERSON, garment_images=[SHIRT])
    tryon_mock.advance(3)
    tryon_mock.add_fault("status", status=503, retry_after=2, times=1)

    # The SDK does not retry a poll: one 503 ends its wait.
    with pytest.raises(segmind.SegmindError) as unavailable:
        job.wait(timeout=5)
    assert unavailable.value.status == 503
    assert unavailable.value.detail == "Service unavailable"

    # The job itself is fine; waiting again gets it.
    assert job.wait(timeout=5)["status"] == "COMPLETED"
    polls = [e["status"] for e in tryon_mock.journal() if e["path"].endswith("/status")]
    assert polls == [503, 200]
