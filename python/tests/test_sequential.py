"""coalmine.stats sequential tests (the engine behind coalmine-seq-v1)."""

import math

import numpy as np
import pytest

from coalmine.stats import SequentialTest, sequential_path
import coalmine


def test_counts_detect_a_tripled_error_rate_and_not_a_healthy_one():
    rng = np.random.default_rng(1)
    bad = SequentialTest("count", "increase", alpha=0.01)
    ok = SequentialTest("count", "increase", alpha=0.01)
    for _ in range(60):
        bad.update(rng.poisson(2, 10), rng.poisson(6, 10))
        ok.update(rng.poisson(2, 10), rng.poisson(2, 10))
    assert bad.decision()["label"] == "High" and bad.e_value >= 100
    assert ok.decision()["label"] != "High" and ok.p_value > 0.01
    assert 0 < bad.p_value <= 0.01


def test_state_round_trips_through_json():
    t = SequentialTest("continuous", "either", quantiles=[0.5, 0.9])
    t.update([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    again = SequentialTest.from_json(t.to_json())
    assert again.decision() == t.decision() and again.report() == t.report()
    with pytest.raises(coalmine.InvalidInputError, match="not a sequential state"):
        SequentialTest.from_json("{}")


def test_path_matches_feeding_by_hand():
    rng = np.random.default_rng(2)
    c, e = rng.normal(100, 10, 500), rng.normal(112, 10, 500)
    es, ps, crossed = sequential_path(c, e, look_size=25, alpha=0.01)
    t = SequentialTest(alpha=0.01)
    for k in range(20):
        t.update(c[25 * k : 25 * k + 25], e[25 * k : 25 * k + 25])
        assert math.isclose(t.e_value, es[k], rel_tol=1e-12)
    assert crossed is not None and es[crossed - 1] >= 100
    assert all(0 < p <= 1 for p in ps)


def test_bad_settings():
    with pytest.raises(coalmine.InvalidInputError, match="metric_type"):
        SequentialTest("latency")
    with pytest.raises(coalmine.InvalidInputError, match="alpha"):
        SequentialTest(alpha=1.5)
