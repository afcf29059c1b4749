"""Judging canaries from Python: the same engine and JSON as ``coalmine judge``."""

from __future__ import annotations

import copy
import html
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Mapping, Optional, Tuple, TypedDict, Union, cast

from coalmine import _internal
from coalmine._json import number, optional_number
from coalmine.stats import SequentialReport
from coalmine.types import (
    Classification,
    Direction,
    EffectMeasure,
    JudgeName,
    MetricClassification,
    MetricType,
    NanStrategy,
    TestMethod,
)

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = [
    "EffectSize",
    "EffectSizeSettings",
    "JudgeResult",
    "JudgeSettings",
    "MannWhitneyTest",
    "MetricResult",
    "MetricRow",
    "OutlierSettings",
    "SeriesStats",
    "judge",
    "judges",
]

#: A remote-judge request: a dict, JSON text, or the path of a JSON file.
Request = Union[Dict[str, Any], str, "os.PathLike[str]"]
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class SeriesStats:
    """Kayenta's summary of one side's values in a metric result (after NaN handling).

    Attributes
    ----------
    min, max, mean, std : float
        Minimum, maximum, mean and standard deviation (all 0 for no values).
    count : int
        Number of values.
    """

    min: float
    max: float
    mean: float
    std: float
    count: int

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "SeriesStats":
        return cls(number(d["min"]), number(d["max"]), number(d["mean"]), number(d["std"]), int(d["count"]))


@dataclass(frozen=True)
class EffectSize:
    """The effect size a ``coalmine-v1`` metric was gated on.

    Attributes
    ----------
    measure : {"meanRatio", "cles"}
        The ratio of the means, or the common-language effect size.
    value : float
    """

    measure: EffectMeasure
    value: float


@dataclass(frozen=True)
class MannWhitneyTest:
    """The Mann-Whitney test behind a ``coalmine-v1`` metric result.

    Attributes
    ----------
    kind : {"mann-whitney"}
    method : {"exact", "asymptotic"}
        The exact null distribution, or the normal approximation.
    lower, upper : float
        Confidence interval of the shift canary - baseline.
    estimate : float
        Hodges-Lehmann estimate of the shift.
    p_value : float
        Two-sided p-value of "no shift".
    confidence, achieved_confidence : float
        The level asked for, and the level the interval has.
    min_p_value : float
        The smallest p-value samples of these sizes could give: at or above
        ``1 - confidence`` the metric cannot be judged.
    n_experiment, n_control : int
        Sample sizes.
    bound : float
        The no-change band ``tolerance * |estimate|`` the interval was compared against.
    effect_size : EffectSize
    warnings : tuple of str
    """

    kind: Literal["mann-whitney"]
    method: TestMethod
    lower: float
    upper: float
    estimate: float
    p_value: float
    confidence: float
    achieved_confidence: float
    min_p_value: float
    n_experiment: int
    n_control: int
    bound: float
    effect_size: EffectSize
    warnings: Tuple[str, ...]

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "MannWhitneyTest":
        return cls(
            kind="mann-whitney",
            method=d["method"],
            lower=number(d["lower"]),
            upper=number(d["upper"]),
            estimate=number(d["estimate"]),
            p_value=number(d["pValue"]),
            confidence=float(d["confidence"]),
            achieved_confidence=float(d["achievedConfidence"]),
            min_p_value=number(d["minPValue"]),
            n_experiment=int(d["nExperiment"]),
            n_control=int(d["nControl"]),
            bound=number(d["bound"]),
            effect_size=EffectSize(d["effectSize"]["measure"], number(d["effectSize"]["value"])),
            warnings=tuple(d.get("warnings", ())),
        )


