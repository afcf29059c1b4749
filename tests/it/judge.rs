//! Judge behaviour beyond Kayenta's vectors: coalmine-v1 semantics, parallelism.

use coalmine::judge::{run_with, JudgeKind, JudgeRequest, Parallelism};
use serde_json::json;

/// A request with `metrics` metrics; every third is shifted up 5% in the canary, and some
/// series are constant (Kayenta's noise path).
fn request(metrics: usize, points: usize) -> JudgeRequest {
    let mut rng = coalmine::synthetic::Synth::new(12345);
    let mut next = move || rng.uniform();
    let mut configs = Vec::new();
    let mut pairs = Vec::new();
    for i in 0..metrics {
        let name = format!("m{i}");
        configs.push(json!({"name": name, "groups": [format!("g{}", i % 4)],
                            "analysisConfigurations": {"canary": {"direction": "either"}}}));
        let shift = if i % 3 == 0 { 1.05 } else { 1.0 };
        let (c, e): (Vec<f64>, Vec<f64>) = if i % 10 == 7 {
            (vec![3.0; points], vec![4.0; points])
        } else {
            (
                (0..points).map(|_| 100.0 + 10.0 * next()).collect(),
                (0..points)
                    .map(|_| (100.0 + 10.0 * next()) * shift)
                    .collect(),
            )
        };
        pairs.push(
            json!({"name": name, "id": format!("p{i}"), "values": {"control": c, "experiment": e}}),
        );
    }
    let v = json!({"canaryConfig": {"metrics": configs}, "metricSetPairList": pairs,
                   "scoreThresholds": {"pass": 95, "marginal": 75}});
    JudgeRequest::from_value(&v).unwrap()
}

#[test]
fn parallel_judgments_equal_sequential_ones() {
    let r = request(60, 1_000); // 120,000 points: above the threshold for threads
    for kind in JudgeKind::ALL {
        let a = run_with(
            kind,
            &r.canary_config,
            &r.metric_set_pair_list,
            r.score_thresholds,
            Parallelism::Sequential,
        )
        .unwrap();
        let b = run_with(
            kind,
            &r.canary_config,
            &r.metric_set_pair_list,
            r.score_thresholds,
            Parallelism::Auto,
        )
        .unwrap();
        assert_eq!(a, b, "{}", kind.name());
        assert_eq!(a.results.len(), 60);
        assert!(
            a.results
                .iter()
                .enumerate()
                .all(|(i, m)| m.id == format!("p{i}")),
            "request order kept"
        );
        // every shifted metric is caught, constant-but-different ones too
        for (i, m) in a.results.iter().enumerate() {
            if i % 3 == 0 || i % 10 == 7 {
                assert_eq!(m.classification, "High", "{} m{i}", kind.name());
            }
        }
    }
}

/// The repro: one value a side, direction increase, the default judge.
fn small_request(control: &[f64], experiment: &[f64]) -> serde_json::Value {
    json!({"canaryConfig": {"name": "n1", "metrics": [{"name": "latency p50",
              "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics"}, "groups": ["latency"],
              "analysisConfigurations": {"canary": {"direction": "increase"}}}],
              "classifier": {"groupWeights": {"latency": 100}}},
           "metricSetPairList": [{"name": "latency p50", "id": "p", "tags": {},
              "values": {"control": control, "experiment": experiment}, "scopes": {}}],
           "scoreThresholds": {"pass": 95, "marginal": 75}})
}

fn judged(control: &[f64], experiment: &[f64], judge: Option<&str>) -> serde_json::Value {
    let r = coalmine::judge::judge_value(&small_request(control, experiment), judge).unwrap();
    serde_json::to_value(&r).unwrap()
}

