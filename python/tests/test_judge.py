"""coalmine.judge: the same JSON as the CLI, Kayenta vectors, input handling."""

import copy
import json
import math
import subprocess
import typing

import numpy as np
import pytest

import coalmine


@pytest.fixture()
def example(root):
    return json.loads((root / "examples" / "checkout-canary.json").read_text())


def cli(coalmine_bin, root, *args, stdin=None):
    return subprocess.run(
        [coalmine_bin, *args], input=stdin, capture_output=True, text=True, cwd=root, check=False
    )


@pytest.mark.parametrize("judge_name", [None, "coalmine-v1", "NetflixACAJudge-v1.0", "coalmine-v2", "coalmine-seq-v2"])
def test_same_json_as_cli(coalmine_bin, root, judge_name):
    args = ["judge", "examples/checkout-canary.json"] + (["--judge", judge_name] if judge_name else [])
    out = cli(coalmine_bin, root, *args)
    assert out.returncode == 0, out.stderr
    from_cli = json.loads(out.stdout)
    for request in (root / "examples" / "checkout-canary.json", str(root / "examples" / "checkout-canary.json")):
        r = coalmine.judge(request, judge=judge_name)
        assert r.to_dict() == from_cli
    text = (root / "examples" / "checkout-canary.json").read_text()
    assert coalmine.judge(text, judge=judge_name).to_dict() == from_cli
    assert coalmine.judge(json.loads(text), judge=judge_name).to_dict() == from_cli


def test_result_accessors(example):
    assert coalmine.judge(example).judge_name == "coalmine-v2", "the default judge"
    r = coalmine.judge(example, judge="coalmine-v1")
    assert r.judge_name == "coalmine-v1"
    assert r.classification == "Fail" and r.score == 0.0
    assert r.reason.startswith("Canary Failed: The metric latency p99")
    assert r.group_scores["latency"] == 50.0
    m = r.metrics()[0]
    assert m["name"] == "latency p99" and m["classification"] == "High" and m["critical"]
    assert m["lower"] > 0 and m["p_value"] < 1e-6 and m["method"] in ("exact", "asymptotic")
    first = r.results[0]
    assert isinstance(first, coalmine.MetricResult)
    assert first.name == "latency p99" and first.classification == "High" and first.critical
    assert isinstance(first.test, coalmine.MannWhitneyTest)
    assert (first.test.lower, first.test.p_value, first.ratio) == (m["lower"], m["p_value"], m["ratio"])
    assert first.experiment_stats.count == m["n_experiment"] and first.control_stats.count == m["n_control"]
    assert first.test.effect_size.measure == "meanRatio"
    assert "latency p99" in r._repr_html_()
    assert "Fail" in repr(r)
    assert json.loads(r.to_json()) == r.to_dict()


def test_python_values_nan_and_numpy(example):
    """Python NaN floats and numpy arrays are accepted where JSON has numbers and "NaN"."""
    as_python = copy.deepcopy(example)
    for p in as_python["metricSetPairList"]:
        for side in ("control", "experiment"):
            p["values"][side] = np.array([math.nan if v == "NaN" else v for v in p["values"][side]])
    assert coalmine.judge(as_python) == coalmine.judge(example)


def test_kayenta_vectors(kayenta_vectors):
    n = 0
    for v in kayenta_vectors:
        if v["kind"] != "judge":
            continue
        got = coalmine.judge(v["input"], judge="NetflixACAJudge-v1.0").to_dict()
        want = copy.deepcopy(v["expected"])
        for r in want["results"]:
            r.pop("_debug", None)
        assert got == want, v["id"]
        n += 1
    assert n == 5


