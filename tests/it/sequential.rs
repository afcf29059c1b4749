//! `coalmine-seq-v1` against independent implementations (fixtures written by
//! `scripts/seq_oracles.py`, see `tests/data/README.md`) and its judge-level behaviour.
//!
//! Oracles and tolerances:
//! * savvi 0.3.1 `InhomogeneousPoissonProcess`: `ln odds` within 1e-9 (both compute the same
//!   log-gamma sums), running p-value within 1e-9 relative, running log-rate-ratio interval
//!   within 1e-4 (savvi solves it with cvxpy/Clarabel to the solver's default tolerance; we
//!   solve the likelihood equation to machine precision).
//! * confseq 0.0.11: `beta_binomial_log_mixture` within 1e-9; `quantile_ab_p_value` as
//!   `ln E` within 1e-6 (confseq locates the mixture minimiser by Brent to 20 bits; we solve
//!   for it); the fixed-quantile confidence bounds exactly (same order statistics).

use coalmine::judge::sequential::{
    quantile_bounds, two_sided_ln_e, Alternative, BetaMixture, CountTest, LogHistogram, MetricType,
    SequentialParams, SequentialState, Side, Tail,
};
use coalmine::judge::{judge_value, Label};
use serde_json::{json, Value};

use coalmine::synthetic::Synth;

use crate::util::{data_path, num};

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data_path(name)).unwrap()).unwrap()
}

fn hist(values: &[f64]) -> LogHistogram {
    let mut h = LogHistogram::new();
    for &v in values {
        h.insert(v);
    }
    h
}

