"""What coalmine accepts as a column of numbers."""

from __future__ import annotations

from typing import Any, Sequence, Tuple, Union

try:  # Python 3.8+: typing.Protocol
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore[assignment]


class ArrowArrayExportable(Protocol):
    """An object implementing the Arrow PyCapsule interface for arrays (pyarrow, polars...)."""

    def __arrow_c_array__(self, requested_schema: Any = None) -> Tuple[Any, Any]: ...


class ArrowStreamExportable(Protocol):
    """An object implementing the Arrow PyCapsule interface for streams (chunked arrays)."""

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any: ...


#: A 1-D sequence of numbers: a list or tuple, a numpy array, or an Arrow array / chunked
#: array (anything with ``__arrow_c_array__`` or ``__arrow_c_stream__``). ``None`` and
#: Arrow nulls are read as NaN.
ArrayLike = Union[Sequence[float], ArrowArrayExportable, ArrowStreamExportable, Any]
