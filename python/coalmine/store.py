"""A daemon's store, read-only, with SQL over its metric points."""

from __future__ import annotations

import os
from typing import TypedDict, Union

from coalmine import _internal
from coalmine._table import Table

__all__ = ["Store", "StoreStats"]


class StoreStats(TypedDict):
    """What a store holds (:meth:`Store.stats`)."""

    #: Series (metric and tags).
    series: int
    #: Durable segment files.
    segments: int
    #: Points in those segments.
    points: int
    #: Their size on disk.
    disk_bytes: int


class Store:
    """The durable points of a ``coalmine serve`` data directory (a snapshot; safe beside a
    running daemon).

    Open one with :meth:`open`.

    Parameters
    ----------
    handle : coalmine._internal.StoreHandle
        The compiled module's store.
    """

    def __init__(self, handle: _internal.StoreHandle) -> None:
        self._h = handle

    @classmethod
    def open(cls, data_dir: Union[str, "os.PathLike[str]"]) -> "Store":
        """Open a data directory read-only.

        Parameters
        ----------
        data_dir : str or path
            The daemon's ``store.data-dir``.

        Returns
        -------
        Store

        Raises
        ------
        coalmine.NotFoundError
            No store there.
        """
        return cls(_internal.StoreHandle.open(os.fspath(data_dir)))

    def sql(self, query: str) -> Table:
        """One read-only ``SELECT`` over ``metrics``, every series and time.

        Parameters
        ----------
        query : str
            DataFusion SQL over ``metrics``: ``ts``, ``metric``, ``value``, ``tags`` and a
            column per tag key.

        Returns
        -------
        Table

        Raises
        ------
        coalmine.InvalidInputError
            Not a single ``SELECT``, or a query DataFusion cannot plan.
        """
        return Table(self._h.sql(query))

    def stats(self) -> StoreStats:
        """Series, segments, points and bytes on disk.

        Returns
        -------
        StoreStats
        """
        s = self._h.stats()
        return StoreStats(
            series=int(s["series"]),
            segments=int(s["segments"]),
            points=int(s["points"]),
            disk_bytes=int(s["disk_bytes"]),
        )

    def __repr__(self) -> str:
        s = self.stats()
        return f"Store({s['points']} points of {s['series']} series in {s['segments']} segments)"
