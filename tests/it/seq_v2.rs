//! `coalmine-seq-v2`: the t-mixture e-process and the count dispersion against R
//! (`tests/data/seq_v2.R`, R 4.2.2 with sandwich 3.0-2: numerical integration of the
//! noncentral t likelihood ratio, `uniroot`, `sandwich::vcovHC` of a binomial `glm`; run as
//! `Rscript tests/data/seq_v2.R > tests/data/seq_v2.json`), and the judge's behaviour on the
//! series the issue names: autocorrelated, sharing a load, bursty.

use coalmine::judge::sequential::count::Dispersion;
use coalmine::judge::sequential::paired::{critical_t, ln_bayes_factor};
use coalmine::judge::sequential::{
    replay, Alternative, MetricType, SeqTest, SequentialParams, SequentialState,
};
use coalmine::synthetic::Synth;
use serde_json::{json, Value};

fn vectors() -> Value {
    serde_json::from_str(include_str!("../data/seq_v2.json")).unwrap()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap()
}

#[test]
fn t_mixture_bayes_factor_matches_r_numerical_integration() {
    let v = vectors();
    for c in v["bayes_factor"].as_array().unwrap() {
        let (t, n, g) = (f(c, "t"), f(c, "n"), f(c, "g"));
        let ours = ln_bayes_factor(t * t, n, g).exp();
        let r = f(c, "bf");
        assert!(
            (ours / r - 1.0).abs() < 1e-8,
            "t {t} n {n} g {g}: {ours} vs R {r}"
        );
    }
    for c in v["critical_t"].as_array().unwrap() {
        let (n, g, alpha) = (f(c, "n"), f(c, "g"), f(c, "alpha"));
        let ours = critical_t(n, g, alpha);
        let r = f(c, "t");
        assert!((ours - r).abs() < 1e-7, "n {n} g {g}: {ours} vs R {r}");
    }
}

#[test]
fn count_dispersion_matches_r_sandwich_hc1() {
    let v = vectors();
    for c in v["dispersion"].as_array().unwrap() {
        let nums = |k: &str| -> Vec<f64> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let (control, experiment) = (nums("control"), nums("experiment"));
        let mut d = Dispersion::default();
        for (c, e) in control.iter().zip(&experiment) {
            d.observe(*c, *e);
        }
        let ours = d.estimate();
        let r = f(c, "dispersion");
        // R's IRLS stops at a relative deviance change of 1e-14; the share is exact here
        assert!(
            (ours / r - 1.0).abs() < 1e-9,
            "burst {}: {ours} vs R {r}",
            c["burst"]
        );
        // the shrunk estimate the test divides by
        assert!(d.phi() >= 1.0);
        if c["burst"] == 5 {
            assert!(d.phi() > 3.0, "bursts are overdispersed: {}", d.phi());
        }
    }
}

/// `n` ticks of AR(1) log-latency per arm (σ 0.25, median 100), the canary × `mult`, both ×
/// a shared load `1 + shared·sin(2πt/360)`.
fn latency(seed: u64, n: usize, phi: f64, mult: f64, shared: f64) -> (Vec<f64>, Vec<f64>) {
    let mut g = Synth::new(seed);
    let innov = (1.0 - phi * phi).sqrt();
    let (mut a, mut b) = (g.normal(0.0, 1.0), g.normal(0.0, 1.0));
    let mut c = Vec::with_capacity(n);
    let mut e = Vec::with_capacity(n);
    for t in 0..n {
        a = phi * a + innov * g.normal(0.0, 1.0);
        b = phi * b + innov * g.normal(0.0, 1.0);
        let load = 1.0 + shared * (2.0 * std::f64::consts::PI * t as f64 / 360.0).sin();
        c.push(100.0 * load * (0.25 * a).exp());
        e.push(100.0 * load * mult * (0.25 * b).exp());
    }
    (c, e)
}

fn params(version_2: bool, metric_type: MetricType, looks: usize) -> SequentialParams {
    let mut p = if version_2 {
        SequentialParams::v2(metric_type)
    } else {
        SequentialParams::new(metric_type)
    };
    p.alternative = Alternative::Increase;
    p.t_opt = looks as f64;
    p.horizon_looks = looks as f64;
    p
}

