"""coalmine: automated canary analysis.

Is the canary worse than its baseline? ``coalmine`` answers with statistics: Spinnaker
Kayenta's ``NetflixACAJudge-v1.0`` reproduced exactly, and coalmine's own judges with exact
Mann-Whitney intervals.

Conventions of the API: the canary (experiment) comes before the baseline (control), and
where a function takes both and could be misread they are keyword-only; results are typed,
with snake_case fields; option strings are ``Literal`` types (:mod:`coalmine.types`). The one
exception is :meth:`JudgeResult.to_dict`, which is Kayenta's JSON document, camelCase.

>>> import coalmine
>>> r = coalmine.stats.mann_whitney([12.1, 13.5, 12.9, 14.2], [10.2, 11.1, 10.8, 11.5])
>>> r.method
'exact'
"""

from coalmine import plot, stats, types
from coalmine._internal import (
    CoalmineError,
    CorruptArchiveError,
    InternalError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    __build__,
    __version__,
)
from coalmine._judge import (
    BurnReport,
    EffectSize,
    EffectSizeSettings,
    JudgeResult,
    JudgeSettings,
    MannWhitneyTest,
    MetricResult,
    MetricRow,
    OutlierSettings,
    SeriesStats,
    SloArm,
    SloReport,
    SplitReport,
    V2Report,
    V2Test,
    judge,
    judges,
)
from coalmine._table import Table
from coalmine.archive import (
    Archive,
    Comparison,
    ComparisonSummary,
    RunInfo,
    RunJudgment,
    RunLabel,
    import_run,
    write_fixture,
)
from coalmine.store import Store, StoreStats

__all__ = [
    "Archive",
    "BurnReport",
    "CoalmineError",
    "Comparison",
    "ComparisonSummary",
    "CorruptArchiveError",
    "EffectSize",
    "EffectSizeSettings",
    "InternalError",
    "InvalidInputError",
    "JudgeResult",
    "JudgeSettings",
    "MannWhitneyTest",
    "MetricResult",
    "MetricRow",
    "NotFoundError",
    "OutlierSettings",
    "RunInfo",
    "RunJudgment",
    "RunLabel",
    "SeriesStats",
    "SloArm",
    "SloReport",
    "SplitReport",
    "V2Report",
    "V2Test",
    "Store",
    "StoreStats",
    "Table",
    "UnavailableError",
    "__build__",
    "__version__",
    "import_run",
    "judge",
    "judges",
    "plot",
    "stats",
    "types",
    "write_fixture",
]
