"""Statistical tests, with the same Rust implementation the judges use.

Every function takes the experiment (canary) sample first and the control (baseline) second;
the sequential ones take them by keyword only. Functions release the GIL while they compute.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Literal, Mapping, NamedTuple, Optional, Sequence, Tuple

from coalmine import _internal
from coalmine._arraylike import ArrayLike
from coalmine._json import number, optional_int, optional_number
from coalmine.types import (
    Alternative,
    MetricType,
    ReportedMetricType,
    SequentialKind,
    SequentialLabel,
    TestMethod,
)

__all__ = [
    "ConfidenceSequence",
    "Interval",
    "MannWhitneyResult",
    "QuantileBounds",
    "QuantileReport",
    "Reach",
    "SequentialDecision",
    "SequentialPath",
    "SequentialReport",
    "SequentialTest",
    "mann_whitney",
    "sequential_path",
]


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
    method : {"exact", "asymptotic"}
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
    method: TestMethod
    corrected: bool
    confidence: float
    achieved_confidence: float
    n_experiment: int
    n_control: int
    warnings: Tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict.

        Returns
        -------
        dict
            The attributes by name (snake_case), ``warnings`` as a list.
        """
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
        The canary's and the baseline's values: lists, tuples, numpy arrays, or Arrow arrays,
        chunked arrays and one-column tables of numbers.
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



@dataclass(frozen=True)
class SequentialDecision:
    """What a :class:`SequentialTest` says now.

    Attributes
    ----------
    label : {"Pass", "High", "Low", "Nodata"}
        ``High``/``Low`` once the e-value crossed ``1/alpha`` (sticky), ``Nodata`` while an
        arm has no value, else ``Pass`` (no evidence yet; see ``excludes_regression``).
    e_value, max_e_value : float
        The e-value now, and the largest it has been.
    p_value : float
        The anytime-valid p-value ``min(1, 1 / max_e_value)``.
    alpha : float
        The test's level.
    looks : int
        Updates so far.
    crossed_at_look : int or None
        The look at which the e-value first reached ``1/alpha``.
    excludes_regression : bool
        The confidence sequence lies inside the pass region: a positive pass.
    """

    label: SequentialLabel
    e_value: float
    max_e_value: float
    p_value: float
    alpha: float
    looks: int
    crossed_at_look: Optional[int]
    excludes_regression: bool

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "SequentialDecision":
        return cls(label=d["label"], **_decision_fields(d))


