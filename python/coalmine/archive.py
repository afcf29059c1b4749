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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple, TypedDict, Union

from coalmine import _internal
from coalmine._judge import JudgeResult, JudgeSettings, _overrides, _write_text
from coalmine._json import number
from coalmine._table import Table
from coalmine.types import Classification, JudgeName, RunStatus

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = [
    "Archive",
    "Comparison",
    "ComparisonSummary",
    "RunInfo",
    "RunJudgment",
    "RunLabel",
    "import_run",
    "write_fixture",
]

#: A file system path.
PathLike = Union[str, "os.PathLike[str]"]


class ComparisonSummary(TypedDict):
    """The counts of :meth:`Comparison.summary`."""

    judgments: int
    judgments_changed: int
    metrics: int
    metrics_changed: int
    seconds: float
    judgments_per_second: float


class Comparison:
    """Old vs new verdicts after :meth:`Archive.rejudge`.

    Parameters
    ----------
    judgments, metrics : Table
        The tables below.
    seconds : float
        How long the re-judging took.

    Attributes
    ----------
    judgments : Table
        One row per judgment: ``old_score``, ``new_score``, ``old_classification``,
        ``new_classification``, ``changed`` and, for generated archives, the run's known
        ``label_regressed`` / ``label_kind``.
    metrics : Table
        One row per metric result: ``old_classification``, ``new_classification``,
        ``changed`` and the new test's ``new_p_value``, ``new_lower``, ``new_upper``…
    seconds : float
        How long the re-judging took.
    """

    def __init__(self, judgments: Table, metrics: Table, seconds: float) -> None:
        self.judgments = judgments
        self.metrics = metrics
        self.seconds = seconds

    def summary(self) -> ComparisonSummary:
        """Counts of judgments and metrics whose classification changed.

        Returns
        -------
        ComparisonSummary
            ``judgments``, ``judgments_changed``, ``metrics``, ``metrics_changed``, ``seconds``
            and ``judgments_per_second``.
        """
        changed = sum(1 for c in self.judgments.column("changed") if c)
        mchanged = sum(1 for c in self.metrics.column("changed") if c)
        n = self.judgments.num_rows
        return ComparisonSummary(
            judgments=n,
            judgments_changed=changed,
            metrics=self.metrics.num_rows,
            metrics_changed=mchanged,
            seconds=self.seconds,
            judgments_per_second=n / self.seconds if self.seconds > 0 else float("inf"),
        )

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Comparison({s['judgments_changed']} of {s['judgments']} judgments and "
            f"{s['metrics_changed']} of {s['metrics']} metric results change)"
        )

    def to_html(self) -> str:
        """The comparison as one self-contained HTML page: how many verdicts change, each
        judgment's old against new score, and the judgments and metric results that change.

        Returns
        -------
        str
        """
        return _internal.comparison_report_html(self.judgments._inner, self.metrics._inner, self.seconds)

    def save_html(self, path: PathLike) -> None:
        """Write :meth:`to_html` to ``path`` (UTF-8).

        Parameters
        ----------
        path : str or path
        """
        _write_text(path, self.to_html())

    def _repr_html_(self) -> str:
        return _internal.comparison_report_html(self.judgments._inner, self.metrics._inner, self.seconds, fragment=True)


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


@dataclass(frozen=True)
class RunJudgment:
    """One judgment of an archived run (:attr:`RunInfo.judgments`).

    Attributes
    ----------
    index : int
        1-based, in the run.
    tick_ms, window_start_ms, window_end_ms : int
        When it was due, and the window ``[start, end)`` it judged (Unix ms).
    judged_ms : int
        When it was stored (Unix ms).
    took_ms : float
        How long it took (queries and judge).
    score : float
    classification : {"Pass", "Marginal", "Fail"}
    reason : str
        Why it failed outright, or ``""``.
    """

    index: int
    tick_ms: int
    window_start_ms: int
    window_end_ms: int
    judged_ms: int
    took_ms: float
    score: float
    classification: Classification
    reason: str

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> "RunJudgment":
        return cls(
            index=int(d["index"]),
            tick_ms=int(d["tickMs"]),
            window_start_ms=int(d["windowStartMs"]),
            window_end_ms=int(d["windowEndMs"]),
            judged_ms=int(d.get("judgedMs", 0)),
            took_ms=float(d.get("tookMs", 0.0)),
            score=number(d["score"]),
            classification=d["classification"],
            reason=str(d.get("reason", "")),
        )


