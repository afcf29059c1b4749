"""Reading coalmine's JSON documents into typed objects."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

#: Kayenta writes the floats JSON cannot hold as strings.
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def number(value: Any) -> float:
    """A JSON number, or Kayenta's ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``, as a float.

    NaN is always :data:`math.nan` itself, so dataclasses holding it compare equal.
    """
    if isinstance(value, str):
        return _NON_FINITE[value]
    f = float(value)
    return math.nan if f != f else f


def optional_number(doc: Mapping[str, Any], key: str) -> Optional[float]:
    """``doc[key]`` as a float, or ``None`` when it is absent or null."""
    value = doc.get(key)
    return None if value is None else number(value)


def optional_int(doc: Mapping[str, Any], key: str) -> Optional[int]:
    """``doc[key]`` as an int, or ``None`` when it is absent or null."""
    value = doc.get(key)
    return None if value is None else int(value)
