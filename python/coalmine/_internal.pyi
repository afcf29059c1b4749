"""Type stubs of the compiled module (checked by ``mypy.stubtest``)."""

from typing import Any, Dict, List, Optional, Union

__all__ = [
    "CoalmineError",
    "InternalError",
    "InvalidInputError",
    "NotFoundError",
    "UnavailableError",
    "__version__",
    "judge_request",
    "judges",
    "mann_whitney",
]

__version__: str

class CoalmineError(Exception): ...
class InvalidInputError(CoalmineError): ...
class NotFoundError(CoalmineError): ...
class UnavailableError(CoalmineError): ...
class InternalError(CoalmineError): ...

def mann_whitney(
    experiment: Any,
    control: Any,
    confidence: float = 0.95,
    exact: Optional[bool] = None,
    correct: bool = True,
) -> Dict[str, Any]: ...
def judge_request(request: Union[str, Dict[str, Any]], judge: Optional[str] = None) -> str: ...
def judges() -> List[str]: ...
