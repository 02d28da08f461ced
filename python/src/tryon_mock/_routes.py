"""The control-API operations this package calls, by operation id.

They live in ``control_routes.json`` beside this file, which ``cargo xtask
codegen`` generates from the control API's document
(``crates/tryon-mock/openapi/tryon-mock-control.yaml``, the one copy) and
``cargo xtask codegen --check`` holds to it: one entry per operation of the
document, with its method and path. ``MockServer`` sends every control call
through this table.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["ROUTES"]

ROUTES: dict[str, tuple[str, str]] = {
    operation: (method, path)
    for operation, (method, path) in json.loads(
        Path(__file__).with_name("control_routes.json").read_text(encoding="utf-8")
    )["routes"].items()
}
"""Operation id -> (HTTP method, path), e.g. ``"getNow": ("GET", "/__mock/now")``."""