@dataclass(frozen=True)
class RunLabel:
    """What a synthetic run really is (archives written by :func:`write_fixture` or
    ``coalmine demo --archive``).

    Attributes
    ----------
    regressed : bool
        The canary has a regression.
    kind : str
        Which (``"none"`` for a healthy canary, ``"latency"``, ``"errors"``…).
    magnitude : float
        Its size.
    metrics : tuple of str
        The metrics it shows in.
    """

    regressed: bool
    kind: str
    magnitude: float
    metrics: Tuple[str, ...]


@dataclass(frozen=True)
class RunInfo:
    """An archived run's metadata (:meth:`Archive.run`).

    Attributes
    ----------
    id : str
    status : {"running", "pass", "marginal", "fail", "stopped", "error", "inconclusive"}
    message : str or None
        Why the run ended as it did.
    created_ms : int
        When it was created (Unix ms).
    next_tick : int
        The next judgment's index.
    judgments : tuple of RunJudgment
    label : RunLabel or None
        Synthetic runs: what the canary really is.
    spec : dict
        The run as it was created (the ``POST /runs`` body, resolved; snake_case keys).
    config : dict
        The canary config as it was when the run started: Kayenta's ``CanaryConfig`` JSON
        (camelCase keys, the JSON contract).
    """

    id: str
    status: RunStatus
    message: Optional[str]
    created_ms: int
    next_tick: int
    judgments: Tuple[RunJudgment, ...]
    label: Optional[RunLabel]
    spec: Dict[str, Any]
    config: Dict[str, Any]
    _archive: Optional[_internal.ArchiveHandle] = field(default=None, repr=False, compare=False)

    def to_html(self) -> str:
        """The run's HTML report: one self-contained page (inline SVG charts and CSS, no
        script, opens offline) with the verdict, the score of every judgment against the
        thresholds, and every metric of the last judgment failing first with both scopes'
        series, distributions, test, evidence path and query.

        Returns
        -------
        str

        Raises
        ------
        coalmine.CoalmineError
            The run was not read from an archive (:meth:`Archive.run` makes ones that can).
        """
        return self._html(fragment=False)

    def save_html(self, path: PathLike) -> None:
        """Write :meth:`to_html` to ``path`` (UTF-8).

        Parameters
        ----------
        path : str or path
        """
        _write_text(path, self.to_html())

    def _html(self, fragment: bool) -> str:
        if self._archive is None:
            raise _internal.CoalmineError(f"run '{self.id}': a report needs the archive; get the run with Archive.run()")
        return self._archive.report_html(self.id, fragment)

    def _repr_html_(self) -> str:
        return self._html(fragment=True)

    @classmethod
    def _from_json(cls, d: Mapping[str, Any], archive: Optional[_internal.ArchiveHandle] = None) -> "RunInfo":
        label = d.get("label")
        return cls(
            id=d["id"],
            status=d["status"],
            message=d.get("message"),
            created_ms=int(d["createdMs"]),
            next_tick=int(d.get("nextTick", 0)),
            judgments=tuple(RunJudgment._from_json(j) for j in d.get("judgments", ())),
            label=None
            if label is None
            else RunLabel(bool(label["regressed"]), str(label["kind"]), float(label["magnitude"]), tuple(label["metrics"])),
            spec=dict(d.get("spec", {})),
            config=dict(d.get("config", {})),
            _archive=archive,
        )


