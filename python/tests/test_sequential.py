"""coalmine.stats sequential tests (the engine behind coalmine-seq-v1 and -v2)."""

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


def _ar1(rng, n, phi):
    x = np.empty(n)
    x[0] = rng.normal()
    for t in range(1, n):
        x[t] = phi * x[t - 1] + math.sqrt(1 - phi * phi) * rng.normal()
    return x


def test_seq_v2_keeps_its_level_on_autocorrelated_series_where_v1_does_not():
    """AR(1) phi = 0.8 per-tick latency, A/A, every one of 1,080 looks watched (numpy's
    generator: data independent of the Rust tests')."""
    rng = np.random.default_rng(8)
    v1 = v2 = 0
    for _ in range(40):
        c = 100 * np.exp(0.25 * _ar1(rng, 1080, 0.8))
        e = 100 * np.exp(0.25 * _ar1(rng, 1080, 0.8))
        v1 += sequential_path(experiment=e, control=c, t_opt=1080).crossed_at_look is not None
        path = sequential_path(experiment=e, control=c, t_opt=1080, judge="coalmine-seq-v2")
        v2 += path.crossed_at_look is not None
    assert v2 <= 2, f"coalmine-seq-v2: {v2} of 40 false alarms"
    assert v1 >= 5, f"coalmine-seq-v1: {v1} of 40"


def test_seq_v2_reports_its_paired_test_and_round_trips():
    rng = np.random.default_rng(9)
    t = SequentialTest("continuous", "increase", t_opt=600, judge="coalmine-seq-v2")
    for _ in range(600):
        c = rng.lognormal(math.log(100), 0.25)
        t.update(experiment=[1.2 * rng.lognormal(math.log(100), 0.25)], control=[c])
    report = t.report()
    assert report.kind == "sequential-paired" and t.decision().label == "High"
    assert report.paired is not None and report.paired.scale == "logRatio"
    assert report.paired.batch_size is not None and report.paired.batches > 10
    assert report.confidence_sequence is not None and report.confidence_sequence.parameter == "pairedRatio"
    assert report.confidence_sequence.lower > 1.0
    again = SequentialTest.from_json(t.to_json())
    assert again.report() == report
    with pytest.raises(coalmine.InvalidInputError, match="judge"):
        SequentialTest(judge="coalmine-seq-v3")  # type: ignore[arg-type]


def test_seq_v2_counts_are_scaled_by_their_overdispersion():
    rng = np.random.default_rng(10)
    t = SequentialTest("count", "increase", judge="coalmine-seq-v2")
    for _ in range(300):
        bursts = lambda: int(sum(rng.geometric(0.2, rng.poisson(0.4))))  # noqa: E731
        t.update(experiment=[bursts()], control=[bursts()])
    report = t.report()
    assert report.dispersion is not None and report.dispersion > 3
    assert report.dispersion_upper is not None and report.dispersion_upper >= report.dispersion * 0.9