#[test]
fn count_e_process_matches_savvi_inhomogeneous_poisson_process() {
    let doc = load("seq_savvi.json");
    let tol = &doc["tolerances"];
    let (tol_odds, tol_p, tol_rr) = (
        num(&tol["ln_odds_abs"]),
        num(&tol["p_value_rel"]),
        num(&tol["log_rr_abs"]),
    );
    let mut checked = 0;
    for case in doc["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let (rho, k, alpha) = (num(&case["rho"]), num(&case["k"]), num(&case["alpha"]));
        let mut test = CountTest::new(rho, k, &[Tail::Increase, Tail::Decrease], alpha);
        let mut p_value: f64 = 1.0;
        for (step, (ev, want)) in case["events"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["expected"].as_array().unwrap())
            .enumerate()
        {
            test.add(num(&ev[0]), num(&ev[1]));
            test.tighten_cs();
            let ln_odds = test.ln_e_two_sided();
            p_value = p_value.min((-ln_odds).exp());
            let ctx = format!("{id} step {step}");
            assert!(
                (ln_odds - num(&want["odds"]).ln()).abs() < tol_odds,
                "{ctx}: ln odds {ln_odds}"
            );
            assert!(
                (p_value / num(&want["p_value"]) - 1.0).abs() < tol_p,
                "{ctx}: p {p_value}"
            );
            let lo = test.rate_ratio(test.theta_lower).ln();
            let hi = test.rate_ratio(test.theta_upper).ln();
            let (wlo, whi) = (num(&want["log_rr_lower"]), num(&want["log_rr_upper"]));
            assert!(
                (lo - wlo).abs() < tol_rr || (lo.is_infinite() && lo == wlo),
                "{ctx}: lower {lo} vs {wlo}"
            );
            assert!(
                (hi - whi).abs() < tol_rr || (hi.is_infinite() && hi == whi),
                "{ctx}: upper {hi} vs {whi}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 200, "{checked}");
}

#[test]
fn beta_mixture_matches_confseq_beta_binomial_log_mixture() {
    let doc = load("seq_confseq.json");
    let tol = num(&doc["tolerances"]["log_mixture_abs"]);
    let cases = doc["log_mixture"].as_array().unwrap();
    for c in cases {
        let (p, n, k, t_opt, a) = (
            num(&c["p"]),
            num(&c["n"]),
            num(&c["k"]),
            num(&c["t_opt"]),
            num(&c["alpha_opt"]),
        );
        for (side, key) in [
            (Side::Two, "two"),
            (Side::Greater, "greater"),
            (Side::Less, "less"),
        ] {
            let mine = BetaMixture::confseq_quantile(p, t_opt, a, side).ln_e(k, n);
            let want = num(&c[key]);
            assert!(
                (mine - want).abs() < tol * want.abs().max(1.0),
                "{c} {key}: {mine} vs {want}"
            );
        }
    }
    assert_eq!(cases.len(), 240);
}

#[test]
fn two_sample_quantile_test_matches_confseq_quantile_ab_p_value() {
    let doc = load("seq_confseq.json");
    let tol = num(&doc["tolerances"]["ln_e_abs"]);
    let mut rejected = 0;
    for c in doc["quantile_ab"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let a: Vec<f64> = c["control"].as_array().unwrap().iter().map(num).collect();
        let b: Vec<f64> = c["experiment"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let (p, t_opt, alpha_opt) = (num(&c["p"]), num(&c["t_opt"]), num(&c["alpha_opt"]));
        for (m, want) in c["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(c["p_values"].as_array().unwrap())
        {
            let m = m.as_u64().unwrap() as usize;
            let ln_e = two_sided_ln_e(&hist(&a[..m]), &hist(&b[..m]), p, t_opt, alpha_opt);
            let want = num(want);
            if want < 1.0 {
                assert!(
                    (ln_e - -want.ln()).abs() < tol,
                    "{id} m={m}: ln E {ln_e} vs {}",
                    -want.ln()
                );
                rejected += (want < 0.05) as usize;
            } else {
                assert!(ln_e <= 1e-9, "{id} m={m}: ln E {ln_e} but confseq's p is 1");
            }
        }
    }
    assert!(
        rejected >= 8,
        "the fixtures exercise small p-values ({rejected})"
    );
}

#[test]
fn quantile_confidence_sequence_matches_confseq_fixed_quantile_bounds() {
    let doc = load("seq_confseq.json");
    let cs = &doc["quantile_cs"];
    let data: Vec<f64> = cs["data"].as_array().unwrap().iter().map(num).collect();
    let mut bounded = 0;
    for c in cs["cases"].as_array().unwrap() {
        let (p, t, alpha, t_opt) = (
            num(&c["p"]),
            c["t"].as_u64().unwrap() as usize,
            num(&c["alpha"]),
            num(&c["t_opt"]),
        );
        let b = quantile_bounds(&hist(&data[..t]), p, alpha, t_opt);
        // Deviation: where confseq caps a radius because its boundary is never crossed, it
        // still reports X₍₁₎ (X₍t₎); the set {x : G(x) < ln(1/α)} is unbounded there.
        if c["lower_capped"].as_bool().unwrap() {
            assert_eq!(b.lower_point, f64::NEG_INFINITY, "{c}");
        } else {
            assert_eq!(b.lower_point, num(&c["lower"]), "{c}");
        }
        if c["upper_capped"].as_bool().unwrap() {
            assert_eq!(b.upper_point, f64::INFINITY, "{c}");
        } else {
            assert_eq!(b.upper_point, num(&c["upper"]), "{c}");
        }
        bounded += (b.lower_point.is_finite() && b.upper_point.is_finite()) as usize;
        assert!(b.lower <= b.lower_point && b.upper >= b.upper_point);
    }
    assert!(bounded >= 12, "{bounded}");
}

// ---------------------------------------------------------------------------------------
// Judge behaviour

fn request(metrics: Value, pairs: Value, judge_cfg: Value) -> Value {
    json!({"canaryConfig": {"judge": {"name": "coalmine-seq-v1", "judgeConfigurations": judge_cfg}, "metrics": metrics},
           "metricSetPairList": pairs, "scoreThresholds": {"pass": 95, "marginal": 75}})
}

#[test]
fn judge_flags_a_latency_regression_and_an_error_spike_and_passes_the_rest() {
    let mut u = Synth::new(3).into_uniforms();
    let lat = |u: &mut dyn FnMut() -> f64, f: f64| -> Vec<f64> {
        (0..300).map(|_| f * (80.0 + 40.0 * u())).collect()
    };
    let (lc, le) = (lat(&mut u, 1.0), lat(&mut u, 1.15));
    let (oc, oe) = (lat(&mut u, 1.0), lat(&mut u, 1.0));
    // Poisson-ish error counts by thinning: baseline ~2/interval, canary ~6/interval
    let counts = |u: &mut dyn FnMut() -> f64, rate: f64| -> Vec<f64> {
        (0..300)
            .map(|_| (0..20).filter(|_| u() < rate / 20.0).count() as f64)
            .collect()
    };
    let (ec, ee) = (counts(&mut u, 2.0), counts(&mut u, 6.0));
    let metrics = json!([
        {"name": "latency", "groups": ["perf"], "analysisConfigurations": {"canary": {"direction": "increase", "quantiles": [0.5, 0.9]}}},
        {"name": "other", "groups": ["perf"], "analysisConfigurations": {"canary": {"direction": "either"}}},
        {"name": "errors", "groups": ["errors"], "analysisConfigurations": {"canary": {"direction": "increase", "critical": true}}},
    ]);
    let pairs = json!([
        {"name": "latency", "id": "1", "values": {"control": lc, "experiment": le}},
        {"name": "other", "id": "2", "values": {"control": oc, "experiment": oe}},
        {"name": "errors", "id": "3", "values": {"control": ec, "experiment": ee}},
    ]);
    let r = judge_value(&request(metrics, pairs, json!({})), None).unwrap();
    assert_eq!(r.judge_name, "coalmine-seq-v1");
    let labels: Vec<&str> = r
        .results
        .iter()
        .map(|m| m.classification.as_str())
        .collect();
    assert_eq!(labels, ["High", "Pass", "High"]);
    assert_eq!(r.score.classification, "Fail");
    assert!(r
        .score
        .classification_reason
        .contains("errors was classified as High (Critical)"));
    let v = serde_json::to_value(&r).unwrap();
    let t = &v["results"][2]["resultMetadata"]["test"];
    assert_eq!(t["kind"], "sequential-count");
    assert_eq!(t["metricTypeInferred"], true);
    assert_eq!(t["alpha"], json!(0.01 / 3.0));
    assert!(num(&t["pValue"]) < 0.01 / 3.0 && num(&t["eValue"]) >= 300.0);
    let cs = &t["confidenceSequence"];
    assert!(
        num(&cs["lower"]) > 1.5 && num(&cs["upper"]) < 6.0,
        "rate ratio ≈ 3: {cs}"
    );
    let t = &v["results"][0]["resultMetadata"]["test"];
    assert_eq!(t["kind"], "sequential-quantile");
    assert_eq!(t["quantiles"].as_array().unwrap().len(), 2);
    assert!(num(&t["crossedAtLook"]) < 300.0);
}

#[test]
fn judge_result_equals_a_run_fed_tick_by_tick() {
    let mut u = Synth::new(5).into_uniforms();
    let c: Vec<f64> = (0..500).map(|_| 50.0 + 10.0 * u()).collect();
    let e: Vec<f64> = (0..500).map(|_| 51.0 + 10.0 * u()).collect();
    let metrics = json!([{"name": "m", "analysisConfigurations": {"canary": {"direction": "increase", "metricType": "continuous"}}}]);
    let pairs = json!([{"name": "m", "values": {"control": c, "experiment": e}}]);
    let req = request(metrics, pairs, json!({"alpha": 0.05}));
    let r = judge_value(&req, None).unwrap();
    let parsed = coalmine::judge::JudgeRequest::from_value(&req).unwrap();
    let params = coalmine::judge::sequential::params_for(
        coalmine::judge::sequential::SeqVersion::V1,
        &parsed.canary_config,
        &parsed.metric_set_pair_list,
        0,
        None,
    )
    .unwrap();
    assert_eq!(params.alpha, 0.05);
    assert_eq!(params.alternative, Alternative::Increase);
    let mut state = SequentialState::new(params).unwrap();
    for i in 0..500 {
        // a run persists its state between ticks
        let saved = serde_json::to_string(&state).unwrap();
        state = serde_json::from_str(&saved).unwrap();
        state.update(&c[i..i + 1], &e[i..i + 1]).unwrap();
    }
    let from_run = serde_json::to_value(state.report()).unwrap();
    let mut from_judge =
        serde_json::to_value(&r).unwrap()["results"][0]["resultMetadata"]["test"].clone();
    from_judge["metricTypeInferred"] = json!(false);
    assert_eq!(from_judge, from_run);
    assert_eq!(r.results[0].classification, state.decision().label.as_str());
}

#[test]
fn a_large_run_tick_split_across_threads_equals_metric_by_metric_updates() {
    // 40 metrics x 2 arms x 2,600 new values = 208,000 points per tick: judge_states splits
    // the tick across the cores (from 200,000 points); every metric's result must equal its
    // own state fed the same values alone, tick after tick.
    const M: usize = 40;
    const N: usize = 2_600;
    let mut u = Synth::new(11).into_uniforms();
    let metrics: Vec<Value> = (0..M)
        .map(|i| json!({"name": format!("m{i}"), "groups": ["g"],
            "analysisConfigurations": {"canary": {"direction": "either", "metricType": "continuous"}}}))
        .collect();
    let mut run_states = std::collections::BTreeMap::new();
    let mut alone: Vec<SequentialState> = Vec::new();
    for tick in 0..3 {
        let values: Vec<(Vec<f64>, Vec<f64>)> = (0..M)
            .map(|i| {
                let shift = if i % 7 == 3 { 4.0 } else { 0.0 };
                let c = (0..N).map(|_| 50.0 + 10.0 * u()).collect();
                let e = (0..N).map(|_| 50.0 + shift + 10.0 * u()).collect();
                (c, e)
            })
            .collect();
        let pairs: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, (c, e))| json!({"name": format!("m{i}"), "values": {"control": c, "experiment": e}}))
            .collect();
        let req = coalmine::judge::JudgeRequest::from_value(&request(
            json!(metrics),
            json!(pairs),
            json!({}),
        ))
        .unwrap();
        let (config, pairs) = (&req.canary_config, &req.metric_set_pair_list);
        let r = coalmine::judge::sequential::judge_states(
            coalmine::judge::sequential::SeqVersion::V1,
            config,
            pairs,
            &mut run_states,
            req.score_thresholds,
            coalmine::judge::sequential::Horizon::Unknown,
        )
        .unwrap();
        if tick == 0 {
            alone = (0..M)
                .map(|i| {
                    let p = coalmine::judge::sequential::params_for(
                        coalmine::judge::sequential::SeqVersion::V1,
                        config,
                        pairs,
                        i,
                        None,
                    );
                    SequentialState::new(p.unwrap()).unwrap()
                })
                .collect();
        }
        assert_eq!(run_states.len(), M);
        let json = serde_json::to_value(&r).unwrap();
        for (i, (state, (c, e))) in alone.iter_mut().zip(&values).enumerate() {
            state.update(c, e).unwrap();
            let mut test = json["results"][i]["resultMetadata"]["test"].clone();
            test["metricTypeInferred"] = json!(false);
            assert_eq!(
                test,
                serde_json::to_value(state.report()).unwrap(),
                "tick {tick} m{i}"
            );
            assert_eq!(r.results[i].name, format!("m{i}"));
            assert_eq!(r.results[i].classification, state.decision().label.as_str());
        }
    }
    let flagged: Vec<usize> = (0..M)
        .filter(|&i| alone[i].decision().label != Label::Pass)
        .collect();
    assert!(
        flagged.contains(&3) && flagged.contains(&10),
        "shifted metrics flagged: {flagged:?}"
    );
}

#[test]
fn direction_increase_never_fails_a_better_canary_and_nodata_follows_kayenta() {
    let mut u = Synth::new(9).into_uniforms();
    let c: Vec<f64> = (0..400).map(|_| 100.0 + 10.0 * u()).collect();
    let e: Vec<f64> = (0..400).map(|_| 80.0 + 10.0 * u()).collect();
    let metrics = json!([
        {"name": "inc", "analysisConfigurations": {"canary": {"direction": "increase"}}},
        {"name": "either", "analysisConfigurations": {"canary": {"direction": "either"}}},
        {"name": "empty", "analysisConfigurations": {"canary": {"mustHaveData": true}}},
    ]);
    let pairs = json!([
        {"name": "inc", "values": {"control": c, "experiment": e}},
        {"name": "either", "values": {"control": c, "experiment": e}},
        {"name": "empty", "values": {"control": ["NaN"], "experiment": []}},
    ]);
    let r = judge_value(&request(metrics, pairs, json!({})), None).unwrap();
    let labels: Vec<&str> = r
        .results
        .iter()
        .map(|m| m.classification.as_str())
        .collect();
    assert_eq!(labels, ["Pass", "Low", "NodataFailMetric"]);
}

#[test]
fn invalid_settings_name_their_json_path() {
    let metrics =
        json!([{"name": "m", "analysisConfigurations": {"canary": {"quantiles": [0.5, 1.5]}}}]);
    let pairs = json!([{"name": "m", "values": {"control": [1.0], "experiment": [2.0]}}]);
    let err = judge_value(&request(metrics, pairs.clone(), json!({})), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("canaryConfig.metrics[0].analysisConfigurations.canary:")
            && err.contains("quantiles"),
        "{err}"
    );
    let metrics = json!([{"name": "m"}]);
    let err = judge_value(&request(metrics, pairs, json!({"alpha": 2})), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "canaryConfig.judge.judgeConfigurations.alpha: alpha must be in (0, 1), got 2"
    );
}

#[test]
fn count_metrics_use_the_configured_traffic_share() {
    // Canary has 1 of 4 instances: 250 vs 750 events is exactly its share, not a regression.
    let c = vec![75.0; 10];
    let e = vec![25.0; 10];
    let metrics =
        json!([{"name": "req", "analysisConfigurations": {"canary": {"direction": "either"}}}]);
    let pairs = json!([{"name": "req", "values": {"control": c, "experiment": e}}]);
    let even = judge_value(&request(metrics.clone(), pairs.clone(), json!({})), None).unwrap();
    assert_eq!(even.results[0].classification, "Low");
    let shared = judge_value(
        &request(
            metrics,
            pairs,
            json!({"canaryInstances": 1, "baselineInstances": 3}),
        ),
        None,
    )
    .unwrap();
    assert_eq!(shared.results[0].classification, "Pass");
    let v = serde_json::to_value(&shared).unwrap();
    assert_eq!(
        v["results"][0]["resultMetadata"]["test"]["trafficShare"],
        json!(0.25)
    );
}

#[test]
fn state_api_early_pass_needs_the_minimum_duration_and_a_tight_sequence() {
    let mut params = SequentialParams::new(MetricType::Count);
    params.alternative = Alternative::Increase;
    let mut s = SequentialState::new(params).unwrap();
    assert!(!s.excludes_regression());
    for _ in 0..200 {
        s.update(&[100.0], &[100.0]).unwrap();
    }
    assert!(
        s.excludes_regression(),
        "20,000 events a side bound the rate ratio well below 1.1"
    );
    assert!(!s.early_pass(60.0, 300.0));
    assert!(s.early_pass(600.0, 300.0));
    assert_eq!(s.decision().label, Label::Pass);
}

/// Ticks of a run: `looks` ticks of `per_tick` new values per arm, the canary `factor`×
/// slower, judged through `judge_states` with the run's horizon. Returns each tick's result.
fn run_ticks(
    judge_cfg: Value,
    looks: u64,
    per_tick: usize,
    factor: f64,
) -> Vec<coalmine::judge::CanaryJudgeResult> {
    use coalmine::judge::sequential::{judge_states, Horizon};
    let mut u = Synth::new(17).into_uniforms();
    let metrics = json!([
        {"name": "latency", "groups": ["g"], "analysisConfigurations": {"canary": {"direction": "increase", "metricType": "continuous"}}},
        {"name": "cpu", "groups": ["g"], "analysisConfigurations": {"canary": {"direction": "increase", "metricType": "continuous"}}},
        {"name": "memory", "groups": ["g"], "analysisConfigurations": {"canary": {"direction": "increase", "metricType": "continuous"}}}
    ]);
    let mut states = std::collections::BTreeMap::new();
    (0..looks)
        .map(|_| {
            let mut side =
                |f: f64| -> Vec<f64> { (0..per_tick).map(|_| (40.0 + 20.0 * u()) * f).collect() };
            let pairs = json!([
                {"name": "latency", "values": {"control": side(1.0), "experiment": side(factor)}},
                {"name": "cpu", "values": {"control": side(1.0), "experiment": side(1.0)}},
                {"name": "memory", "values": {"control": side(1.0), "experiment": side(1.0)}}
            ]);
            let req = coalmine::judge::JudgeRequest::from_value(&request(
                metrics.clone(),
                pairs,
                judge_cfg.clone(),
            ))
            .unwrap();
            judge_states(
                coalmine::judge::sequential::SeqVersion::V1,
                &req.canary_config,
                &req.metric_set_pair_list,
                &mut states,
                req.score_thresholds,
                Horizon::Looks(looks),
            )
            .unwrap()
        })
        .collect()
}

/// The run: 3 ticks of 6 values a side (18 by the end), latency 4.5× slower, three
/// metrics (α/3 each). With `tOpt` from the run (18 per arm) the regression is caught; with
/// the old fixed default of 1000 the test cannot reach 1/α in 18 values, and the result says
/// so from the first tick on instead of passing silently.
#[test]
fn sequential_defaults_fit_the_run_and_an_unreachable_threshold_is_reported() {
    let ticks = run_ticks(json!({}), 3, 6, 4.5);
    let last = serde_json::to_value(ticks.last().unwrap()).unwrap();
    let latency = &last["results"][0];
    assert_eq!(latency["classification"], "High", "{latency}");
    assert_eq!(
        latency["resultMetadata"]["test"]["tOpt"],
        json!(18.0),
        "6 values a tick × 3 ticks"
    );
    assert_eq!(last["score"]["classification"], "Fail");
    for m in &last["results"].as_array().unwrap()[1..] {
        assert_eq!(m["classification"], "Pass");
        assert!(
            m.get("notJudged").is_none(),
            "18 values a side can reach 1/α: {m}"
        );
        assert_eq!(m["resultMetadata"]["test"]["reach"]["nControl"], 18);
    }

    let ticks = run_ticks(json!({"tOpt": 1000}), 3, 6, 4.5);
    for (i, t) in ticks.iter().enumerate() {
        let v = serde_json::to_value(t).unwrap();
        let latency = &v["results"][0];
        assert_eq!(latency["classification"], "Pass", "tick {i}: {latency}");
        let why = latency["notJudged"].as_str().unwrap();
        assert!(
            why.starts_with("cannot be judged: with 18 values per arm by its end, the largest e-value this test can reach is"),
            "tick {i}: {why}"
        );
        assert!(why.contains("< 1/α = 300"), "{why}");
        assert!(
            latency["resultMetadata"]["test"]["reach"]["maxEValue"]
                .as_f64()
                .unwrap()
                < 300.0
        );
    }
    // one value a side per tick, three ticks: nothing can be judged, whatever tOpt is
    let ticks = run_ticks(json!({}), 3, 1, 4.5);
    let v = serde_json::to_value(&ticks[0]).unwrap();
    assert!(
        v["results"][0]["notJudged"]
            .as_str()
            .unwrap()
            .starts_with("cannot be judged: with 3 values per arm"),
        "{v}"
    );
}