def test_errors_name_the_path(example, tmp_path):
    bad = copy.deepcopy(example)
    bad["metricSetPairList"][3]["values"]["control"][17] = "oops"
    with pytest.raises(coalmine.InvalidInputError, match=r"metricSetPairList\[3\]\.values\.control\[17\]: expected a number"):
        coalmine.judge(bad)
    with pytest.raises(coalmine.InvalidInputError, match="Unable to resolve canary judge 'nope'"):
        coalmine.judge(example, judge="nope")
    with pytest.raises(coalmine.NotFoundError, match="no such file"):
        coalmine.judge(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"canaryConfig": {},\n "metricSetPairList": [,]}')
    with pytest.raises(coalmine.InvalidInputError, match="line 2"):
        coalmine.judge(broken)
    with pytest.raises(coalmine.InvalidInputError, match="expected a dict"):
        coalmine.judge(42)  # type: ignore[arg-type]
    with pytest.raises(coalmine.InvalidInputError, match="keys must be strings"):
        coalmine.judge({1: 2})  # type: ignore[dict-item]
    # a value that is not JSON: the message names where it is
    odd = copy.deepcopy(example)
    odd["canaryConfig"]["metrics"][1]["analysisConfigurations"] = {"canary": {"when": object()}}
    with pytest.raises(coalmine.InvalidInputError,
                       match=r"^request\.canaryConfig\.metrics\[1\]\.analysisConfigurations\.canary\.when: cannot convert object to JSON"):
        coalmine.judge(odd)
    nested_key = copy.deepcopy(example)
    nested_key["metricSetPairList"][2]["tags"] = {7: "x"}
    with pytest.raises(coalmine.InvalidInputError, match=r"^request\.metricSetPairList\[2\]\.tags: dictionary keys must be strings"):
        coalmine.judge(nested_key)


def test_python_values_become_kayenta_json(example):
    """Non-finite floats become Kayenta's strings; numpy scalars and tuples are numbers and lists."""
    as_python = copy.deepcopy(example)
    pair = as_python["metricSetPairList"][0]
    control = pair["values"]["control"]
    pair["values"]["control"] = tuple(np.float32(v) if v != "NaN" else math.nan for v in control)
    pair["values"]["experiment"] = [np.int64(round(v)) if v != "NaN" else np.float64("nan") for v in pair["values"]["experiment"]]
    rounded = copy.deepcopy(example)
    rounded["metricSetPairList"][0]["values"]["control"] = [float(np.float32(v)) if v != "NaN" else "NaN" for v in control]
    rounded["metricSetPairList"][0]["values"]["experiment"] = [round(v) if v != "NaN" else "NaN" for v in example["metricSetPairList"][0]["values"]["experiment"]]
    assert coalmine.judge(as_python) == coalmine.judge(rounded)


def test_judges():
    assert coalmine.judges() == ["coalmine-v2", "coalmine-v1", "NetflixACAJudge-v1.0", "coalmine-seq-v2", "coalmine-seq-v1"]
    # the Literal type lists the judges this build knows
    assert list(typing.get_args(coalmine.types.JudgeName)) == coalmine.judges()


def test_sequential_results_are_typed(example):
    r = coalmine.judge(example, judge="coalmine-seq-v1")
    assert r.judge_name == "coalmine-seq-v1"
    for m in r.results:
        assert isinstance(m.test, coalmine.stats.SequentialReport)
        assert m.test.kind in ("sequential-count", "sequential-quantile")
        assert m.test.threshold > 1 and 0 < m.test.p_value <= 1
    row = r.metrics()[0]
    assert row["p_value"] == r.results[0].test.p_value and row["lower"] is None


