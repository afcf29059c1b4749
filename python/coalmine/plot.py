"""Plots of canary data (matplotlib, optional: ``pip install matplotlib``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, Optional

from coalmine._judge import MannWhitneyTest

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from coalmine.archive import Archive

__all__ = ["pair", "scores"]


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use(matplotlib.get_backend() or "Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError as e:  # pragma: no cover - exercised without matplotlib
        raise ImportError("coalmine.plot needs matplotlib: pip install matplotlib") from e


def pair(archive: "Archive", run_id: str, index: int, metric: str) -> "Figure":
    """Canary vs baseline of one metric in one judgment: over time, and as distributions
    with the judgment's confidence interval of the shift (when the judge reports one).

    Parameters
    ----------
    archive : Archive
    run_id : str
    index : int
        The judgment's 1-based index in the run.
    metric : str
        The metric's name.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        The judgment has no values of ``metric``.
    ImportError
        matplotlib is not installed.
    """
    plt = _plt()
    rows = archive.pairs(run_id, metric).to_pylist()
    rows = [r for r in rows if r["judgment"] == index]
    if not rows:
        raise ValueError(f"no values of metric {metric!r} in judgment {index} of run {run_id!r}")
    result = archive.result(run_id, index)
    metric_result = next((r for r in result.results if r.name == metric), None)
    fig, (ax_t, ax_d) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    colors = {"control": "#4c72b0", "experiment": "#dd8452"}
    names = {"control": "baseline", "experiment": "canary"}
    for scope in ("control", "experiment"):
        pts = sorted((r["position"], r["ts"], r["value"]) for r in rows if r["scope"] == scope)
        xs = [t if t is not None else p for p, t, _ in pts]
        ys = [v for _, _, v in pts]
        ax_t.plot(xs, ys, ".-", color=colors[scope], label=names[scope], alpha=0.85)
        clean = [v for v in ys if v == v]
        if clean:
            ax_d.hist(clean, bins=20, alpha=0.55, color=colors[scope], label=names[scope])
    cls = metric_result.classification if metric_result else "?"
    ax_t.set_title(f"{metric} — {cls} (judgment {index})")
    ax_t.legend(loc="best")
    test = metric_result.test if metric_result else None
    if isinstance(test, MannWhitneyTest) and all(math.isfinite(v) for v in (test.lower, test.upper, test.estimate)):
        ax_d.set_title(f"shift {test.estimate:+.3g}, CI [{test.lower:+.3g}, {test.upper:+.3g}]")
    else:
        ax_d.set_title("distributions")
    ax_d.legend(loc="best")
    fig.tight_layout()
    figure: "Figure" = fig
    return figure


def scores(archive: "Archive", run_id: Optional[str] = None) -> "Figure":
    """Judgment scores over time: one line per run (or just ``run_id``), with the 95/75
    thresholds.

    Parameters
    ----------
    archive : Archive
    run_id : str, optional
        Only this run.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        matplotlib is not installed.
    """
    plt = _plt()
    rows = archive.judgments().to_pylist()
    if run_id is not None:
        rows = [r for r in rows if r["run_id"] == run_id]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    by_run: Dict[str, list] = {}  # type: ignore[type-arg]
    for r in rows:
        by_run.setdefault(r["run_id"], []).append((r["judgment"], r["score"]))
    for rid, pts in by_run.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ".-", alpha=0.6 if len(by_run) > 1 else 1.0, label=rid if len(by_run) <= 8 else None)
    ax.axhline(95, color="green", lw=0.8, ls="--")
    ax.axhline(75, color="red", lw=0.8, ls="--")
    ax.set_xlabel("judgment")
    ax.set_ylabel("score")
    ax.set_ylim(-5, 105)
    if len(by_run) <= 8:
        ax.legend(loc="lower left")
    fig.tight_layout()
    out: "Figure" = fig
    return out