@dataclass(frozen=True)
class V2Test:
    """One test behind a ``coalmine-v2`` metric result.

    Attributes
    ----------
    name : {"location", "spread", "rate", "tail"}
    method : str
        ``"wilcoxon-hac"``, ``"paired-log-ratio-hac"``, ``"paired-difference-hac"``,
        ``"levene-hac"``, ``"conditional-binomial"``, ``"quasi-binomial"``, or for
        histograms ``"cmh"`` / ``"quasi-cmh"``.
    alternative : {"greater", "less", "two-sided"}
    statistic : float
    df : float or None
        Degrees of freedom of the t reference (``None`` for the binomial tests).
    p_value : float
    estimate : float
        The effect, canary over baseline (a ratio; a difference for paired non-positive data).
    lower, upper : float or None
        Its interval, where the test gives one.
    gate_measure : str
        The measure of the effect gate (``"mean"``, ``"quantile:0.95"``, ``"rate"``, ...).
    gate_value : float
    beyond_allowed : bool
        Whether the effect is beyond the allowed effect (only then can the test flag).
    dependence : dict or None
        ``{"n", "variance", "ar1", "effectiveN"}``: the serial dependence allowed for.
    pairs : int or None
        Instants compared pairwise.
    events : tuple of float or None
        Rate tests: events in the baseline and the canary; histogram tests: slow requests.
    dispersion : float or None
        Rate tests: the long-run dispersion the totals were scaled by (1: Poisson-like);
        histogram tests: the Pearson dispersion of the intervals (1: binomial).
    bound : float or None
        Histogram tests: the bucket bound above which a request counts as slow.
    requests : tuple of float or None
        Histogram tests: all requests in the baseline and the canary.
    quantiles : tuple of float or None
        Histogram tests: each arm's quantile from its pooled buckets (baseline, canary).
    scored : tuple of float or None
        Histogram tests: the bounds whose exceedances score a request.
    """

    name: str
    method: str
    alternative: str
    statistic: float
    df: Optional[float]
    p_value: float
    estimate: float
    lower: Optional[float]
    upper: Optional[float]
    gate_measure: str
    gate_value: float
    beyond_allowed: bool
    dependence: Optional[Dict[str, float]]
    pairs: Optional[int]
    events: Optional[Tuple[float, float]]
    dispersion: Optional[float]
    bound: Optional[float] = None
    requests: Optional[Tuple[float, float]] = None
    quantiles: Optional[Tuple[float, float]] = None
    scored: Optional[Tuple[float, ...]] = None

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "V2Test":
        ev = d.get("events")

        def pair(key: str) -> Optional[Tuple[float, float]]:
            v = d.get(key)
            if not v:
                return None
            # JSON has no NaN: an arm without a quantile is null
            return (math.nan if v[0] is None else number(v[0]), math.nan if v[1] is None else number(v[1]))

        return cls(
            name=d["name"],
            method=d["method"],
            alternative=d["alternative"],
            statistic=number(d["statistic"]),
            df=optional_number(d, "df"),
            p_value=number(d["pValue"]),
            estimate=number(d["estimate"]),
            lower=optional_number(d, "lower"),
            upper=optional_number(d, "upper"),
            gate_measure=d["gateMeasure"],
            gate_value=number(d["gateValue"]),
            beyond_allowed=bool(d["beyondAllowed"]),
            dependence={k: number(v) for k, v in d["dependence"].items()} if d.get("dependence") else None,
            pairs=d.get("pairs"),
            events=(number(ev[0]), number(ev[1])) if ev else None,
            dispersion=optional_number(d, "dispersion"),
            bound=optional_number(d, "bound"),
            requests=pair("requests"),
            quantiles=pair("quantiles"),
            scored=tuple(number(b) for b in d["scored"]) if d.get("scored") else None,
        )


