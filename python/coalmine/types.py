"""The option strings of coalmine's API, as ``Literal`` types for type checkers.

Use them to annotate your own code::

    from coalmine.types import JudgeName

    def rejudge_with(name: JudgeName) -> None: ...
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "Alternative",
    "Classification",
    "Direction",
    "EffectMeasure",
    "JudgeName",
    "MetricClassification",
    "MetricType",
    "ReportedMetricType",
    "NanStrategy",
    "RunStatus",
    "SequentialKind",
    "SequentialLabel",
    "TestMethod",
]

#: A judge this build knows (:func:`coalmine.judges` lists them, default first).
JudgeName = Literal["coalmine-v2", "coalmine-v1", "NetflixACAJudge-v1.0", "coalmine-seq-v2", "coalmine-seq-v1"]

#: The verdict of a judgment (Kayenta's summary classification).
Classification = Literal["Pass", "Marginal", "Fail"]

#: The classification of one metric in a judgment.
MetricClassification = Literal["Pass", "High", "Low", "Nodata", "NodataFailMetric", "Error"]

#: How a Mann-Whitney test was computed: the exact null distribution or the normal
#: approximation.
TestMethod = Literal["exact", "asymptotic"]

#: What a sequential test tests: event counts per interval, or any other values.
MetricType = Literal["continuous", "count"]

#: What a judge tested: :data:`MetricType`, or a histogram's bucket counts (``"histogram"``,
#: a metric whose series carry an ``le`` tag).
ReportedMetricType = Literal["continuous", "count", "histogram"]

#: The change a sequential test looks for.
Alternative = Literal["increase", "decrease", "either"]

#: The direction of change that fails a metric (``analysisConfigurations.canary.direction``).
Direction = Literal["increase", "decrease", "either"]

#: What a judge does with NaN values: drop them (``"remove"``, Kayenta's ``"none"``) or count
#: them as zeros (``"replace"``).
NanStrategy = Literal["none", "remove", "replace"]

#: The effect size that gates a classification: the ratio of the means, or the
#: common-language effect size.
EffectMeasure = Literal["meanRatio", "cles"]

#: A sequential test's decision: ``High``/``Low`` once it crossed (sticky), ``Nodata`` while
#: an arm has no value, else ``Pass``.
SequentialLabel = Literal["Pass", "High", "Low", "Nodata"]

#: The test behind a ``coalmine-seq-v1`` result.
SequentialKind = Literal[
    "sequential-count", "sequential-quantile", "sequential-paired", "sequential-histogram"
]

#: Where a daemon run stands.
RunStatus = Literal["running", "pass", "marginal", "fail", "stopped", "error", "inconclusive"]
