"""A stateful fake of Segmind's P-Image Try-On API for tests.

The wheel ships the standalone ``tryon-mock`` binary; this module runs it::

    import segmind
    import tryon_mock

    with tryon_mock.MockServer(config={"virtual_time": True}) as mock:
        client = segmind.SegmindClient(api_key="sk-test", base_url=mock.url + "/v1")
        job = client.submit_async("p-image-try-on", person_image="https://example.com/p.jpg",
                                  garment_images=["https://example.com/g.jpg"])
        mock.advance(3)  # the job completes on the virtual clock, no sleeping
        assert job.wait()["status"] == "COMPLETED"

The same binary runs as a validating proxy that records what a real
service answers (``MockServer.proxy(url, record=DIR)``) and serves such a
recording with no key and no network (``MockServer.replay(DIR)``).

With pytest, the ``tryon_mock`` fixture does the ``with`` (see
``tryon_mock.pytest_plugin``); ``@pytest.mark.tryon_mock(replay=DIR)``
replays a committed recording, and ``TRYON_MOCK_RECORD=<upstream URL>``
records it again.
"""

from tryon_mock._routes import ROUTES
from tryon_mock._server import (
    BINARY_ENV,
    Billing,
    Drift,
    DriftRecord,
    FailRule,
    Fault,
    JournalEntry,
    MockControlError,
    MockError,
    MockServer,
    MockStartError,
    Mode,
    Route,
    find_binary,
)
from tryon_mock._toml import TomlError
from tryon_mock._toml import dumps as to_toml

# Spelled out, not built from `_server.__all__`: type checkers read only a
# literal list, and without one `mypy --strict` sees no public name here.
__all__ = [
    "BINARY_ENV",
    "Billing",
    "Drift",
    "DriftRecord",
    "FailRule",
    "Fault",
    "JournalEntry",
    "MockControlError",
    "MockError",
    "MockServer",
    "MockStartError",
    "Mode",
    "ROUTES",
    "Route",
    "TomlError",
    "find_binary",
    "to_toml",
]