@dataclass(frozen=True)
class V2Report:
    """The statistics behind a ``coalmine-v2`` metric result.

    Attributes
    ----------
    kind : {"coalmine-v2"}
    multiplicity : {"holm", "bonferroni", "none", "own"}
        How the canary's false-alarm rate is kept across metrics (``"own"``: the metric has
        its own ``confidence``).
    family_alpha : float
        The false-alarm rate kept.
    p_value, adjusted_p_value : float
        The metric's p-value (over its tests) and after the correction across metrics.
    pairing : {"paired", "unpaired", "counts", "histogram"}
    tests : tuple of V2Test
    """

    kind: str
    multiplicity: str
    family_alpha: float
    p_value: float
    adjusted_p_value: float
    pairing: str
    tests: Tuple[V2Test, ...]

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "V2Report":
        return cls(
            kind=d["kind"],
            multiplicity=d["multiplicity"],
            family_alpha=number(d["familyAlpha"]),
            p_value=number(d["pValue"]),
            adjusted_p_value=number(d["adjustedPValue"]),
            pairing=d["pairing"],
            tests=tuple(V2Test._from_json(t) for t in d["tests"]),
        )


def _test(d: Optional[Mapping[str, Any]]) -> Union[MannWhitneyTest, SequentialReport, V2Report, None]:
    if d is None:
        return None
    if d.get("kind") == "mann-whitney":
        return MannWhitneyTest._from_json(d)
    if d.get("kind") == "coalmine-v2":
        return V2Report._from_json(d)
    return SequentialReport._from_json(d)


@dataclass(frozen=True)
class SloArm:
    """An SLO gate on one arm.

    Attributes
    ----------
    n : int
        Values the gate saw.
    estimate : float
        The statistic (mean, quantile or the one value).
    bound : float
        Its one-sided confidence bound on the side of a breach (lower for ``max``).
    state : {"met", "uncertain", "breached", "noData"}
        ``breached``: the bound is beyond the objective; ``uncertain``: only the estimate is.
    """

    n: int
    estimate: float
    bound: float
    state: str

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "SloArm":
        return cls(int(d["n"]), number(d["estimate"]), number(d["bound"]), str(d["state"]))


@dataclass(frozen=True)
class SloReport:
    """A metric's SLO gate (``analysisConfigurations.canary.slo``), on both arms.

    Attributes
    ----------
    objective : {"max", "min"}
    threshold : float
    statistic : str
        ``mean``, ``quantile:q`` or ``value``.
    confidence : float
        The one-sided bound's confidence.
    canary, baseline : SloArm
    """

    objective: str
    threshold: float
    statistic: str
    confidence: float
    canary: SloArm
    baseline: SloArm

    @classmethod
    def _from_json(cls, d: Optional[Mapping[str, Any]]) -> "Optional[SloReport]":
        if d is None:
            return None
        return cls(
            objective=str(d["objective"]),
            threshold=number(d["threshold"]),
            statistic=str(d["statistic"]),
            confidence=float(d["confidence"]),
            canary=SloArm._from_json(d["canary"]),
            baseline=SloArm._from_json(d["baseline"]),
        )


@dataclass(frozen=True)
class BurnReport:
    """A metric's error-budget burn gate (``analysisConfigurations.canary.errorBudget``).

    The burn rate is the error ratio over the budget ``1 - objective``: 0.5 % errors burn a
    99.9 % objective's budget at 5x.

    Attributes
    ----------
    objective : float
        The SLO as a ratio (0.999).
    max_burn_rate : float
        The fastest burn allowed.
    statistic : {"mean", "value"}
    confidence : float
    canary, baseline : SloArm
        ``estimate`` and ``bound`` are burn rates.
    note : str or None
        Why the values could not be taken for error ratios.
    """

    objective: float
    max_burn_rate: float
    statistic: str
    confidence: float
    canary: SloArm
    baseline: SloArm
    note: Optional[str] = None

    @classmethod
    def _from_json(cls, d: Optional[Mapping[str, Any]]) -> "Optional[BurnReport]":
        if d is None:
            return None
        return cls(
            objective=float(d["objective"]),
            max_burn_rate=float(d["maxBurnRate"]),
            statistic=str(d["statistic"]),
            confidence=float(d["confidence"]),
            canary=SloArm._from_json(d["canary"]),
            baseline=SloArm._from_json(d["baseline"]),
            note=d.get("note"),
        )