def test_v2_results_are_typed_and_paired_on_kayenta_scopes():
    """coalmine-v2: the statistics arrive as V2Report/V2Test; arms with aligned Kayenta scopes
    are compared pairwise, so a load swing shared by both arms cancels and a 10 % regression
    under it is caught (the unpaired test, the pairing switched off, misses it)."""
    rng = np.random.default_rng(4)
    load = 1 + 0.3 * np.sin(np.arange(60) / 60 * 2 * np.pi)
    control = (120 * load * np.exp(rng.normal(0, 0.08, 60))).tolist()
    experiment = (132 * load * np.exp(rng.normal(0, 0.08, 60))).tolist()
    scope = {"startTimeMillis": 1_700_000_000_000, "stepMillis": 60_000}
    request = {
        "canaryConfig": {
            "name": "v2",
            "judge": {"name": "coalmine-v2"},
            "metrics": [{
                "name": "latency", "query": {"type": "sql", "sql": "SELECT 1"}, "groups": ["g"],
                "analysisConfigurations": {"canary": {"direction": "increase"}},
            }],
            "classifier": {"groupWeights": {"g": 100}},
        },
        "metricSetPairList": [{
            "name": "latency", "id": "p", "tags": {},
            "values": {"control": control, "experiment": experiment},
            "scopes": {"control": scope, "experiment": scope},
        }],
        "scoreThresholds": {"pass": 95, "marginal": 75},
    }
    r = coalmine.judge(request)
    assert r.judge_name == "coalmine-v2"
    m = r.results[0]
    assert isinstance(m.test, coalmine.V2Report) and not m.inconclusive
    assert m.test.pairing == "paired" and m.classification == "High"
    location = m.test.tests[0]
    assert isinstance(location, coalmine.V2Test)
    assert location.method == "paired-log-ratio-hac" and location.lower is not None
    assert location.lower < 1.1 < location.upper, (location.lower, location.upper)
    assert location.dependence is not None and location.dependence["effectiveN"] > 1
    assert r.metrics()[0]["method"] == "paired-log-ratio-hac"
    request["canaryConfig"]["judge"]["judgeConfigurations"] = {"pairing": "off"}
    unpaired = coalmine.judge(request).results[0]
    assert unpaired.test.pairing == "unpaired" and unpaired.classification != "High"


def test_nan_fields_read_as_floats():
    """Kayenta's "NaN" strings become float NaN in the typed results; to_dict keeps them."""
    request = {
        "canaryConfig": {"metrics": [{"name": "m", "analysisConfigurations": {"canary": {}}}]},
        "metricSetPairList": [{"name": "m", "values": {"control": ["NaN", "NaN"], "experiment": ["NaN"]}}],
        "scoreThresholds": {"pass": 95, "marginal": 75},
    }
    r = coalmine.judge(request)
    m = r.results[0]
    assert m.classification == "Nodata" and m.experiment_stats.count == 0
    assert m.ratio is None or isinstance(m.ratio, float)
    assert json.loads(r.to_json()) == r.to_dict()


def test_an_slo_gate_is_reported_and_fails_a_breaching_canary(example):
    req = copy.deepcopy(example)
    p99 = next(m for m in req["canaryConfig"]["metrics"] if m["name"] == "latency p99")
    p99["analysisConfigurations"]["canary"]["slo"] = {"max": 100, "statistic": "quantile:0.9"}
    r = coalmine.judge(req)
    m = r.results[0]
    assert isinstance(m.slo, coalmine.SloReport)
    assert m.slo.objective == "max" and m.slo.threshold == 100 and m.slo.statistic == "quantile:0.9"
    assert m.slo.canary.state == "breached" and m.slo.canary.bound > 100
    assert m.classification == "High" and m.classification_reason.startswith("SLO breached")
    assert r.results[1].slo is None


def test_an_error_budget_gate_reports_burn_rates():
    """Errors at 2 % against a 99.9 % objective burn its budget at 20x (hand: 0.02 / 0.001)."""
    rng = np.random.default_rng(7)
    canary = list(0.02 + rng.normal(0, 0.001, 30))
    baseline = list(0.001 + rng.normal(0, 0.0001, 30))
    req = {
        "canaryConfig": {
            "metrics": [
                {
                    "name": "error ratio",
                    "groups": ["errors"],
                    "analysisConfigurations": {
                        "canary": {"direction": "increase", "errorBudget": {"objective": 0.999, "maxBurnRate": 10}}
                    },
                }
            ]
        },
        "metricSetPairList": [{"name": "error ratio", "values": {"control": baseline, "experiment": canary}}],
        "scoreThresholds": {"pass": 95, "marginal": 75},
    }
    m = coalmine.judge(req).results[0]
    assert isinstance(m.error_budget, coalmine.BurnReport)
    assert m.error_budget.canary.estimate == pytest.approx(np.mean(canary) / 0.001)
    assert m.error_budget.canary.state == "breached" and m.error_budget.baseline.state == "met"
    assert m.classification == "High" and m.classification_reason.startswith("Error budget burning too fast")


