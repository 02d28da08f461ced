"""A test replayed from a committed recording (tests/recordings/try_on), as
README.md shows it. To record it again: TRYON_MOCK_RECORD=<upstream URL>
SEGMIND_API_KEY=<key> pytest tests/test_replayed.py."""

import os
import urllib.request

import pytest
import segmind


@pytest.mark.tryon_mock(replay="recordings/try_on")
def test_try_on(tryon_mock):
    key = os.environ.get("SEGMIND_API_KEY", "sk-replay")  # any key replays
    client = segmind.SegmindClient(api_key=key, base_url=tryon_mock.url + "/v1")
    job = client.submit_async("p-image-try-on", seed=42,
                              person_image="https://example.com/person.jpg",
                              garment_images=["https://example.com/shirt.jpg"])
    if tryon_mock.mode == "replay":
        tryon_mock.advance(60)  # past the recorded job's end: nothing sleeps
    result = job.wait(timeout=300)
    assert result["status"] == "COMPLETED"
    with urllib.request.urlopen(result["output"], timeout=60) as image:
        assert image.read(8) == b"\x89PNG\r\n\x1a\n"