/// No verdict without significance (coalmine judges): with too few values for the exact
/// test to reach 98 %, a metric whose interval lies above the no-change band is not High:
/// it passes, saying why it could not be judged. Achieved confidences are R's
/// (`wilcox.test(x, y, conf.int = TRUE, conf.level = 0.98)` warns "Requested conf.level not
/// achievable" and reaches 0 % at n = 1, 2/3 at n = 2, 0.9 at n = 3: 1 − 2/C(2n, n)).
#[test]
fn coalmine_v1_never_flags_a_metric_its_test_cannot_back() {
    for (n, achieved) in [
        (1usize, 0.0),
        (2, 1.0 - 2.0 / 6.0),
        (3, 0.9),
        (4, 1.0 - 2.0 / 70.0),
    ] {
        let control: Vec<f64> = (0..n).map(|i| 18.75 + 0.01 * i as f64).collect();
        let experiment: Vec<f64> = (0..n).map(|i| 19.0 + 0.01 * i as f64).collect();
        let v = judged(&control, &experiment, Some("coalmine-v1"));
        let m = &v["results"][0];
        assert_eq!(m["classification"], "Pass", "n = {n}: {m}");
        let t = &m["resultMetadata"]["test"];
        assert!(
            (t["achievedConfidence"].as_f64().unwrap() - achieved).abs() < 1e-12,
            "n = {n}: {t}"
        );
        let why = m["notJudged"].as_str().unwrap();
        assert_eq!(m["classificationReason"], why);
        assert!(
            why.starts_with(&format!("insufficient data: n = {n} a side; the exact test needs at least 5 values a side to reach 98%")),
            "{why}"
        );
        assert_eq!(v["score"]["classification"], "Pass");
        // Kayenta's judge is a port: it flags the same data (n ≥ 2; its root finder fails at
        // n = 1: "Error"), as Kayenta does
        let k = judged(&control, &experiment, Some("NetflixACAJudge-v1.0"));
        let want = if n == 1 { "Error" } else { "High" };
        assert_eq!(k["results"][0]["classification"], want, "n = {n}");
        assert!(k["results"][0].get("notJudged").is_none());
    }
    // 5 a side reach 98 % (1 − 2/252): the same shift is High
    let v = judged(
        &[18.75, 18.76, 18.77, 18.78, 18.79],
        &[19.0, 19.01, 19.02, 19.03, 19.04],
        Some("coalmine-v1"),
    );
    assert_eq!(v["results"][0]["classification"], "High", "{v}");
    assert!(v["results"][0].get("notJudged").is_none());

    // ties: the normal approximation, which with 2 a side cannot get below p = 0.02 either
    let v = judged(&[18.75, 18.75], &[19.0, 19.0], Some("coalmine-v1"));
    let m = &v["results"][0];
    assert_eq!(m["classification"], "Pass", "{m}");
    assert_eq!(m["resultMetadata"]["test"]["method"], "asymptotic");
    assert!(
        m["notJudged"].as_str().unwrap().starts_with("insufficient data: n = 2 a side with ties; no ranking of these values gives a p-value below 0.02"),
        "{m}"
    );
    // ties with enough data are judged
    let c: Vec<f64> = (0..30).map(|i| 18.0 + (i % 5) as f64).collect();
    let e: Vec<f64> = (0..30).map(|i| 21.0 + (i % 5) as f64).collect();
    let v = judged(&c, &e, Some("coalmine-v1"));
    assert_eq!(v["results"][0]["classification"], "High", "{v}");
    assert_eq!(
        v["results"][0]["resultMetadata"]["test"]["method"],
        "asymptotic"
    );

    // the table shows it
    let r = coalmine::judge::judge_value(&small_request(&[18.75], &[19.0]), Some("coalmine-v1"))
        .unwrap();
    let table = coalmine::report::judge_table(&r, None);
    assert!(table.contains("Pass (not judged)"), "{table}");
    assert!(
        table.contains("not judged: latency p50: insufficient data: n = 1 a side"),
        "{table}"
    );
}

