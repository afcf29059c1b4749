"""coalmine: automated canary analysis.

Is the canary worse than its baseline? ``coalmine`` answers with statistics: Spinnaker
Kayenta's ``NetflixACAJudge-v1.0`` reproduced exactly, and coalmine's own judges with exact
Mann-Whitney intervals.

>>> import coalmine
>>> r = coalmine.stats.mann_whitney([12.1, 13.5, 12.9, 14.2], [10.2, 11.1, 10.8, 11.5])
>>> r.method
'exact'
"""

from coalmine import stats
from coalmine._internal import (
    CoalmineError,
    InternalError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    __version__,
)
from coalmine._judge import JudgeResult, judge, judges

__all__ = [
    "CoalmineError",
    "InternalError",
    "InvalidInputError",
    "JudgeResult",
    "NotFoundError",
    "UnavailableError",
    "__version__",
    "judge",
    "judges",
    "stats",
]
