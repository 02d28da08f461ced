"""The control-API operations this package calls, by operation id.

They live in ``control_routes.json`` beside this file, which a Rust test
(``crates/tryon-mock/tests/control_spec.rs``) compares with
``openapi/tryon-mock-control.yaml``: every entry must be an operation of that
document with the same method and path, and every operation of the document
must be here. ``MockServer`` sends every control call through this table.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["ROUTES"]

ROUTES: dict[str, tuple[str, str]] = {
    operation: (method, path)
    for operation, (method, path) in json.loads(
        Path(__file__).with_name("control_routes.json").read_text(encoding="utf-8")
    ).items()
}
"""Operation id -> (HTTP method, path), e.g. ``"getNow": ("GET", "/__mock/now")``."""