/// The false-alarm guarantee where `coalmine-seq-v1` loses it: 300 healthy canaries with
/// AR(1) φ = 0.8 latency, every one of 1,080 looks monitored. At α = 0.01 the expected count
/// is at most 3; 9 or more would happen with probability 0.001 if the level held.
#[test]
fn autocorrelated_healthy_canaries_stay_within_alpha() {
    let (runs, looks) = (300, 1080);
    let mut v2_alarms = 0;
    let mut v1_alarms = 0;
    for seed in 0..runs {
        let (c, e) = latency(1000 + seed, looks, 0.8, 1.0, 0.0);
        let st = replay(params(true, MetricType::Continuous, looks), &c, &e).unwrap();
        v2_alarms += st.monitor.crossed.is_some() as usize;
        if seed < 100 {
            let st = replay(params(false, MetricType::Continuous, looks), &c, &e).unwrap();
            v1_alarms += st.monitor.crossed.is_some() as usize;
        }
    }
    assert!(
        v2_alarms < 9,
        "coalmine-seq-v2: {v2_alarms} of {runs} false alarms"
    );
    // the same data break the i.i.d. test (batchSize 1): the harness is not too easy
    assert!(v1_alarms >= 10, "coalmine-seq-v1: {v1_alarms} of 100");
}

/// Pairing: a +5 % canary under a load both arms share (±30 % over the hour) is found by
/// the paired test, which compares the arms look by look; the unpaired quantile test sees
/// two wide, overlapping distributions.
#[test]
fn a_shared_load_cancels_in_the_paired_test() {
    let looks = 1080;
    let (mut v2, mut v1) = (0, 0);
    let mut sizes = Vec::new();
    for seed in 0..20 {
        let (c, e) = latency(77 + seed, looks, 0.0, 1.05, 0.3);
        let st = replay(params(true, MetricType::Continuous, looks), &c, &e).unwrap();
        v2 += st.monitor.crossed.is_some() as usize;
        let SeqTest::Paired(p) = &st.test else {
            panic!("continuous metrics get the paired test")
        };
        // the tail test's batches are at least as large (each arm carries the load)
        let b = p.batch_size.unwrap();
        sizes.push(b);
        assert!(p.tail.as_ref().unwrap().batch_size >= b);
        let st = replay(params(false, MetricType::Continuous, looks), &c, &e).unwrap();
        v1 += st.monitor.crossed.is_some() as usize;
    }
    // the difference is i.i.d.: small batches (the warm-up's bound, from 30 looks, is
    // cautious: 2 or 3 typically)
    sizes.sort_unstable();
    assert!(sizes[10] <= 3, "batch sizes {sizes:?}");
    assert!(v2 >= 18, "coalmine-seq-v2 found {v2} of 20");
    assert!(v1 <= 10, "coalmine-seq-v1 found {v1} of 20");
}

/// Bursty errors (incidents logging a geometric number of errors, mean 5): the dispersion
/// keeps healthy canaries passing, and a doubled error rate is still found.
#[test]
fn bursty_error_counts_neither_fail_healthy_canaries_nor_hide_a_regression() {
    let looks = 1080;
    let bursty = |g: &mut Synth, rate: f64| -> f64 {
        let incidents = g.poisson(rate / 5.0) as usize;
        (0..incidents)
            .map(|_| (g.uniform().ln() / (0.8f64).ln()).floor() + 1.0)
            .sum()
    };
    let run = |seed: u64, mult: f64, v2: bool| -> bool {
        let mut g = Synth::new(seed);
        let mut st = SequentialState::new(params(v2, MetricType::Count, looks)).unwrap();
        for _ in 0..looks {
            let (c, e) = (bursty(&mut g, 2.0), bursty(&mut g, 2.0 * mult));
            st.update(&[c], &[e]).unwrap();
        }
        st.monitor.crossed.is_some()
    };
    let v2_false: usize = (0..100).map(|s| run(500 + s, 1.0, true) as usize).sum();
    let v1_false: usize = (0..100).map(|s| run(500 + s, 1.0, false) as usize).sum();
    let v2_found: usize = (0..20).map(|s| run(900 + s, 2.0, true) as usize).sum();
    assert!(
        v2_false <= 3,
        "coalmine-seq-v2: {v2_false} of 100 false alarms"
    );
    assert!(
        v1_false >= 20,
        "coalmine-seq-v1 (Poisson model): {v1_false} of 100"
    );
    assert_eq!(v2_found, 20, "errors ×2 found");
}