class Archive:
    """An archive, read into memory (a snapshot: reopen to see judgments written since).

    Open one with :meth:`open`.

    Parameters
    ----------
    handle : coalmine._internal.ArchiveHandle
        The compiled module's archive.
    """

    def __init__(self, handle: _internal.ArchiveHandle) -> None:
        self._h = handle

    @classmethod
    def open(cls, path: PathLike) -> "Archive":
        """Open an archive directory.

        Parameters
        ----------
        path : str or path
            The archive's directory (``<data-dir>/archive`` for a daemon's).

        Returns
        -------
        Archive

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
        """The archive's directory."""
        return str(self._h.path)

    def __len__(self) -> int:
        return int(self._h.num_judgments)

    def __repr__(self) -> str:
        return f"Archive({self.path!r}: {self._h.num_runs} runs, {self._h.num_judgments} judgments)"

    def run_ids(self) -> List[str]:
        """Ids of the archived runs.

        Returns
        -------
        list of str
        """
        return list(self._h.run_ids())

    def runs(self) -> Table:
        """One row per run: config, status, judgments, final score, times, label.

        Returns
        -------
        Table
        """
        return Table(self._h.runs())

    def judgments(self) -> Table:
        """One row per judgment: tick, window, judge, score, classification, reason.

        Returns
        -------
        Table
        """
        return Table(self._h.judgments())

    def results(self) -> Table:
        """One row per metric result of every judgment: classification, ratio, p-value, CI.

        Returns
        -------
        Table
        """
        return Table(self._h.results())

    def pairs(self, run_id: Optional[str] = None, metric: Optional[str] = None) -> Table:
        """The archived values: one row per value.

        Parameters
        ----------
        run_id : str, optional
            Only this run's.
        metric : str, optional
            Only this metric's.

        Returns
        -------
        Table
            ``run_id``, ``judgment``, ``metric``, ``pair_id``, ``tags``, ``scope``
            (``"control"`` / ``"experiment"``), ``position``, ``ts``, ``value``.
        """
        return Table(self._h.pairs(run_id, metric))

    def sql(self, query: str) -> Table:
        """One read-only ``SELECT`` (DataFusion SQL).

        Parameters
        ----------
        query : str
            Over the tables ``runs``, ``judgments``, ``results`` and ``pairs``.

        Returns
        -------
        Table

        Raises
        ------
        coalmine.InvalidInputError
            Not a single ``SELECT``, or a query DataFusion cannot plan.
        """
        return Table(self._h.sql(query))

    def request(self, run_id: str, index: int) -> Dict[str, Any]:
        """The remote-judge request of one judgment, ready for :func:`coalmine.judge`.

        Parameters
        ----------
        run_id : str
        index : int
            The judgment's 1-based index in the run.

        Returns
        -------
        dict
            Kayenta's remote-judge request JSON (``canaryConfig``, ``metricSetPairList``,
            ``scoreThresholds``; camelCase keys and ``"NaN"`` strings: the JSON contract, to
            edit and judge again).

        Raises
        ------
        coalmine.NotFoundError
            No such judgment.
        """
        return json.loads(self._h.request(run_id, index))  # type: ignore[no-any-return]

    def result(self, run_id: str, index: int) -> JudgeResult:
        """The archived result of one judgment.

        Parameters
        ----------
        run_id : str
        index : int
            The judgment's 1-based index in the run.

        Returns
        -------
        JudgeResult

        Raises
        ------
        coalmine.NotFoundError
            No such judgment.
        """
        return JudgeResult(json.loads(self._h.result(run_id, index)), request=self._h.request(run_id, index))

    def run(self, run_id: str) -> RunInfo:
        """A run's metadata: spec, config, status, message, judgments, label.

        Parameters
        ----------
        run_id : str

        Returns
        -------
        RunInfo

        Raises
        ------
        coalmine.NotFoundError
            No such run.
        """
        return RunInfo._from_json(json.loads(self._h.run(run_id)), self._h)

    def report_html(self, run_id: str) -> str:
        """The HTML report of a run (the same page as the daemon's ``GET /runs/{id}/report``
        and ``coalmine report``); :meth:`RunInfo.save_html` writes it to a file and a
        :class:`RunInfo` shows it in a notebook.

        Parameters
        ----------
        run_id : str

        Returns
        -------
        str

        Raises
        ------
        coalmine.NotFoundError
            No such run.
        """
        return self._h.report_html(run_id)

    def rejudge(
        self,
        judge: Optional[JudgeName] = None,
        overrides: Optional[Dict[str, Any]] = None,
        progress: Union[bool, Callable[[int, int], None]] = False,
        threads: int = 0,
        **settings: Unpack[JudgeSettings],
    ) -> Comparison:
        """Judge every archived judgment again, in parallel with the GIL released.

        Parameters
        ----------
        judge : {"coalmine-v2", "coalmine-v1", "NetflixACAJudge-v1.0", "coalmine-seq-v2", "coalmine-seq-v1"}, optional
            Default: the judge each judgment was made with.
        overrides : dict, optional
            Settings merged into every metric's ``analysisConfigurations.canary``
            (``confidence``, ``tolerance``, ``direction``, ``nanStrategy``, ``effectSize``,
            ``outliers``, ``critical``, ``exact``…), ``metrics`` (patches by metric name) and
            ``groupWeights``, in the config's own (camelCase) keys.
        progress : bool or callable
            ``True`` shows progress (tqdm when installed); a callable gets ``(done, total)``.
        threads : int
            Worker threads (0: every core).
        **settings
            Shorthands merged into ``overrides`` (:class:`coalmine.JudgeSettings`):
            ``confidence=0.95``, ``effect_size={"allowedIncrease": 1.1}``,
            ``nan_strategy="replace"``…

        Returns
        -------
        Comparison
            Old and new verdicts, judgment by judgment and metric by metric.

        Raises
        ------
        coalmine.InvalidInputError
            An unknown judge or override, or an override the judge does not read.
        KeyboardInterrupt
            Ctrl-C stops the workers.
        """
        import time

        cb: Optional[Callable[[int, int], None]]
        if progress is True:
            cb = _progress_printer()
        elif callable(progress):
            cb = progress
        else:
            cb = None
        start = time.perf_counter()
        j, m = self._h.rejudge(judge, _overrides(overrides, settings), threads, cb)
        return Comparison(Table(j), Table(m), time.perf_counter() - start)

    def export_run(self, run_id: str, path: PathLike) -> int:
        """Write one run to a single Arrow IPC file (for sharing an incident's data).

        Parameters
        ----------
        run_id : str
        path : str or path
            The file to write.

        Returns
        -------
        int
            The number of judgments written.

        Raises
        ------
        coalmine.NotFoundError
            No such run.
        """
        return int(self._h.export_run(run_id, os.fspath(path)))

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>" + self.runs()._repr_html_(10)