@dataclass(frozen=True)
class SplitReport:
    """The traffic-split guard (``trafficSplit``): is the canary getting its share?

    Attributes
    ----------
    metric : str
        The request-count metric.
    expected_share, observed_share : float
        The canary's share of the events, configured and observed.
    lower, upper : float
        The confidence sequence for the canary's share at ``confidence`` (``1 - alpha``).
    confidence, alpha : float
    e_value : float
        The two-sided e-value now; the split is mismatched once it has reached ``1/alpha``.
    looks : int
        Buckets seen.
    control, experiment : float
        Events in the baseline and the canary.
    dispersion : float
        The overdispersion factor the counts are divided by (NaN before 3 looks with events).
    mismatch_at : int or None
        The look at which the mismatch was found.
    state : {"consistent", "mismatch", "noData", "invalid"}
    reason : str
    """

    metric: str
    expected_share: float
    observed_share: float
    lower: float
    upper: float
    confidence: float
    e_value: float
    alpha: float
    looks: int
    control: float
    experiment: float
    dispersion: float
    mismatch_at: Optional[int]
    state: str
    reason: str

    @classmethod
    def _from_json(cls, d: Optional[Mapping[str, Any]]) -> "Optional[SplitReport]":
        if d is None:
            return None
        return cls(
            metric=str(d["metric"]),
            expected_share=float(d["expectedShare"]),
            observed_share=number(d["observedShare"]),
            lower=number(d["lower"]),
            upper=number(d["upper"]),
            confidence=float(d["confidence"]),
            e_value=number(d["eValue"]),
            alpha=float(d["alpha"]),
            looks=int(d["looks"]),
            control=float(d["control"]),
            experiment=float(d["experiment"]),
            dispersion=number(d["dispersion"]),
            mismatch_at=d.get("mismatchAt"),
            state=str(d["state"]),
            reason=str(d["reason"]),
        )


@dataclass(frozen=True)
class MetricResult:
    """One metric-set pair's verdict in a judgment (Kayenta's ``CanaryAnalysisResult``).

    Attributes
    ----------
    name : str
        The metric's name.
    id : str
        The metric-set pair's id.
    tags : dict of str to str
        The pair's tags.
    classification : {"Pass", "High", "Low", "Nodata", "NodataFailMetric", "Error"}
    classification_reason : str or None
        Why, when the judge says.
    groups : tuple of str
        The metric's groups.
    critical, muted : bool
        A critical metric fails the judgment on its own; a muted one does not count.
    not_judged : str or None
        coalmine judges: why the metric could not be judged at the configured level (it is
        then ``Pass`` with this as its reason).
    ratio : float or None
        Kayenta's ratio of the means, experiment / control.
    test : MannWhitneyTest or SequentialReport or V2Report or None
        The statistics behind the classification (coalmine judges).
    inconclusive : bool
        ``coalmine-v2``: the data could not reach the configured level (the metric is then
        ``Nodata``, with the reason in ``not_judged``).
    experiment_stats, control_stats : SeriesStats
        Each side's values, summarised.
    slo : SloReport or None
        The metric's SLO gate, when its config has one (a breached canary fails the metric).
    error_budget : BurnReport or None
        The metric's error-budget burn gate, when its config has one.
    """

    name: str
    id: str
    tags: Dict[str, str]
    classification: MetricClassification
    classification_reason: Optional[str]
    groups: Tuple[str, ...]
    critical: bool
    muted: bool
    not_judged: Optional[str]
    ratio: Optional[float]
    test: Union[MannWhitneyTest, SequentialReport, V2Report, None]
    experiment_stats: SeriesStats
    control_stats: SeriesStats
    inconclusive: bool = False
    slo: Optional[SloReport] = None
    error_budget: Optional[BurnReport] = None

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "MetricResult":
        meta = d.get("resultMetadata") or {}
        return cls(
            name=d["name"],
            id=d["id"],
            tags=dict(d.get("tags", {})),
            classification=d["classification"],
            classification_reason=d.get("classificationReason"),
            groups=tuple(d.get("groups", ())),
            critical=bool(d["critical"]),
            muted=bool(d["muted"]),
            not_judged=d.get("notJudged"),
            ratio=optional_number(meta, "ratio"),
            test=_test(meta.get("test")),
            experiment_stats=SeriesStats._from_json(d["experimentMetadata"]["stats"]),
            control_stats=SeriesStats._from_json(d["controlMetadata"]["stats"]),
            inconclusive=bool(d.get("inconclusive", False)),
            slo=SloReport._from_json(d.get("slo")),
            error_budget=BurnReport._from_json(d.get("errorBudget")),
        )


