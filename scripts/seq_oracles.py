#!/usr/bin/env python3
"""Generate the oracle fixtures of coalmine-seq-v1 from independent implementations.

    .venv/bin/python scripts/seq_oracles.py            # writes tests/data/seq_*.json

* tests/data/seq_savvi.json   -- savvi's InhomogeneousPoissonProcess (Lindon & Malek 2022)
  on fixed event-count sequences: odds (the e-value), running p-value, running confidence
  interval of the log rate ratio, at every step.
* tests/data/seq_confseq.json -- confseq's beta-binomial mixture (two- and one-sided),
  quantile_ab_p_value (Howard & Ramdas 2022, Thm 5) on prefixes of fixed samples, and the
  fixed-quantile confidence bounds of confseq's demo/quantiles.py.

Samples are rounded to 8 significant bits so that they are bucket edges of coalmine's
log-histogram: coalmine then sees exactly the values confseq sees. The output is
deterministic (fixed seeds); the package versions are recorded in each file.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def q8(x: float) -> float:
    """Round to 8 significant bits (a bucket lower edge of coalmine's histogram)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    m, e = math.frexp(x)
    return math.ldexp(round(m * 256) / 256, e)


def fnum(x: float):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


# --------------------------------------------------------------------------- savvi

def savvi_cases():
    from savvi.multinomial import InhomogeneousPoissonProcess

    specs = [
        # id, rho, k, alpha, steps, control rate, canary rate, seed
        ("aa-even", 0.5, 100.0, 0.05, 40, 5.0, 5.0, 1),
        ("canary-x1.6", 0.5, 100.0, 0.01, 40, 5.0, 8.0, 2),
        ("share-0.2", 0.2, 50.0, 0.05, 40, 8.0, 2.0, 3),
        ("sparse-x3", 0.25, 100.0, 0.05, 60, 0.6, 0.6, 4),
        ("canary-x0.5-k10", 0.5, 10.0, 0.1, 30, 6.0, 3.0, 5),
    ]
    cases = []
    for cid, rho, k, alpha, steps, rc, re_, seed in specs:
        rng = np.random.default_rng(seed)
        if cid == "sparse-x3":
            re_ = rc * rho / (1 - rho) * 3.0  # canary events three times what its share predicts
        events = [[int(rng.poisson(rc)), int(rng.poisson(re_))] for _ in range(steps)]
        test = InhomogeneousPoissonProcess(alpha, np.array([1.0 - rho, rho]), np.array([[-1.0, 1.0]]), k=k)
        seq = test.batch(np.array(events, dtype=np.int64))
        expected = [
            {
                "n": int(s.n),
                "odds": float(s.odds),
                "p_value": float(s.p_value[0]),
                "log_rr_lower": fnum(float(s.conf_int[0, 0])),
                "log_rr_upper": fnum(float(s.conf_int[0, 1])),
            }
            for s in seq
        ]
        cases.append({"id": cid, "rho": rho, "k": k, "alpha": alpha, "events": events, "expected": expected})
    return cases


# --------------------------------------------------------------------------- confseq

def confseq_mixture_cases():
    from confseq import boundaries

    out = []
    for p in (0.5, 0.9, 0.99, 0.1):
        for n in (10, 200, 5000):
            for t_opt in (100, 1000):
                for alpha_opt in (0.05, 0.01):
                    for dk in (-3.0, -0.5, 0.0, 0.7, 4.0):
                        sd = math.sqrt(n * p * (1 - p))
                        k = min(max(p * n + dk * sd, 0.0), float(n))
                        v = p * (1 - p) * n
                        v_opt = p * (1 - p) * t_opt
                        s = k - p * n
                        two = boundaries.beta_binomial_log_mixture(s, v, v_opt, p, 1 - p, alpha_opt, False)
                        greater = boundaries.beta_binomial_log_mixture(s, v, v_opt, p, 1 - p, alpha_opt, True)
                        less = boundaries.beta_binomial_log_mixture(-s, v, v_opt, 1 - p, p, alpha_opt, True)
                        out.append({"p": p, "n": n, "k": k, "t_opt": t_opt, "alpha_opt": alpha_opt,
                                    "two": float(two), "greater": float(greater), "less": float(less)})
    return out


def samples(kind: str, n: int, rng) -> list[float]:
    if kind == "lognormal":
        return [q8(x) for x in rng.lognormal(math.log(100.0), 0.3, n)]
    if kind == "lognormal+10%":
        return [q8(x * 1.10) for x in rng.lognormal(math.log(100.0), 0.3, n)]
    if kind == "lognormal+20%":
        return [q8(x * 1.20) for x in rng.lognormal(math.log(100.0), 0.3, n)]
    if kind == "pareto":
        return [q8(10.0 * (1.0 + x)) for x in rng.pareto(3.0, n)]
    if kind == "pareto-heavier":
        return [q8(10.0 * (1.0 + x)) for x in rng.pareto(2.2, n)]
    if kind == "integers":
        return [float(x) for x in rng.integers(1, 21, n)]
    if kind == "integers+2":
        return [float(x + 2) for x in rng.integers(1, 21, n)]
    raise ValueError(kind)


def confseq_ab_cases():
    from confseq import quantiles

    specs = [
        # id, control kind, canary kind, n, p, t_opt, alpha_opt, seed
        ("aa-median", "lognormal", "lognormal", 400, 0.5, 1000, 0.05, 11),
        ("shift10-median", "lognormal", "lognormal+10%", 2000, 0.5, 1000, 0.05, 12),
        ("shift20-median", "lognormal", "lognormal+20%", 600, 0.5, 200, 0.05, 16),
        ("shift10-p90", "lognormal", "lognormal+10%", 3000, 0.9, 500, 0.01, 13),
        ("tail-p99", "pareto", "pareto-heavier", 2000, 0.99, 2000, 0.05, 14),
        ("ties-median", "integers", "integers+2", 1500, 0.5, 100, 0.05, 15),
    ]
    out = []
    for cid, kc, ke, n, p, t_opt, alpha_opt, seed in specs:
        rng = np.random.default_rng(seed)
        a, b = samples(kc, n, rng), samples(ke, n, rng)
        prefixes = sorted({10, n // 20, n // 8, n // 4, n // 2, n})
        pv = [
            float(quantiles.quantile_ab_p_value(np.array(a[:m]), np.array(b[:m]), p, t_opt, alpha_opt))
            for m in prefixes
        ]
        out.append({"id": cid, "control": a, "experiment": b, "p": p, "t_opt": t_opt, "alpha_opt": alpha_opt,
                    "prefixes": prefixes, "p_values": pv})
    return out


def confseq_cs_cases():
    """demo/quantiles.py `fixed_quantile_confidence_bounds`, as order statistics."""
    from confseq import boundaries

    out = []
    rng = np.random.default_rng(21)
    data = samples("lognormal", 3000, rng)
    for p in (0.5, 0.9, 0.99):
        for t in (20, 100, 700, 3000):
            for alpha, t_opt in ((0.05, 1000), (0.001, 200)):
                values = sorted(data[:t])
                v, v_opt = p * (1 - p) * t, p * (1 - p) * t_opt
                lower_r = boundaries.beta_binomial_mixture_bound(v, alpha, v_opt, 1 - p, p, alpha, False) / t
                upper_r = boundaries.beta_binomial_mixture_bound(v, alpha, v_opt, p, 1 - p, alpha, False) / t
                li = math.floor(t * (p - lower_r) + 1)
                ui = math.ceil(t * (p + upper_r))
                lower = -math.inf if li < 1 else values[li - 1]
                upper = math.inf if ui > t else values[ui - 1]
                # confseq caps a radius at p (resp. 1 - p) when its boundary is never crossed
                # (s_upper_bound = v/g); the sequence is then unbounded on that side.
                out.append({"p": p, "t": t, "alpha": alpha, "t_opt": t_opt,
                            "lower_radius": lower_r, "upper_radius": upper_r,
                            "lower_capped": bool(abs(lower_r - p) < 1e-12),
                            "upper_capped": bool(abs(upper_r - (1 - p)) < 1e-12),
                            "lower_index": li, "upper_index": ui, "lower": fnum(lower), "upper": fnum(upper)})
    return {"data": data, "cases": out}


def versions(*pkgs: str) -> dict:
    v = {p: version(p) for p in pkgs}
    v["python"] = platform.python_version()
    return v


def main() -> int:
    out_dir = ROOT / "tests" / "data"
    savvi_doc = {
        "generator": "scripts/seq_oracles.py",
        "versions": versions("savvi", "numpy", "cvxpy", "clarabel"),
        "mapping": (
            "savvi.multinomial.InhomogeneousPoissonProcess(alpha, rho=[1-share, share], "
            "weights=[[-1, 1]], k) fed one [control, canary] count pair per step via batch(); "
            "coalmine CountTest(traffic_share=share, concentration=k, cs_alpha=alpha): "
            "odds = exp(ln_e_two_sided), p_value = running min of min(1, 1/odds), "
            "log_rr bounds = ln rate_ratio(theta_lower/theta_upper) (running intersection)"
        ),
        "tolerances": {"ln_odds_abs": 1e-9, "p_value_rel": 1e-9, "log_rr_abs": 1e-4},
        "cases": savvi_cases(),
    }
    (out_dir / "seq_savvi.json").write_text(json.dumps(savvi_doc, indent=1) + "\n")
    confseq_doc = {
        "generator": "scripts/seq_oracles.py",
        "versions": versions("confseq", "numpy"),
        "mapping": {
            "log_mixture": (
                "boundaries.beta_binomial_log_mixture(s=k-p*n, v=p(1-p)n, v_opt=p(1-p)t_opt, g=p, h=1-p, "
                "alpha_opt, is_one_sided) = coalmine BetaMixture::confseq_quantile(p, t_opt, alpha_opt, "
                "Two|Greater).ln_e(k, n); 'less' is g=1-p, h=p at s=p*n-k = Side::Less"
            ),
            "quantile_ab": (
                "quantiles.quantile_ab_p_value(control[:m], experiment[:m], p, t_opt, alpha_opt) = "
                "min(1, exp(-two_sided_ln_e(hist(control[:m]), hist(experiment[:m]), p, t_opt, alpha_opt)))"
            ),
            "quantile_cs": (
                "demo/quantiles.py fixed_quantile_confidence_bounds(values[:t], p, t_opt, alpha, alpha_opt=alpha) "
                "= coalmine quantile_bounds(hist(values[:t]), p, alpha, t_opt).lower_point/upper_point"
            ),
        },
        "tolerances": {"log_mixture_abs": 1e-9, "ln_e_abs": 1e-6, "cs": "exact"},
        "log_mixture": confseq_mixture_cases(),
        "quantile_ab": confseq_ab_cases(),
        "quantile_cs": confseq_cs_cases(),
    }
    (out_dir / "seq_confseq.json").write_text(json.dumps(confseq_doc) + "\n")
    print("wrote tests/data/seq_savvi.json, tests/data/seq_confseq.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