def import_run(file: PathLike, archive: PathLike, *, force: bool = False) -> str:
    """Add a run exported with :meth:`Archive.export_run` to an archive.

    Parameters
    ----------
    file : str or path
        The exported Arrow IPC file.
    archive : str or path
        The archive's directory (created if needed).
    force : bool
        Replace the run if the archive already has it (otherwise that is an error).

    Returns
    -------
    str
        The run's id.

    Raises
    ------
    coalmine.CorruptArchiveError
        ``file`` is not an exported run, or its run id is not a run id.
    coalmine.InvalidInputError
        The archive already has the run and ``force`` is false.
    """
    return str(_internal.import_run(os.fspath(file), os.fspath(archive), force))


def write_fixture(
    path: PathLike,
    runs: int = 200,
    judgments: int = 5,
    metrics: int = 6,
    seed: int = 42,
    judge: Optional[JudgeName] = None,
) -> int:
    """Write a synthetic archive with known labels (as ``coalmine demo --archive``).

    Parameters
    ----------
    path : str or path
        The archive's directory.
    runs : int
        Runs: half healthy, half with a recorded regression in the canary.
    judgments : int
        Judgments per run.
    metrics : int
        Metrics per judgment.
    seed : int
        The random seed (the same seed writes the same archive).
    judge : {"coalmine-v2", "coalmine-v1", "NetflixACAJudge-v1.0", "coalmine-seq-v2", "coalmine-seq-v1"}, optional
        The judge the archived results were made with (default ``NetflixACAJudge-v1.0``).

    Returns
    -------
    int
        The number of judgments written.
    """
    return int(_internal.write_fixture(os.fspath(path), runs, judgments, metrics, seed, judge))
