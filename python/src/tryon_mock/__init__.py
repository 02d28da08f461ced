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

from tryon_mock import _server
from tryon_mock._routes import ROUTES
# A star import: mypy reads it as re-exporting every name of `_server.__all__`
# (with `from _server import (MockServer, ...)` and `__all__` built from a list,
# `mypy --strict` sees no public name here).
from tryon_mock._server import *
from tryon_mock._toml import TomlError
from tryon_mock._toml import dumps as to_toml

__all__ = [*_server.__all__, "ROUTES", "TomlError", "to_toml"]
