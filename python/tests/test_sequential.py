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
        bad.update(experiment=rng.poisson(6, 10), control=rng.poisson(2, 10))
        ok.update(experiment=rng.poisson(2, 10), control=rng.poisson(2, 10))
    assert bad.decision().label == "High" and bad.e_value >= 100
    assert ok.decision().label != "High" and ok.p_value > 0.01
    assert 0 < bad.p_value <= 0.01
    report = bad.report()
    assert report.kind == "sequential-count" and report.metric_type == "count"
    assert report.events_experiment > report.events_control
    assert report.confidence_sequence is not None and report.confidence_sequence.parameter == "rateRatio"
    assert report.confidence_sequence.lower > 1, "the canary's error rate is higher"
    assert report.crossed_at_look == bad.decision().crossed_at_look is not None


def test_state_round_trips_through_json():
    t = SequentialTest("continuous", "either", quantiles=[0.5, 0.9])
    t.update(experiment=[2.0, 3.0, 4.0], control=[1.0, 2.0, 3.0])
    again = SequentialTest.from_json(t.to_json())
    assert again.decision() == t.decision() and again.report() == t.report()
    report = t.report()
    assert [q.p for q in report.quantiles] == [0.5, 0.9]
    assert report.kind == "sequential-quantile" and report.n_experiment == report.n_control == 3
    assert "SequentialTest(" in repr(t)
    with pytest.raises(coalmine.InvalidInputError, match="not a sequential state"):
        SequentialTest.from_json("{}")


def test_path_matches_feeding_by_hand():
    rng = np.random.default_rng(2)
    c, e = rng.normal(100, 10, 500), rng.normal(112, 10, 500)
    es, ps, crossed = sequential_path(experiment=e, control=c, look_size=25, alpha=0.01)
    t = SequentialTest(alpha=0.01)
    for k in range(20):
        t.update(experiment=e[25 * k : 25 * k + 25], control=c[25 * k : 25 * k + 25])
        assert math.isclose(t.e_value, es[k], rel_tol=1e-12)
    assert crossed is not None and es[crossed - 1] >= 100
    assert all(0 < p <= 1 for p in ps)
    path = sequential_path(experiment=e, control=c, look_size=25, alpha=0.01)
    assert path.e_values == es and path.crossed_at_look == crossed


def test_experiment_and_control_are_keyword_only():
    """The old positional order (control, experiment) fails loudly instead of being swapped."""
    t = SequentialTest()
    with pytest.raises(TypeError):
        t.update([1.0], [2.0])  # type: ignore[misc]
    with pytest.raises(TypeError):
        sequential_path([1.0], [2.0])  # type: ignore[misc]
    # the compiled module says the same
    with pytest.raises(TypeError):
        coalmine._internal.sequential_path([1.0], [2.0])  # type: ignore[misc]
    # the arms are not swapped: a higher canary is an increase
    up = sequential_path(experiment=[10.0] * 200, control=[1.0] * 200, look_size=20, alpha=0.01)
    down = sequential_path(experiment=[1.0] * 200, control=[10.0] * 200, look_size=20, alpha=0.01)
    assert up.crossed_at_look is not None and down.crossed_at_look is None


def test_bad_settings():
    with pytest.raises(coalmine.InvalidInputError, match="metric_type"):
        SequentialTest("latency")
    with pytest.raises(coalmine.InvalidInputError, match="alpha"):
        SequentialTest(alpha=1.5)
