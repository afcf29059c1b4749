"""A daemon's store, read-only, with SQL over its metric points."""

from __future__ import annotations

import os
from typing import Any, Dict, Union

from coalmine import _internal
from coalmine._table import Table

__all__ = ["Store"]


class Store:
    """The durable points of a ``coalmine serve`` data directory (a snapshot; safe beside a
    running daemon)."""

    def __init__(self, handle: _internal.StoreHandle) -> None:
        self._h = handle

    @classmethod
    def open(cls, data_dir: Union[str, "os.PathLike[str]"]) -> "Store":
        """Open ``store.data-dir`` read-only."""
        return cls(_internal.StoreHandle.open(os.fspath(data_dir)))

    def sql(self, query: str) -> Table:
        """One read-only SELECT over ``metrics`` (``ts``, ``metric``, ``value``, ``tags`` and a
        column per tag key), every series and time."""
        return Table(self._h.sql(query))

    def stats(self) -> Dict[str, Any]:
        """Series, segments, points and bytes on disk."""
        return dict(self._h.stats())

    def __repr__(self) -> str:
        s = self.stats()
        return f"Store({s['points']} points of {s['series']} series in {s['segments']} segments)"