class MetricRow(TypedDict):
    """One row of :meth:`JudgeResult.metrics`: a metric result, flattened.

    ``lower``, ``upper`` and ``estimate`` are the Mann-Whitney interval and shift
    (``coalmine-v1``) or the first test's interval and effect (``coalmine-v2``); ``p_value`` is the test's p-value (coalmine judges); each is ``None``
    when the judge does not report it.
    """

    name: str
    tags: Dict[str, str]
    classification: MetricClassification
    critical: bool
    muted: bool
    ratio: Optional[float]
    lower: Optional[float]
    upper: Optional[float]
    estimate: Optional[float]
    p_value: Optional[float]
    method: Optional[str]
    n_experiment: int
    n_control: int
    reason: Optional[str]


class JudgeResult:
    """A judgment: Kayenta's ``CanaryJudgeResult`` with per-metric detail.

    Parameters
    ----------
    document : dict
        The ``CanaryJudgeResult`` JSON document, as ``coalmine judge`` prints it.

    See Also
    --------
    judge : makes one.
    """

    def __init__(
        self,
        document: Dict[str, Any],
        *,
        request: Union[str, Dict[str, Any], None] = None,
        overrides: Optional[str] = None,
    ) -> None:
        self._doc = document
        # the request judged (for the report's series, SQL and allowed effects)
        self._request = request
        self._overrides = overrides

    @property
    def judge_name(self) -> str:
        """The judge that produced this result."""
        return str(self._doc["judgeName"])

    @property
    def score(self) -> float:
        """Summary score, 0-100, rounded half-up to 2 decimals."""
        return number(self._doc["score"]["score"])

    @property
    def classification(self) -> Classification:
        """The verdict: ``"Pass"``, ``"Marginal"`` or ``"Fail"``."""
        value: Classification = self._doc["score"]["classification"]
        return value

    @property
    def reason(self) -> str:
        """Why the canary failed outright (critical metric, too much missing data), or ``""``."""
        return str(self._doc["score"]["classificationReason"])

    @property
    def results(self) -> List[MetricResult]:
        """One result per metric-set pair, in request order."""
        return [MetricResult._from_json(r) for r in self._doc["results"]]

    @property
    def traffic_split(self) -> Optional[SplitReport]:
        """The traffic-split guard, when the config has a ``trafficSplit``."""
        return SplitReport._from_json(self._doc.get("trafficSplit"))

    @property
    def group_scores(self) -> Dict[str, float]:
        """Score of each metric group, by name."""
        return {g["name"]: number(g["score"]) for g in self._doc["groupScores"]}

    def to_dict(self) -> Dict[str, Any]:
        """The result as Kayenta's JSON document.

        Unlike the rest of the API, the keys are Kayenta's camelCase (``judgeName``,
        ``resultMetadata``, ``pValue``…) and NaN is the string ``"NaN"``: this is the
        ``CanaryJudgeResult`` JSON contract, exactly what ``coalmine judge`` prints and
        Kayenta clients read. For typed, snake_case access use :attr:`results` and
        :meth:`metrics`.

        Returns
        -------
        dict
            A deep copy of the document.
        """
        return copy.deepcopy(self._doc)

    def to_json(self, indent: Optional[int] = None) -> str:
        """The result as JSON text (the document of :meth:`to_dict`).

        Parameters
        ----------
        indent : int, optional
            Indentation, as for :func:`json.dumps`; compact when ``None``.

        Returns
        -------
        str
        """
        return json.dumps(self._doc, indent=indent)

    def metrics(self) -> List[MetricRow]:
        """A flat per-metric summary, one row per metric result (ready for
        ``pandas.DataFrame``).

        Returns
        -------
        list of MetricRow
            Name, tags, classification, ratio and the test's interval, estimate, p-value and
            method, where the judge reports them.
        """
        rows: List[MetricRow] = []
        for r in self.results:
            t = r.test
            mw = t if isinstance(t, MannWhitneyTest) else None
            v2 = t.tests[0] if isinstance(t, V2Report) and t.tests else None
            rows.append(
                MetricRow(
                    name=r.name,
                    tags=r.tags,
                    classification=r.classification,
                    critical=r.critical,
                    muted=r.muted,
                    ratio=r.ratio,
                    lower=mw.lower if mw else v2.lower if v2 else None,
                    upper=mw.upper if mw else v2.upper if v2 else None,
                    estimate=mw.estimate if mw else v2.estimate if v2 else None,
                    p_value=t.p_value if t is not None else None,
                    method=v2.method if v2 else t.method if t is not None and not isinstance(t, V2Report) else None,
                    n_experiment=r.experiment_stats.count,
                    n_control=r.control_stats.count,
                    reason=r.classification_reason,
                )
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

    def to_html(self) -> str:
        """The HTML report of this judgment: one self-contained page (inline SVG charts and
        CSS, no script, opens offline) with the verdict, every metric failing first, both
        scopes' series and distributions, each test's estimate and interval against the
        allowed effect, and the metric's query.

        Returns
        -------
        str
            The page. Results made by :func:`judge` or :meth:`Archive.result` include the
            request's series; a result built from a bare document has no series to draw.
        """
        return self._html(fragment=False)

    def save_html(self, path: "PathLike") -> None:
        """Write :meth:`to_html` to ``path`` (UTF-8).

        Parameters
        ----------
        path : str or path
        """
        _write_text(path, self.to_html())

    def _html(self, fragment: bool) -> str:
        request: Union[str, Dict[str, Any]] = (
            self._request
            if self._request is not None
            else {"canaryConfig": {"metrics": []}, "metricSetPairList": [], "scoreThresholds": {"pass": 95, "marginal": 75}}
        )
        return _internal.judgment_report_html(request, json.dumps(self._doc), self._overrides, fragment)

    def _repr_html_(self) -> str:
        return self._html(fragment=True)

class EffectSizeSettings(TypedDict, total=False):
    """``analysisConfigurations.canary.effectSize`` (Kayenta's keys).

    The keys are camelCase because the value is merged into the canary config's JSON as is.
    """

    measure: EffectMeasure
    allowedIncrease: float
    allowedDecrease: float
    criticalIncrease: float
    criticalDecrease: float


class OutlierSettings(TypedDict, total=False):
    """``analysisConfigurations.canary.outliers`` (Kayenta's keys): ``strategy="remove"``
    drops values more than ``outlierFactor`` interquartile ranges out."""

    strategy: Literal["none", "remove"]
    outlierFactor: float


class JudgeSettings(TypedDict, total=False):
    """Shorthands for overrides, as keyword arguments of :func:`judge` and
    :meth:`coalmine.Archive.rejudge`: each is merged into every metric's
    ``analysisConfigurations.canary`` (``metrics`` and ``group_weights`` excepted)."""

    confidence: float
    tolerance: float
    direction: Direction
    nan_strategy: NanStrategy
    effect_size: EffectSizeSettings
    outliers: OutlierSettings
    critical: bool
    must_have_data: bool
    muted: bool
    exact: bool
    continuity_correction: bool
    #: coalmine-v2 and the sequential judges: ``"count"`` or ``"continuous"``.
    metric_type: MetricType
    #: The sequential judges' settings (docs/sequential.md).
    traffic_share: float
    concentration: float
    t_opt: float
    pass_margin: float
    #: coalmine-seq-v1 only.
    quantiles: List[float]
    batch_size: int
    #: coalmine-seq-v2 only.
    warmup: int
    tail_quantile: float
    #: Settings per metric name, in the config's own (camelCase) keys.
    metrics: Dict[str, Dict[str, Any]]
    #: Weight of each metric group, by name.
    group_weights: Dict[str, float]


_CAMEL = {
    "effect_size": "effectSize",
    "nan_strategy": "nanStrategy",
    "must_have_data": "mustHaveData",
    "continuity_correction": "continuityCorrection",
    "group_weights": "groupWeights",
    "metric_type": "metricType",
    "traffic_share": "trafficShare",
    "t_opt": "tOpt",
    "pass_margin": "passMargin",
    "batch_size": "batchSize",
    "tail_quantile": "tailQuantile",
}


def _overrides(overrides: Optional[Mapping[str, Any]], settings: Mapping[str, Any]) -> Optional[str]:
    """``overrides`` with the ``settings`` shorthands merged in, as the JSON text the compiled
    module takes (``None`` for none)."""
    o = dict(overrides or {})
    o.update({_CAMEL.get(k, k): v for k, v in settings.items()})
    return json.dumps(o) if o else None


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


def judge(
    request: Request,
    judge: Optional[JudgeName] = None,
    overrides: Optional[Dict[str, Any]] = None,
    **settings: Unpack[JudgeSettings],
) -> JudgeResult:
    """Judge a Kayenta remote-judge request.

    Parameters
    ----------
    request : dict, str or path
        ``{"canaryConfig": ..., "metricSetPairList": [...], "scoreThresholds": {...}}`` as a
        dict (values may be lists, numpy arrays, NaN floats), as JSON text, or the path of a
        JSON file.
    judge : {"coalmine-v2", "coalmine-v1", "NetflixACAJudge-v1.0", "coalmine-seq-v2", "coalmine-seq-v1"}, optional
        Default: the config's ``judge.name``, else ``coalmine-v2``.
    overrides : dict, optional
        Settings merged into every metric's ``analysisConfigurations.canary``
        (``confidence``, ``tolerance``, ``direction``, ``nanStrategy``, ``effectSize``,
        ``outliers``…), ``metrics`` (patches by metric name) and ``groupWeights``, in the
        config's own (camelCase) keys — the same as :meth:`coalmine.Archive.rejudge`.
    **settings
        Shorthands merged into ``overrides`` (:class:`JudgeSettings`): ``confidence=0.95``,
        ``nan_strategy="replace"``, ``effect_size={"allowedIncrease": 1.1}``…

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

    Examples
    --------
    >>> import coalmine
    >>> r = coalmine.judge("examples/checkout-canary.json")  # doctest: +SKIP
    >>> r.classification, [m.name for m in r.results if m.classification != "Pass"]  # doctest: +SKIP
    ('Fail', ['latency p99'])
    """
    loaded = _load(request)
    patch = _overrides(overrides, settings)
    text = _internal.judge_request(loaded, judge, patch)
    return JudgeResult(json.loads(text), request=loaded, overrides=patch)


def judges() -> List[str]:
    """The judges this build knows.

    Returns
    -------
    list of str
        Their names (see :data:`coalmine.types.JudgeName`), the default first.
    """
    return list(_internal.judges())


def _write_text(path: "PathLike", text: str) -> None:
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        f.write(text)
