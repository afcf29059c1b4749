"""Judging canaries from Python: the same engine and JSON as ``coalmine judge``."""

from __future__ import annotations

import copy
import html
import json
import os
from typing import Any, Dict, List, Optional, Union

from coalmine import _internal

__all__ = ["JudgeResult", "judge", "judges"]

Request = Union[Dict[str, Any], str, "os.PathLike[str]"]


class JudgeResult:
    """A judgment: Kayenta's ``CanaryJudgeResult`` with per-metric detail.

    ``to_dict()`` is exactly the JSON document ``coalmine judge`` prints (NaN as ``"NaN"``).
    """

    def __init__(self, document: Dict[str, Any]) -> None:
        self._doc = document

    @property
    def judge_name(self) -> str:
        """The judge that produced this result."""
        return str(self._doc["judgeName"])

    @property
    def score(self) -> float:
        """Summary score, 0-100, rounded half-up to 2 decimals."""
        return float(self._doc["score"]["score"])

    @property
    def classification(self) -> str:
        """``"Pass"``, ``"Marginal"`` or ``"Fail"``."""
        return str(self._doc["score"]["classification"])

    @property
    def reason(self) -> str:
        """Why the canary failed outright (critical metric, too much missing data), or ``""``."""
        return str(self._doc["score"]["classificationReason"])

    @property
    def results(self) -> List[Dict[str, Any]]:
        """One entry per metric-set pair, in request order."""
        return copy.deepcopy(self._doc["results"])

    @property
    def group_scores(self) -> Dict[str, float]:
        """Score of each metric group, by name."""
        return {g["name"]: float(g["score"]) for g in self._doc["groupScores"]}

    def to_dict(self) -> Dict[str, Any]:
        """The result document (a deep copy)."""
        return copy.deepcopy(self._doc)

    def to_json(self, indent: Optional[int] = None) -> str:
        """The result document as JSON text."""
        return json.dumps(self._doc, indent=indent)

    def metrics(self) -> List[Dict[str, Any]]:
        """A flat per-metric summary: name, tags, classification, ratio and the test's
        interval, estimate, p-value and method (where the judge reports them)."""
        rows = []
        for r in self._doc["results"]:
            meta = r.get("resultMetadata") or {}
            test = meta.get("test") or {}
            rows.append(
                {
                    "name": r["name"],
                    "tags": r.get("tags", {}),
                    "classification": r["classification"],
                    "critical": r["critical"],
                    "muted": r["muted"],
                    "ratio": meta.get("ratio"),
                    "lower": test.get("lower"),
                    "upper": test.get("upper"),
                    "estimate": test.get("estimate"),
                    "p_value": test.get("pValue"),
                    "method": test.get("method"),
                    "n_experiment": r["experimentMetadata"]["stats"]["count"],
                    "n_control": r["controlMetadata"]["stats"]["count"],
                    "reason": r.get("classificationReason"),
                }
            )
        return rows

    def __repr__(self) -> str:
        return (
            f"JudgeResult(judge={self.judge_name!r}, classification={self.classification!r}, "
            f"score={self.score}, metrics={len(self._doc['results'])})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JudgeResult) and other._doc == self._doc

    __hash__ = None  # type: ignore[assignment]

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>{html.escape(self.judge_name)}</b>: {html.escape(self.classification)} "
            f"(score {self.score:.2f}){' - ' + html.escape(self.reason) if self.reason else ''}</p>"
        )
        cols = ["name", "tags", "classification", "ratio", "estimate", "lower", "upper", "p_value", "method"]
        rows = []
        for m in self.metrics():
            cells = []
            for c in cols:
                v = m[c]
                if c == "tags":
                    v = ", ".join(f"{k}={x}" for k, x in v.items())
                elif isinstance(v, float):
                    v = f"{v:.4g}"
                elif v is None:
                    v = ""
                cells.append(f"<td>{html.escape(str(v))}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        header = "<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
        return head + "<table>" + header + "".join(rows) + "</table>"


_JSON_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars (anything with ``tolist``) replaced by Python lists
    and numbers, which the compiled module reads as JSON; containers are copied only when
    something in them changes."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, dict):
        items = [(k, _plain(v)) for k, v in value.items()]
        if all(v is value[k] for k, v in items):
            return value
        return dict(items)
    if isinstance(value, (list, tuple)):
        if all(type(v) in _JSON_SCALARS for v in value):
            return value
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return value


def _load(request: Request) -> Union[Dict[str, Any], str]:
    if isinstance(request, dict):
        return _plain(request)  # type: ignore[no-any-return]
    if isinstance(request, os.PathLike):
        path = os.fspath(request)
    elif isinstance(request, str):
        if request.lstrip().startswith("{"):
            return request
        path = request
    else:
        raise _internal.InvalidInputError(
            f"request: expected a dict, JSON text or a path, got {type(request).__name__}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise _internal.NotFoundError(f"cannot read '{path}': no such file") from None
    except OSError as e:
        raise _internal.UnavailableError(f"cannot read '{path}': {e}") from e


def judge(request: Request, judge: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None, **settings: Any) -> JudgeResult:
    """Judge a Kayenta remote-judge request.

    Parameters
    ----------
    request : dict, str or path
        ``{"canaryConfig": ..., "metricSetPairList": [...], "scoreThresholds": {...}}`` as a
        dict (values may be lists, numpy arrays, NaN floats), as JSON text, or the path of a
        JSON file.
    judge : str, optional
        ``"coalmine-v1"``, ``"NetflixACAJudge-v1.0"`` or ``"coalmine-seq-v1"``; default: the
        config's ``judge.name``, else ``coalmine-v1``.
    overrides : dict, optional
        Settings merged into every metric's ``analysisConfigurations.canary``
        (``confidence``, ``tolerance``, ``direction``, ``nanStrategy``, ``effectSize``,
        ``outliers``…), ``metrics`` (patches by metric name) and ``groupWeights`` — the same
        as :meth:`coalmine.Archive.rejudge`.
    **settings
        Shorthands merged into ``overrides``: ``confidence=0.95``, ``nan_strategy="replace"``,
        ``effect_size={"allowedIncrease": 1.1}``…

    Returns
    -------
    JudgeResult

    Raises
    ------
    coalmine.InvalidInputError
        Malformed request; the message names the JSON path, e.g.
        ``metricSetPairList[3].values.control[17]: expected a number or "NaN"``.
    coalmine.NotFoundError
        ``request`` is a path that does not exist.
    """
    from coalmine.archive import _settings

    o = dict(overrides or {})
    o.update(_settings(settings))
    text = _internal.judge_request(_load(request), judge, json.dumps(o) if o else None)
    return JudgeResult(json.loads(text))


def judges() -> List[str]:
    """Names of the judges this build knows; the first is the default."""
    return list(_internal.judges())