/// A whole judgment with `coalmine-seq-v2`: the report says how the test was run, and a
/// state survives JSON (a run persists it between ticks).
#[test]
fn a_judgment_reports_the_paired_test_and_its_state_round_trips() {
    let (c, e) = latency(5, 600, 0.5, 1.2, 0.0);
    let request = json!({"canaryConfig": {"name": "s", "judge": {"name": "coalmine-seq-v2"},
            "metrics": [{"name": "latency", "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics"},
              "groups": ["latency"], "analysisConfigurations": {"canary": {"direction": "increase"}}}],
            "classifier": {"groupWeights": {"latency": 100}}},
        "metricSetPairList": [{"name": "latency", "id": "p", "tags": {},
            "values": {"control": c, "experiment": e}, "scopes": {}}],
        "scoreThresholds": {"pass": 95, "marginal": 75}});
    let r = coalmine::judge::judge_value(&request, None).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["judgeName"], "coalmine-seq-v2");
    let m = &v["results"][0];
    assert_eq!(m["classification"], "High", "{m}");
    let t = &m["resultMetadata"]["test"];
    assert_eq!(t["kind"], "sequential-paired", "{t}");
    let p = &t["paired"];
    assert_eq!(p["scale"], "logRatio");
    assert_eq!(p["warmup"], 30);
    assert!(p["batchSize"].as_u64().unwrap() >= 2, "{p}");
    let cs = &t["confidenceSequence"];
    assert_eq!(cs["parameter"], "pairedRatio");
    assert!(cs["lower"].as_f64().unwrap() > 1.0 && cs["upper"].as_f64().unwrap() > 1.2 * 0.95);

    // v1-only settings are reported, not silently ignored
    let mut with_batch = request.clone();
    with_batch["canaryConfig"]["metrics"][0]["analysisConfigurations"]["canary"]["batchSize"] =
        json!(10);
    let r = coalmine::judge::judge_value(&with_batch, None).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    let warnings = v["results"][0]["resultMetadata"]["test"]["warnings"].to_string();
    assert!(
        warnings.contains("batchSize is a coalmine-seq-v1 setting"),
        "{warnings}"
    );
    // and a bad warm-up is refused with its path
    let mut bad = request.clone();
    bad["canaryConfig"]["metrics"][0]["analysisConfigurations"]["canary"]["warmup"] = json!(1);
    let err = coalmine::judge::judge_value(&bad, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("canaryConfig.metrics[0].analysisConfigurations.canary.warmup: warmup must be a whole number of looks from 2 to 10000, got 1"),
        "{err}"
    );

    let st = replay(params(true, MetricType::Continuous, 600), &c, &e).unwrap();
    let saved = serde_json::to_string(&st).unwrap();
    let back: SequentialState = serde_json::from_str(&saved).unwrap();
    assert_eq!(back, st);
    // a seq-v1 state saved before seq-v2 existed still loads as v1
    let mut v1_params = params(false, MetricType::Continuous, 600);
    v1_params.horizon_looks = 0.0;
    let v1 = replay(v1_params, &c, &e).unwrap();
    let mut old: Value = serde_json::to_value(&v1).unwrap();
    for k in ["version", "warmup", "horizonLooks", "tailQuantile"] {
        old["params"].as_object_mut().unwrap().remove(k);
    }
    let loaded: SequentialState = serde_json::from_value(old).unwrap();
    assert_eq!(loaded, v1);
}

/// A run's ticks judged through `judge_states` with `coalmine-seq-v2`: `looks` ticks of
/// `per_tick` new values per arm (uniform 40–60), latency × `factor`, cpu and memory equal.
fn run_ticks(looks: u64, per_tick: usize, factor: f64) -> Vec<Value> {
    use coalmine::judge::sequential::{judge_states, Horizon, SeqVersion};
    let mut u = Synth::new(23).into_uniforms();
    let metric = |name: &str| {
        json!({"name": name, "groups": ["g"], "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics"},
               "analysisConfigurations": {"canary": {"direction": "increase", "metricType": "continuous"}}})
    };
    let mut states = std::collections::BTreeMap::new();
    (0..looks)
        .map(|_| {
            let mut side =
                |f: f64| -> Vec<f64> { (0..per_tick).map(|_| (40.0 + 20.0 * u()) * f).collect() };
            let pair = |name: &str, c: Vec<f64>, e: Vec<f64>| {
                json!({"name": name, "id": name, "tags": {}, "values": {"control": c, "experiment": e}, "scopes": {}})
            };
            let pairs = json!([
                pair("latency", side(1.0), side(factor)),
                pair("cpu", side(1.0), side(1.0)),
                pair("memory", side(1.0), side(1.0)),
            ]);
            let request = json!({"canaryConfig": {"name": "r", "judge": {"name": "coalmine-seq-v2"},
                    "metrics": [metric("latency"), metric("cpu"), metric("memory")],
                    "classifier": {"groupWeights": {"g": 100}}},
                "metricSetPairList": pairs, "scoreThresholds": {"pass": 95, "marginal": 75}});
            let req = coalmine::judge::JudgeRequest::from_value(&request).unwrap();
            let r = judge_states(
                SeqVersion::V2,
                &req.canary_config,
                &req.metric_set_pair_list,
                &mut states,
                req.score_thresholds,
                Horizon::Looks(looks),
            )
            .unwrap();
            serde_json::to_value(&r).unwrap()
        })
        .collect()
}