def test_a_traffic_split_guard_reports_the_share():
    """45/55 request counts where 50/50 is expected: a mismatch, with the share's confidence sequence."""
    rng = np.random.default_rng(11)
    n = rng.poisson(6000, 30)
    canary = rng.binomial(n, 0.45).astype(float)
    req = {
        "canaryConfig": {
            "trafficSplit": {"metric": "requests"},
            "metrics": [{"name": "requests", "groups": ["traffic"], "analysisConfigurations": {"canary": {}}}],
        },
        "metricSetPairList": [
            {"name": "requests", "values": {"control": list(n - canary), "experiment": list(canary)}}
        ],
        "scoreThresholds": {"pass": 95, "marginal": 75},
    }
    r = coalmine.judge(req)
    split = r.traffic_split
    assert isinstance(split, coalmine.SplitReport)
    assert split.state == "mismatch" and split.expected_share == 0.5
    assert split.observed_share == pytest.approx(canary.sum() / n.sum())
    assert split.lower < split.observed_share < split.upper < 0.5
    assert r.reason.startswith("Inconclusive: Traffic split mismatch on requests")


def _histogram_request(rng, shift, minutes=20, requests=1000):
    """Per-minute Prometheus-default buckets of log-normal latencies, as ``le`` series."""
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.inf]
    les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]

    def arm(factor):
        lat = 0.1 * np.exp(rng.normal(0.0, 0.6, size=(minutes, requests))) * factor
        return np.stack([(lat <= b).sum(axis=1) for b in bounds], axis=1).astype(float)

    control, experiment = arm(1.0), arm(shift)
    pairs = [
        {"name": "latency", "id": f"latency-{le}", "tags": {"le": le},
         "values": {"control": control[:, j], "experiment": experiment[:, j]}}
        for j, le in enumerate(les)
    ]
    request = {
        "canaryConfig": {
            "name": "histograms",
            "metrics": [{"name": "latency", "query": {"type": "sql", "sql": "SELECT 1"}, "groups": ["latency"],
                         "analysisConfigurations": {"canary": {"direction": "increase",
                                                               "histogram": {"quantile": 0.99}}}}],
            "classifier": {"groupWeights": {"latency": 100}},
        },
        "metricSetPairList": pairs,
        "scoreThresholds": {"pass": 95, "marginal": 75},
    }
    return request, control, experiment


def test_histogram_metrics_are_judged_on_their_buckets():
    rng = np.random.default_rng(7)
    request, control, experiment = _histogram_request(rng, 1.2)
    r = coalmine.judge(request)
    assert len(r.results) == 1 and r.results[0].tags == {}
    m = r.results[0]
    assert m.classification == "High", m.reason
    test = m.test
    assert isinstance(test, coalmine.V2Report) and test.pairing == "histogram"
    (tail,) = test.tests
    assert tail.name == "tail" and tail.method in ("cmh", "quasi-cmh")
    # the requests numpy drew, and the slow ones above the 0.5 s bound the test chose
    assert tail.requests == (control[:, -1].sum(), experiment[:, -1].sum())
    assert tail.bound == 0.5 and 0.5 in tail.scored
    slow = lambda h: (h[:, -1] - h[:, 6]).sum()  # noqa: E731
    assert tail.events == (slow(control), slow(experiment))
    assert tail.gate_measure == "quantile:0.99" and tail.gate_value > 1.0

    seq = coalmine.judge(request, judge="coalmine-seq-v2").results[0]
    assert seq.classification == "High"
    assert isinstance(seq.test, coalmine.stats.SequentialReport)
    assert seq.test.kind == "sequential-histogram" and seq.test.metric_type == "histogram"
    assert seq.test.events_experiment == slow(experiment)

    same, _, _ = _histogram_request(rng, 1.0)
    assert coalmine.judge(same).results[0].classification == "Pass"
