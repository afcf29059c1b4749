"""Statistical tests, with the same Rust implementation the judges use.

Functions release the GIL while they compute.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from coalmine import _internal
from coalmine._arraylike import ArrayLike

__all__ = ["MannWhitneyResult", "mann_whitney"]


@dataclass(frozen=True)
class MannWhitneyResult:
    """Result of :func:`mann_whitney`: the shift ``experiment - control``.

    Attributes
    ----------
    lower, upper : float
        Confidence interval of the location shift.
    estimate : float
        Hodges-Lehmann estimate: the median of all pairwise differences.
    p_value : float
        Two-sided p-value of H0 "no shift".
    statistic : float
        R's ``W``: the Mann-Whitney U of the experiment sample.
    method : str
        ``"exact"`` (exact null distribution) or ``"asymptotic"`` (normal approximation
        with tie correction, and continuity correction when ``corrected``).
    corrected : bool
        Whether the continuity correction was applied.
    confidence, achieved_confidence : float
        The level asked for, and the level the interval has (they differ on the exact path
        when the asked level is not attainable with so few points).
    n_experiment, n_control : int
        Sample sizes after dropping non-finite values.
    warnings : tuple of str
        R's warnings, in R's words.
    """

    lower: float
    upper: float
    estimate: float
    p_value: float
    statistic: float
    method: str
    corrected: bool
    confidence: float
    achieved_confidence: float
    n_experiment: int
    n_control: int
    warnings: Tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict."""
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.to_dict().items()
        )
        return f"<table><caption>Mann-Whitney ({html.escape(self.method)})</caption>{rows}</table>"


def mann_whitney(
    experiment: ArrayLike,
    control: ArrayLike,
    confidence: float = 0.95,
    exact: Optional[bool] = None,
    correct: bool = True,
) -> MannWhitneyResult:
    """Two-sample Wilcoxon rank-sum (Mann-Whitney) test with the Hodges-Lehmann shift
    estimate and its confidence interval.

    Same semantics as R's ``wilcox.test(experiment, control, conf.int = TRUE,
    conf.level = confidence, exact = exact, correct = correct)``: non-finite values are
    dropped; ``exact=None`` uses the exact distribution when both samples have fewer than
    50 values and there are no ties; p-values are two-sided. Interval endpoints are exact
    order statistics of the pairwise differences (no root-finder tolerance), computed
    without building the ``n * m`` differences, so samples of 100,000 are fine.

    Parameters
    ----------
    experiment, control : array-like
        Lists, tuples, numpy arrays, or Arrow arrays / chunked arrays of numbers.
    confidence : float
        Confidence level of the interval, in (0, 1).
    exact : bool, optional
        Force (True) or forbid (False) the exact distribution.
    correct : bool
        Continuity correction on the normal approximation.

    Returns
    -------
    MannWhitneyResult

    Raises
    ------
    coalmine.InvalidInputError
        Empty samples, a confidence outside (0, 1), values that are not numbers.

    Examples
    --------
    >>> r = mann_whitney([10, 20, 30, 40], [1, 2, 3, 4])
    >>> (r.lower, r.upper, r.estimate, r.method)
    (6.0, 39.0, 22.5, 'exact')
    """
    d = _internal.mann_whitney(experiment, control, float(confidence), exact, bool(correct))
    d["warnings"] = tuple(d["warnings"])
    return MannWhitneyResult(**d)
