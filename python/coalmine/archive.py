"""Archives of canary judgments: open, query with SQL, re-judge, compare.

An archive is what the daemon writes under ``<data-dir>/archive`` (or ``coalmine demo
--archive DIR --runs N`` writes with known labels): for every judgment, the metric-set pairs it
judged, the config, the thresholds and the result.
"""

from __future__ import annotations

import html
import json
import os
import sys
from typing import Any, Callable, Dict, Optional, Union

from coalmine import _internal
from coalmine._table import Table

__all__ = ["Archive", "Comparison", "import_run", "write_fixture"]

PathLike = Union[str, "os.PathLike[str]"]


class Comparison:
    """Old vs new verdicts after :meth:`Archive.rejudge`.

    Attributes
    ----------
    judgments : Table
        One row per judgment: ``old_score``, ``new_score``, ``old_classification``,
        ``new_classification``, ``changed`` and, for generated archives, the run's known
        ``label_regressed`` / ``label_kind``.
    metrics : Table
        One row per metric result: ``old_classification``, ``new_classification``,
        ``changed`` and the new test's ``new_p_value``, ``new_lower``, ``new_upper``…
    """

    def __init__(self, judgments: Table, metrics: Table, seconds: float) -> None:
        self.judgments = judgments
        self.metrics = metrics
        self.seconds = seconds

    def summary(self) -> Dict[str, Any]:
        """Counts of judgments and metrics whose classification changed."""
        changed = sum(1 for c in self.judgments.column("changed") if c)
        mchanged = sum(1 for c in self.metrics.column("changed") if c)
        n = self.judgments.num_rows
        return {
            "judgments": n,
            "judgments_changed": changed,
            "metrics": self.metrics.num_rows,
            "metrics_changed": mchanged,
            "seconds": self.seconds,
            "judgments_per_second": n / self.seconds if self.seconds > 0 else float("inf"),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Comparison({s['judgments_changed']} of {s['judgments']} judgments and "
            f"{s['metrics_changed']} of {s['metrics']} metric results change)"
        )

    def _repr_html_(self) -> str:
        s = self.summary()
        return (
            f"<p><b>{s['judgments_changed']}</b> of {s['judgments']} judgments and "
            f"<b>{s['metrics_changed']}</b> of {s['metrics']} metric results change "
            f"({s['judgments_per_second']:.0f} judgments/s)</p>" + self.judgments._repr_html_(10)
        )


def _progress_printer() -> Callable[[int, int], None]:
    try:
        from tqdm.auto import tqdm

        bar = tqdm(unit="judgment")

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

        return update
    except ImportError:
        state = {"last": -1}

        def update(done: int, total: int) -> None:
            pct = 100 * done // max(total, 1)
            if pct // 10 != state["last"] // 10 or done >= total:
                state["last"] = pct
                print(f"\rrejudge: {done}/{total} ({pct}%)", end="\n" if done >= total else "", file=sys.stderr)

        return update


class Archive:
    """An archive, read into memory (a snapshot: reopen to see judgments written since)."""

    def __init__(self, handle: _internal.ArchiveHandle) -> None:
        self._h = handle

    @classmethod
    def open(cls, path: PathLike) -> "Archive":
        """Open an archive directory.

        Raises
        ------
        coalmine.NotFoundError
            No such directory.
        coalmine.CorruptArchiveError
            A file is damaged or not an archive file; the message names it.
        """
        return cls(_internal.ArchiveHandle.open(os.fspath(path)))

    @property
    def path(self) -> str:
        return str(self._h.path)

    def __len__(self) -> int:
        return int(self._h.num_judgments)

    def __repr__(self) -> str:
        return f"Archive({self.path!r}: {self._h.num_runs} runs, {self._h.num_judgments} judgments)"

    def run_ids(self) -> list:  # type: ignore[type-arg]
        """Ids of the archived runs."""
        return list(self._h.run_ids())

    def runs(self) -> Table:
        """One row per run: config, status, judgments, final score, times, label."""
        return Table(self._h.runs())

    def judgments(self) -> Table:
        """One row per judgment: tick, window, judge, score, classification, reason."""
        return Table(self._h.judgments())

    def results(self) -> Table:
        """One row per metric result of every judgment: classification, ratio, p-value, CI."""
        return Table(self._h.results())

    def pairs(self, run_id: Optional[str] = None, metric: Optional[str] = None) -> Table:
        """The archived values: one row per value (``scope`` control/experiment, ``position``,
        ``ts``, ``value``, ``tags``), optionally of one run and/or one metric."""
        return Table(self._h.pairs(run_id, metric))

    def sql(self, query: str) -> Table:
        """One read-only SELECT over the tables ``runs``, ``judgments``, ``results``, ``pairs``
        (DataFusion SQL)."""
        return Table(self._h.sql(query))

    def request(self, run_id: str, index: int) -> Dict[str, Any]:
        """The remote-judge request of one judgment, ready for :func:`coalmine.judge`."""
        return json.loads(self._h.request(run_id, index))  # type: ignore[no-any-return]

    def result(self, run_id: str, index: int) -> Dict[str, Any]:
        """The archived ``CanaryJudgeResult`` of one judgment."""
        return json.loads(self._h.result(run_id, index))  # type: ignore[no-any-return]

    def run(self, run_id: str) -> Dict[str, Any]:
        """A run's metadata (spec, config, status, message, label)."""
        return json.loads(self._h.run(run_id))  # type: ignore[no-any-return]

    def rejudge(
        self,
        judge: Optional[str] = None,
        overrides: Optional[Dict[str, Any]] = None,
        progress: Union[bool, Callable[[int, int], None]] = False,
        threads: int = 0,
        **settings: Any,
    ) -> Comparison:
        """Judge every archived judgment again, in parallel with the GIL released.

        Parameters
        ----------
        judge : str, optional
            ``"coalmine-v1"``, ``"NetflixACAJudge-v1.0"``, ``"coalmine-seq-v1"``; default: the
            judge each judgment was made with.
        overrides : dict, optional
            Settings merged into every metric's ``analysisConfigurations.canary``
            (``confidence``, ``tolerance``, ``direction``, ``nanStrategy``, ``effectSize``,
            ``outliers``, ``critical``, ``exact``…), ``metrics`` (patches by metric name) and
            ``groupWeights``.
        progress : bool or callable
            ``True`` shows progress (tqdm when installed); a callable gets ``(done, total)``.
        threads : int
            Worker threads (0: every core).
        **settings
            Shorthands merged into ``overrides``: ``confidence=0.95``,
            ``effect_size={"allowedIncrease": 1.1}``, ``nan_strategy="replace"``…

        Raises
        ------
        KeyboardInterrupt
            Ctrl-C stops the workers.
        """
        import time

        o = dict(overrides or {})
        o.update(_settings(settings))
        cb: Optional[Callable[[int, int], None]]
        if progress is True:
            cb = _progress_printer()
        elif callable(progress):
            cb = progress
        else:
            cb = None
        start = time.perf_counter()
        j, m = self._h.rejudge(judge, json.dumps(o) if o else None, threads, cb)
        return Comparison(Table(j), Table(m), time.perf_counter() - start)

    def export_run(self, run_id: str, path: PathLike) -> int:
        """Write one run to a single Arrow IPC file (for sharing an incident's data)."""
        return int(self._h.export_run(run_id, os.fspath(path)))

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>" + self.runs()._repr_html_(10)


_CAMEL = {
    "effect_size": "effectSize",
    "nan_strategy": "nanStrategy",
    "must_have_data": "mustHaveData",
    "continuity_correction": "continuityCorrection",
    "group_weights": "groupWeights",
}


def _settings(settings: Dict[str, Any]) -> Dict[str, Any]:
    return {_CAMEL.get(k, k): v for k, v in settings.items()}


def import_run(file: PathLike, archive: PathLike) -> str:
    """Add a run exported with :meth:`Archive.export_run` to an archive; returns its id."""
    return str(_internal.import_run(os.fspath(file), os.fspath(archive)))


def write_fixture(
    path: PathLike, runs: int = 200, judgments: int = 5, metrics: int = 6, seed: int = 42, judge: Optional[str] = None
) -> int:
    """Write a synthetic archive with known labels (as ``coalmine demo --archive``)."""
    return int(_internal.write_fixture(os.fspath(path), runs, judgments, metrics, seed, judge))