/// The default judge is `coalmine-v2`: one value a side is not a Pass that nobody could
/// have backed but an inconclusive metric (Kayenta clients read `Nodata`), and the
/// judgment's verdict says it rests on it.
#[test]
fn the_default_judge_calls_one_value_a_side_inconclusive() {
    let v = judged(&[18.75], &[19.0], None);
    assert_eq!(v["judgeName"], "coalmine-v2", "{v}");
    let m = &v["results"][0];
    assert_eq!(m["classification"], "Nodata", "{m}");
    assert_eq!(m["inconclusive"], true, "{m}");
    let why = m["notJudged"].as_str().unwrap();
    assert_eq!(
        why,
        "too little data to judge latency p50: 1 values in the baseline and 1 in the canary, below the 5 values a side a test needs"
    );
    // 20 a side of a clear shift, without a trend (a trend reads as autocorrelation), are
    // judged
    let noise = |i: usize| 0.01 * ((i * 7) % 5) as f64;
    let c: Vec<f64> = (0..20).map(|i| 18.75 + noise(i)).collect();
    let e: Vec<f64> = (0..20).map(|i| 19.0 + noise(i + 3)).collect();
    let v = judged(&c, &e, None);
    assert_eq!(v["results"][0]["classification"], "High", "{v}");
    assert!(v["results"][0].get("notJudged").is_none(), "{v}");
}

/// A flagged interval whose p-value is not below 1 − confidence is not a verdict either.
#[test]
fn a_flag_needs_the_p_value_too() {
    use coalmine::judge::classifier::significance_gap;
    let mut mw = coalmine::judge::mann_whitney(
        &[5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        &[1.0, 2.0, 3.0, 4.0, 5.5, 6.5],
        0.98,
        None,
        true,
    )
    .unwrap();
    assert_eq!(significance_gap(&mw, true), None, "p = {}", mw.p_value);
    mw.p_value = 0.03;
    assert_eq!(
        significance_gap(&mw, true).unwrap(),
        "not significant at 98%: p = 0.0300 is not below 0.02 (n = 6 a side)"
    );
    assert_eq!(
        significance_gap(&mw, false),
        None,
        "an unflagged metric needs no p-value"
    );
}

/// Runs keep their results typed (`CanaryJudgeResult`), also across a restart (run files)
/// and in the archive: every judge's result reads back to the same JSON, NaN and the
/// sequential judge's statistics included.
#[test]
fn results_read_back_to_the_same_json() {
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/checkout-canary.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let small = small_request(&[18.75], &[19.0]);
    for request in [&example, &small] {
        for kind in JudgeKind::ALL {
            let r = coalmine::judge::judge_value(request, Some(kind.name())).unwrap();
            let json = serde_json::to_value(&r).unwrap();
            let back: coalmine::judge::CanaryJudgeResult = serde_json::from_value(json.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                json,
                "{}",
                kind.name()
            );
            let test = back.results[0]
                .result_metadata
                .as_ref()
                .and_then(|m| m.test.as_ref());
            match kind {
                JudgeKind::CoalmineV1 => assert!(test.unwrap().mann_whitney().is_some()),
                JudgeKind::CoalmineSeqV1 | JudgeKind::CoalmineSeqV2 => {
                    assert!(test.unwrap().sequential().is_some())
                }
                JudgeKind::NetflixAcaV1 => assert!(test.is_none()),
                JudgeKind::CoalmineV2 => assert!(test.unwrap().v2().is_some()),
            }
        }
    }
}

/// The report counts the outliers the judges' own cleaning drops: one far value, with NaNs
/// removed or replaced by 0 first; nothing when the config keeps outliers.
#[test]
fn outliers_removed_are_the_ones_the_judges_clean_away() {
    let mut series: Vec<f64> = (1..=20).map(f64::from).collect();
    series.extend([1000.0, f64::NAN]);
    let analysis = |nan: &str| serde_json::json!({"canary": {"nanStrategy": nan, "outliers": {"strategy": "remove", "outlierFactor": 3.0}}});
    assert_eq!(
        coalmine::judge::outliers_removed(&analysis("remove"), &series),
        Some((3.0, 1))
    );
    assert_eq!(
        coalmine::judge::outliers_removed(&analysis("replace"), &series),
        Some((3.0, 1))
    );
    let kept = serde_json::json!({"canary": {"outliers": {"strategy": "none"}}});
    assert_eq!(coalmine::judge::outliers_removed(&kept, &series), None);
}