def _decision_fields(d: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields :class:`SequentialDecision` and :class:`SequentialReport` share, by name, from
    either's JSON (the report repeats the decision's keys)."""
    return dict(
        e_value=number(d["eValue"]),
        max_e_value=number(d["maxEValue"]),
        p_value=number(d["pValue"]),
        alpha=float(d["alpha"]),
        looks=int(d["looks"]),
        crossed_at_look=optional_int(d, "crossedAtLook"),
        excludes_regression=bool(d["excludesRegression"]),
    )


@dataclass(frozen=True)
class ConfidenceSequence:
    """A confidence sequence of the effect, at the latest look.

    Attributes
    ----------
    parameter : {"rateRatio", "quantileRatio", "quantileShift"}
        What it bounds: the canary/baseline rate ratio (counts), the ratio of the first tested
        quantile (positive data) or its difference (other data).
    lower, upper, estimate : float
        The bounds and the point estimate.
    level : float
        Its coverage, valid at every look at once.
    """

    parameter: Literal["rateRatio", "quantileRatio", "quantileShift"]
    lower: float
    upper: float
    estimate: float
    level: float

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "ConfidenceSequence":
        return cls(d["parameter"], number(d["lower"]), number(d["upper"]), number(d["estimate"]), float(d["level"]))


@dataclass(frozen=True)
class QuantileBounds:
    """One arm's confidence sequence of a quantile.

    Attributes
    ----------
    lower, upper : float
        The bounds (``-inf`` / ``inf`` while unbounded).
    estimate : float
        The empirical quantile.
    """

    lower: float
    upper: float
    estimate: float

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "QuantileBounds":
        return cls(number(d["lower"]), number(d["upper"]), number(d["estimate"]))


@dataclass(frozen=True)
class Interval:
    """An interval of the canary/baseline comparison of a quantile.

    Attributes
    ----------
    lower, upper, estimate : float
        The bounds and the point estimate.
    """

    lower: float
    upper: float
    estimate: float

    @classmethod
    def _from_json(cls, d: Optional[Mapping[str, Any]]) -> "Optional[Interval]":
        return None if d is None else cls(number(d["lower"]), number(d["upper"]), number(d["estimate"]))


@dataclass(frozen=True)
class QuantileReport:
    """The statistics of one tested quantile (continuous metrics).

    Attributes
    ----------
    p : float
        The quantile, in (0, 1).
    e_value_increase, e_value_decrease : float or None
        The e-values of the one-sided tests the alternative runs.
    experiment, control : QuantileBounds
        Each arm's confidence sequence of the quantile.
    level : float
        The level of ``ratio`` / ``shift``.
    ratio : Interval or None
        ``[canary lower / baseline upper, canary upper / baseline lower]`` (positive data).
    shift : Interval or None
        ``[canary lower - baseline upper, canary upper - baseline lower]`` (other data).
    """

    p: float
    e_value_increase: Optional[float]
    e_value_decrease: Optional[float]
    experiment: QuantileBounds
    control: QuantileBounds
    level: float
    ratio: Optional[Interval]
    shift: Optional[Interval]

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "QuantileReport":
        return cls(
            p=float(d["p"]),
            e_value_increase=optional_number(d, "eValueIncrease"),
            e_value_decrease=optional_number(d, "eValueDecrease"),
            experiment=QuantileBounds._from_json(d["experiment"]),
            control=QuantileBounds._from_json(d["control"]),
            level=float(d["level"]),
            ratio=Interval._from_json(d.get("ratio")),
            shift=Interval._from_json(d.get("shift")),
        )


@dataclass(frozen=True)
class Reach:
    """How far a run's test can still get: the values per arm projected to the end of the run,
    and the largest e-value reachable with them.

    Attributes
    ----------
    n_experiment, n_control : int
        Values (events, for counts) per arm at the end of the run.
    max_e_value : float
        The largest e-value those could give.
    """

    n_experiment: int
    n_control: int
    max_e_value: float

    @classmethod
    def _from_json(cls, d: Optional[Mapping[str, Any]]) -> "Optional[Reach]":
        if d is None:
            return None
        return cls(int(d["nExperiment"]), int(d["nControl"]), number(d["maxEValue"]))


@dataclass(frozen=True)
class PairedReport:
    """The paired test of a ``coalmine-seq-v2`` continuous metric.

    Attributes
    ----------
    scale : {"logRatio", "difference"} or None
        How each look's two means became one paired value (None before the first paired look).
    warmup : int
        Paired looks that chose the batch size.
    warmup_ar1, warmup_ar1_upper : float or None
        The warm-up's lag-1 autocorrelation (bias-corrected) and the upper bound that chose
        the batch size (None during the warm-up).
    batch_size : int or None
        Paired looks per batch mean.
    batches, paired_looks, skipped_looks : int
        Batch means so far, looks paired, looks skipped (a mean not positive on the log scale).
    g : float
        The t-mixture's prior variance of the standardised effect.
    location_e_value : float
        The paired mean's e-value as the metric counts it.
    tail_e_value : float or None
        The tail test's e-value (None during the warm-up); the metric's is
        ``0.8 * location + 0.2 * tail``.
    tail_quantile : float
        The quantile the tail test watches.
    tail_batch_size : int or None
        Look means per batch of the tail test.
    mean, sd : float
        The batch means' mean and standard deviation, on ``scale``.
    """

    scale: Optional[str]
    warmup: int
    warmup_ar1: Optional[float]
    warmup_ar1_upper: Optional[float]
    batch_size: Optional[int]
    batches: int
    paired_looks: int
    skipped_looks: int
    g: float
    location_e_value: float
    tail_e_value: Optional[float]
    tail_quantile: float
    tail_batch_size: Optional[int]
    mean: float
    sd: float

    @classmethod
    def _from_json(cls, d: Optional[Mapping[str, Any]]) -> "Optional[PairedReport]":
        if d is None:
            return None
        return cls(
            scale=d.get("scale"),
            warmup=int(d["warmup"]),
            warmup_ar1=optional_number(d, "warmupAr1"),
            warmup_ar1_upper=optional_number(d, "warmupAr1Upper"),
            batch_size=optional_int(d, "batchSize"),
            batches=int(d["batches"]),
            paired_looks=int(d["pairedLooks"]),
            skipped_looks=int(d["skippedLooks"]),
            g=number(d["g"]),
            location_e_value=number(d["locationEValue"]),
            tail_e_value=optional_number(d, "tailEValue"),
            tail_quantile=number(d["tailQuantile"]),
            tail_batch_size=optional_int(d, "tailBatchSize"),
            mean=number(d["mean"]),
            sd=number(d["sd"]),
        )


@dataclass(frozen=True)
class SequentialReport:
    """Everything a sequential test reports: :meth:`SequentialTest.report`, and the ``test`` of
    a ``coalmine-seq-v1`` or ``coalmine-seq-v2`` :class:`coalmine.MetricResult`.

    Attributes
    ----------
    kind : {"sequential-count", "sequential-quantile", "sequential-paired", "sequential-histogram"}
        The test: Lindon & Malek's count test, Howard & Ramdas's quantile test
        (``coalmine-seq-v1``), the paired look-by-look test (``coalmine-seq-v2``), or the
        slow-request test of a histogram's buckets (both).
    method : str
        The method, in words.
    metric_type : {"continuous", "count", "histogram"}
    metric_type_inferred : bool
        ``metric_type`` was not configured; the judge chose it from the values.
    alternative : {"increase", "decrease", "either"}
    e_value, max_e_value, p_value, alpha, looks, crossed_at_look, excludes_regression
        As in :class:`SequentialDecision`.
    threshold : float
        ``1/alpha``: the e-value that flags the metric.
    confidence_sequence : ConfidenceSequence or None
        The effect's confidence sequence.
    n_experiment, n_control : int
        Values per arm so far.
    events_experiment, events_control : float or None
        Count metrics: events per arm so far.
    traffic_share, concentration : float or None
        Count metrics: the canary's expected share of events, and the mixture's concentration.
    t_opt : float or None
        Continuous metrics: the sample size the boundary is tightest at.
    batch_size : int or None
        Continuous metrics: values per update of the test.
    quantiles : tuple of QuantileReport
        Continuous metrics: one per tested quantile.
    reach : Reach or None
        In a run: how far the test can still get.
    effect_size : float
        The effect size the ``effectSize`` gate used: rate ratio (counts) or mean ratio.
    warnings : tuple of str
    paired : PairedReport or None
        ``coalmine-seq-v2`` continuous metrics: the paired test.
    dispersion, dispersion_upper : float or None
        ``coalmine-seq-v2`` count metrics: the per-look overdispersion and the upper bound the
        counts were divided by (None before three looks with events); histogram metrics: the
        looks' dispersion and the bound each look was tempered with.
    histogram : dict or None
        Histogram metrics: ``{"quantile", "bound", "requests", "intervals", "scored",
        "quantiles", "effectMeasure"}`` (the slow requests are ``events_*``).
    """

    kind: SequentialKind
    method: str
    metric_type: ReportedMetricType
    metric_type_inferred: bool
    alternative: Alternative
    e_value: float
    max_e_value: float
    p_value: float
    alpha: float
    threshold: float
    looks: int
    crossed_at_look: Optional[int]
    excludes_regression: bool
    confidence_sequence: Optional[ConfidenceSequence]
    n_experiment: int
    n_control: int
    events_experiment: Optional[float]
    events_control: Optional[float]
    traffic_share: Optional[float]
    concentration: Optional[float]
    t_opt: Optional[float]
    batch_size: Optional[int]
    quantiles: Tuple[QuantileReport, ...]
    reach: Optional[Reach]
    effect_size: float
    warnings: Tuple[str, ...]
    paired: Optional[PairedReport] = None
    dispersion: Optional[float] = None
    dispersion_upper: Optional[float] = None
    histogram: Optional[Dict[str, Any]] = None

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "SequentialReport":
        cs = d.get("confidenceSequence")
        return cls(
            kind=d["kind"],
            method=str(d["method"]),
            metric_type=d["metricType"],
            metric_type_inferred=bool(d["metricTypeInferred"]),
            alternative=d["alternative"],
            threshold=number(d["threshold"]),
            confidence_sequence=None if cs is None else ConfidenceSequence._from_json(cs),
            n_experiment=int(d["nExperiment"]),
            n_control=int(d["nControl"]),
            events_experiment=optional_number(d, "eventsExperiment"),
            events_control=optional_number(d, "eventsControl"),
            traffic_share=optional_number(d, "trafficShare"),
            concentration=optional_number(d, "concentration"),
            t_opt=optional_number(d, "tOpt"),
            batch_size=optional_int(d, "batchSize"),
            quantiles=tuple(QuantileReport._from_json(q) for q in d.get("quantiles", ())),
            reach=Reach._from_json(d.get("reach")),
            effect_size=number(d["effectSize"]),
            warnings=tuple(d.get("warnings", ())),
            paired=PairedReport._from_json(d.get("paired")),
            dispersion=optional_number(d, "dispersion"),
            dispersion_upper=optional_number(d, "dispersionUpper"),
            histogram=d.get("histogram"),
            **_decision_fields(d),
        )


class SequentialTest:
    """One metric's anytime-valid sequential test, as ``coalmine-seq-v1`` (default) or
    ``coalmine-seq-v2`` (``judge="coalmine-seq-v2"``) runs it: feed it the new values at every
    look; the e-value may be watched continuously and the false-alarm rate stays at most
    ``alpha`` (v1: i.i.d. data; v2: also autocorrelated series and bursty counts).

    Parameters
    ----------
    metric_type : {"continuous", "count"}
        ``"continuous"``: two-sample quantile test (Howard & Ramdas 2022) of ``quantiles``;
        ``"count"``: events per interval, Beta-mixture e-process against the expected
        ``traffic_share`` (Lindon & Malek 2022).
    alternative : {"increase", "decrease", "either"}
        The change in the canary that counts as evidence.
    alpha : float
        Level: flagged when the e-value reaches ``1/alpha``.
    quantiles : sequence of float, optional
        Continuous metrics: quantiles tested (default: the median).
    traffic_share : float
        Count metrics: the canary's expected share of events under H0.
    t_opt, concentration, batch_size, nan_as_zero
        See ``docs/sequential.md``.
    judge : {"coalmine-seq-v1", "coalmine-seq-v2"}
        Whose tests (keyword-only). ``coalmine-seq-v2``: continuous metrics compared look by
        look (paired log-ratio of the look means, batches sized from the warm-up, t-mixture,
        plus a tail test at ``tail_quantile``); counts scaled by their overdispersion.
        ``quantiles`` and ``batch_size`` are v1's.
    warmup : int
        ``coalmine-seq-v2``: paired looks that choose the batch size (keyword-only).
    tail_quantile : float
        ``coalmine-seq-v2``: the quantile the tail test watches (keyword-only).

    Raises
    ------
    coalmine.InvalidInputError
        An unknown ``metric_type`` or ``alternative``, or a setting out of range.

    See Also
    --------
    sequential_path : the same test over two whole series, look by look.

    Examples
    --------
    >>> t = SequentialTest("count", "increase", alpha=0.01)
    >>> t.update(experiment=[9, 8, 11], control=[3, 2, 4])
    >>> t.decision().label in ("Pass", "High")
    True
    """

    def __init__(
        self,
        metric_type: MetricType = "continuous",
        alternative: Alternative = "increase",
        alpha: float = 0.01,
        quantiles: Optional[Sequence[float]] = None,
        traffic_share: float = 0.5,
        t_opt: float = 1000.0,
        concentration: float = 100.0,
        batch_size: int = 1,
        nan_as_zero: bool = False,
        *,
        judge: Literal["coalmine-seq-v1", "coalmine-seq-v2"] = "coalmine-seq-v1",
        warmup: int = 30,
        tail_quantile: float = 0.9,
    ) -> None:
        self._t = _internal.SequentialTest(
            metric_type,
            alternative,
            alpha,
            list(quantiles or [0.5]),
            traffic_share,
            t_opt,
            concentration,
            batch_size,
            nan_as_zero,
            judge=judge,
            warmup=warmup,
            tail_quantile=tail_quantile,
        )

    def update(self, *, experiment: ArrayLike, control: ArrayLike) -> None:
        """One look: the values that arrived since the last look (O(new values)).

        Parameters
        ----------
        experiment, control : array-like
            The canary's and the baseline's new values (keyword-only).

        Raises
        ------
        coalmine.InvalidInputError
            Values that are not numbers.
        """
        self._t.update(experiment=experiment, control=control)

    def decision(self) -> SequentialDecision:
        """The decision now.

        Returns
        -------
        SequentialDecision
        """
        return SequentialDecision._from_json(json.loads(self._t.decision()))

    def report(self) -> SequentialReport:
        """Everything the test reports, as in a sequential judge's metric result's ``test``.

        Returns
        -------
        SequentialReport
        """
        return SequentialReport._from_json(json.loads(self._t.report()))

    @property
    def e_value(self) -> float:
        """The e-value now."""
        return self.decision().e_value

    @property
    def p_value(self) -> float:
        """The anytime-valid p-value now."""
        return self.decision().p_value

    def to_json(self) -> str:
        """The test's state, to persist; :meth:`from_json` resumes it.

        Returns
        -------
        str
            JSON text.
        """
        return str(self._t.to_json())

    @classmethod
    def from_json(cls, text: str) -> "SequentialTest":
        """Resume a test from :meth:`to_json`'s text.

        Parameters
        ----------
        text : str
            The state, as :meth:`to_json` wrote it.

        Returns
        -------
        SequentialTest

        Raises
        ------
        coalmine.InvalidInputError
            ``text`` is not a sequential test's state.
        """
        obj = cls.__new__(cls)
        obj._t = _internal.SequentialTest.from_json(text)
        return obj

    def __repr__(self) -> str:
        d = self.decision()
        return f"SequentialTest(label={d.label!r}, e_value={d.e_value:.4g}, looks={d.looks})"


class SequentialPath(NamedTuple):
    """The course of a sequential test over two series (:func:`sequential_path`).

    Attributes
    ----------
    e_values : list of float
        The e-value after every look.
    p_values : list of float
        The anytime-valid p-value after every look.
    crossed_at_look : int or None
        The first look (1-based) at which the e-value reached ``1/alpha``.
    """

    e_values: List[float]
    p_values: List[float]
    crossed_at_look: Optional[int]


def sequential_path(
    *,
    experiment: ArrayLike,
    control: ArrayLike,
    look_size: int = 1,
    metric_type: MetricType = "continuous",
    alternative: Alternative = "increase",
    alpha: float = 0.01,
    quantiles: Optional[Sequence[float]] = None,
    traffic_share: float = 0.5,
    t_opt: float = 1000.0,
    concentration: float = 100.0,
    batch_size: int = 1,
    judge: Literal["coalmine-seq-v1", "coalmine-seq-v2"] = "coalmine-seq-v1",
    warmup: int = 30,
    tail_quantile: float = 0.9,
) -> SequentialPath:
    """Run a :class:`SequentialTest` over two series, ``look_size`` values per arm per look.

    Every argument is keyword-only.

    Parameters
    ----------
    experiment, control : array-like
        The canary's and the baseline's series.
    look_size : int
        Values per arm added at each look.
    metric_type, alternative, alpha, quantiles, traffic_share, t_opt, concentration, batch_size
        As for :class:`SequentialTest`.
    judge, warmup, tail_quantile
        As for :class:`SequentialTest`.

    Returns
    -------
    SequentialPath
        ``(e_values, p_values, crossed_at_look)``: the e-value and anytime-valid p-value after
        every look, and the first look at which the test crossed ``1/alpha`` (``None`` if
        never).

    Raises
    ------
    coalmine.InvalidInputError
        Values that are not numbers, settings out of range.

    Examples
    --------
    >>> path = sequential_path(experiment=[5.0, 6.0, 7.0, 8.0], control=[1.0, 2.0, 3.0, 4.0], look_size=2)
    >>> len(path.e_values), path.crossed_at_look
    (2, None)
    """
    test = SequentialTest(
        metric_type,
        alternative,
        alpha,
        quantiles,
        traffic_share,
        t_opt,
        concentration,
        batch_size,
        judge=judge,
        warmup=warmup,
        tail_quantile=tail_quantile,
    )
    e, p, c = _internal.sequential_path(test._t, experiment=experiment, control=control, look_size=look_size)
    return SequentialPath(list(e), list(p), c)
