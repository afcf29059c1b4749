"""coalmine: automated canary analysis.

Is the canary worse than its baseline? ``coalmine`` answers with statistics: Spinnaker
Kayenta's ``NetflixACAJudge-v1.0`` reproduced exactly, and coalmine's own judges with exact
Mann-Whitney intervals.

>>> import coalmine
>>> r = coalmine.stats.mann_whitney([12.1, 13.5, 12.9, 14.2], [10.2, 11.1, 10.8, 11.5])
>>> r.method
'exact'
"""

from coalmine import plot, stats
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
from coalmine._judge import JudgeResult, judge, judges
from coalmine._table import Table
from coalmine.archive import Archive, Comparison, import_run, write_fixture
from coalmine.store import Store

__all__ = [
    "Archive",
    "CoalmineError",
    "Comparison",
    "CorruptArchiveError",
    "Store",
    "Table",
    "import_run",
    "plot",
    "write_fixture",
    "InternalError",
    "InvalidInputError",
    "JudgeResult",
    "NotFoundError",
    "UnavailableError",
    "__build__",
    "__version__",
    "judge",
    "judges",
    "stats",
]
