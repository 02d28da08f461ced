"""A small TOML writer for mock configurations (the standard library reads
TOML but cannot write it).

It covers what a ``MockConfig`` holds: strings, booleans, integers, floats,
lists, and tables nested to any depth. Top-level tables become ``[name]``
sections and top-level lists of tables ``[[name]]`` sections; anything deeper
is written inline (``match = { seed = 7 }``). TOML has no null, so a key whose
value is ``None`` is left out, which gives the mock's default for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TomlError", "dumps"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class TomlError(TypeError):
    """A value that TOML cannot represent (named by its dotted key path)."""


def dumps(config: Mapping[str, Any]) -> str:
    """Return ``config`` as a TOML document.

    >>> print(dumps({"virtual_time": True, "timing": {"mode": "fixed", "queued": 1.0}}))
    virtual_time = true
    <BLANKLINE>
    [timing]
    mode = "fixed"
    queued = 1.0
    <BLANKLINE>
    """
    if not isinstance(config, Mapping):
        raise TomlError(f"config: a mapping is needed, got {type(config).__name__}")
    head: list[str] = []
    sections: list[str] = []
    for key, value in config.items():
        name = _key(key, "")
        if value is None:
            continue
        if isinstance(value, Mapping):
            sections.append(f"[{name}]")
            sections.extend(_pairs(value, name))
            sections.append("")
        elif _is_table_list(value):
            for i, item in enumerate(value):
                sections.append(f"[[{name}]]")
                sections.extend(_pairs(item, f"{name}[{i}]"))
                sections.append("")
        else:
            head.append(f"{name} = {_value(value, name)}")
    out = head + ([""] if head and sections else []) + sections
    text = "\n".join(out)
    return text if text.endswith("\n") else text + "\n"


def _is_table_list(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) > 0
        and all(isinstance(v, Mapping) for v in value)
    )


def _pairs(table: Mapping[str, Any], path: str) -> list[str]:
    return [
        f"{_key(k, path)} = {_value(v, f'{path}.{k}')}"
        for k, v in table.items()
        if v is not None
    ]


def _key(key: object, path: str) -> str:
    if not isinstance(key, str):
        raise TomlError(f"{path or 'config'}: keys must be strings, got {key!r}")
    return key if _BARE_KEY.match(key) else _string(key)


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(value: Any, path: str) -> str:
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        inner = ", ".join(
            f"{_key(k, path)} = {_value(v, f'{path}.{k}')}"
            for k, v in value.items()
            if v is not None
        )
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = []
        for i, v in enumerate(value):
            if v is None:
                raise TomlError(f"{path}[{i}]: TOML has no null")
            items.append(_value(v, f"{path}[{i}]"))
        return "[" + ", ".join(items) + "]"
    raise TomlError(f"{path}: cannot write a {type(value).__name__} as TOML")
