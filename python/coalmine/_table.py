"""Arrow-backed tables returned by coalmine."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from coalmine import _internal

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars
    import pyarrow

__all__ = ["Table"]


class Table:
    """A table of Arrow record batches, exported zero-copy through the Arrow PyCapsule
    interface (``__arrow_c_stream__``): ``pyarrow.table(t)``, ``polars.DataFrame(t)``,
    DuckDB and friends read it without copying. ``to_pandas()`` / ``to_polars()`` /
    ``to_arrow()`` need the respective package installed.

    Parameters
    ----------
    inner : coalmine._internal.Table
        The compiled module's table.
    """

    def __init__(self, inner: _internal.Table) -> None:
        self._inner = inner

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The record batches as an Arrow C stream (the Arrow PyCapsule interface).

        Parameters
        ----------
        requested_schema : object, optional
            Ignored: the schema is what it is; consumers cast if they need to.

        Returns
        -------
        PyCapsule
            An ``arrow_array_stream`` capsule.
        """
        return self._inner.__arrow_c_stream__(requested_schema)

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return int(self._inner.num_rows)

    @property
    def column_names(self) -> List[str]:
        """Column names, in order."""
        return list(self._inner.column_names)

    @property
    def schema(self) -> List[Tuple[str, str]]:
        """``(name, Arrow type)`` of every column."""
        return list(self._inner.schema_fields)

    def __len__(self) -> int:
        return self.num_rows

    def to_arrow(self) -> "pyarrow.Table":
        """The table in pyarrow (zero-copy).

        Returns
        -------
        pyarrow.Table
        """
        import pyarrow as pa

        return pa.table(self)

    def to_pandas(self) -> "pandas.DataFrame":
        """The table in pandas (through pyarrow).

        Returns
        -------
        pandas.DataFrame
        """
        return self.to_arrow().to_pandas()

    def to_polars(self) -> "polars.DataFrame":
        """The table in polars.

        Returns
        -------
        polars.DataFrame
        """
        import polars as pl

        return pl.from_arrow(self.to_arrow())  # type: ignore[return-value]

    def to_pylist(self) -> List[Dict[str, Any]]:
        """The rows as dicts (through pyarrow).

        Returns
        -------
        list of dict
            One dict per row, by column name.
        """
        rows: List[Dict[str, Any]] = self.to_arrow().to_pylist()
        return rows

    def column(self, name: str) -> List[Any]:
        """One column as a Python list (through pyarrow).

        Parameters
        ----------
        name : str
            The column's name.

        Returns
        -------
        list
        """
        values: List[Any] = self.to_arrow().column(name).to_pylist()
        return values

    def __repr__(self) -> str:
        cols = ", ".join(f"{n}: {t}" for n, t in self.schema)
        return f"Table({self.num_rows} rows; {cols})"

    def _repr_html_(self, max_rows: Optional[int] = 20) -> str:
        n = max_rows or 20
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.column_names)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in self._inner.preview(n)
        )
        more = f"<p>… {self.num_rows - n} more rows</p>" if self.num_rows > n else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