/// A run of 120 ticks: the warm-up is a sixth of it (20 looks), the regression is flagged
/// after it, the healthy metrics pass with nothing left unjudged.
#[test]
fn a_run_flags_a_regression_after_its_warm_up() {
    let ticks = run_ticks(120, 6, 1.3);
    let first_high = ticks
        .iter()
        .position(|t| t["results"][0]["classification"] == "High")
        .expect("latency ×1.3 is flagged");
    assert!(
        first_high >= 19,
        "not before the warm-up's 20 looks: tick {first_high}"
    );
    let last = ticks.last().unwrap();
    assert_eq!(last["judgeName"], "coalmine-seq-v2");
    assert_eq!(
        last["results"][0]["resultMetadata"]["test"]["paired"]["warmup"],
        20
    );
    assert_eq!(last["score"]["classification"], "Fail");
    for m in &last["results"].as_array().unwrap()[1..] {
        assert_eq!(m["classification"], "Pass", "{m}");
        assert!(m.get("notJudged").is_none(), "{m}");
    }
}

/// A run too short for the test (4 ticks: no warm-up can finish) says from its first tick
/// that no metric can be judged, as inconclusive metrics (Kayenta clients read `Nodata`),
/// instead of passing a canary nobody looked at.
#[test]
fn a_run_too_short_to_judge_is_inconclusive() {
    let ticks = run_ticks(4, 6, 1.3);
    for t in &ticks {
        for m in t["results"].as_array().unwrap() {
            assert_eq!(m["classification"], "Nodata", "{m}");
            assert_eq!(m["inconclusive"], true, "{m}");
            let why = m["notJudged"].as_str().unwrap();
            assert!(
                why.starts_with("cannot be judged: with 4 paired looks in batches of 1 or more (warm-up) by its end"),
                "{why}"
            );
        }
        assert!(
            t["score"]["classificationReason"]
                .as_str()
                .unwrap()
                .starts_with("Inconclusive: 3 of 3 metrics could not be judged"),
            "{}",
            t["score"]
        );
    }
}

/// A plain judgment of 60 looks of error counts (2 per look a side): enough events to judge,
/// so the metric is judged (the projection of what the test can reach divides the events by
/// the dispersion, it does not replay them as one look), and a tripled rate is flagged.
#[test]
fn count_metrics_of_a_plain_judgment_are_judged() {
    let mut g = Synth::new(31);
    let mut counts = |rate: f64| -> Vec<f64> { (0..60).map(|_| g.poisson(rate)).collect() };
    let judge = |c: Vec<f64>, e: Vec<f64>| -> Value {
        let request = json!({"canaryConfig": {"name": "c", "judge": {"name": "coalmine-seq-v2"},
                "metrics": [{"name": "errors", "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics"},
                  "groups": ["errors"], "analysisConfigurations": {"canary": {"direction": "increase"}}}],
                "classifier": {"groupWeights": {"errors": 100}}},
            "metricSetPairList": [{"name": "errors", "id": "e", "tags": {},
                "values": {"control": c, "experiment": e}, "scopes": {}}],
            "scoreThresholds": {"pass": 95, "marginal": 75}});
        let r = coalmine::judge::judge_value(&request, None).unwrap();
        serde_json::to_value(&r).unwrap()["results"][0].clone()
    };
    let (c, e) = (counts(2.0), counts(2.0));
    let healthy = judge(c, e);
    assert_eq!(healthy["classification"], "Pass", "{healthy}");
    assert!(healthy.get("notJudged").is_none(), "{healthy}");
    assert!(
        healthy["resultMetadata"]["test"]["dispersionUpper"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    let (c, e) = (counts(2.0), counts(6.0));
    let regressed = judge(c, e);
    assert_eq!(regressed["classification"], "High", "{regressed}");
}
