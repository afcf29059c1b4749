//! SLO gates beside the comparative judgment: met, breached (at the gate's confidence) and
//! uncertain at small n, on both arms, for every judge; bad gates named by their path.

use coalmine::judge::judge_value;
use coalmine::synthetic::Synth;
use serde_json::{json, Value};

fn request(slo: Value, control: &[f64], experiment: &[f64], critical: bool) -> Value {
    json!({"canaryConfig": {"name": "slo", "metrics": [{"name": "latency p95", "groups": ["latency"],
            "query": {"type": "sql", "sql": "SELECT ts, value FROM metrics"},
            "analysisConfigurations": {"canary": {"direction": "increase", "critical": critical, "slo": slo}}}],
            "classifier": {"groupWeights": {"latency": 100}}},
        "metricSetPairList": [{"name": "latency p95", "id": "p", "tags": {},
            "values": {"control": control, "experiment": experiment}, "scopes": {}}],
        "scoreThresholds": {"pass": 95, "marginal": 75}})
}

fn judged(req: &Value, judge: Option<&str>) -> Value {
    serde_json::to_value(judge_value(req, judge).unwrap()).unwrap()
}

fn normal(seed: u64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    Synth::new(seed).normals(n, mean, sd)
}

/// Both arms at 230 ms against a 200 ms objective: no worse than the baseline, so every
/// comparative judge passes the metric, and the gate fails it — saying that the baseline
/// breaches as well. Critical: the canary fails outright.
#[test]
fn a_breached_gate_fails_a_canary_no_worse_than_its_baseline() {
    let (c, e) = (normal(1, 60, 230.0, 10.0), normal(2, 60, 230.0, 10.0));
    let req = request(json!({"max": 200}), &c, &e, true);
    for judge in [
        "coalmine-v2",
        "coalmine-v1",
        "NetflixACAJudge-v1.0",
        "coalmine-seq-v2",
    ] {
        let v = judged(&req, Some(judge));
        let m = &v["results"][0];
        assert_eq!(m["classification"], "High", "{judge}: {m}");
        assert_eq!(m["critical"], true, "{judge}");
        let slo = &m["slo"];
        assert_eq!(slo["canary"]["state"], "breached", "{slo}");
        assert_eq!(slo["baseline"]["state"], "breached", "{slo}");
        assert!(slo["canary"]["bound"].as_f64().unwrap() > 200.0, "{slo}");
        let why = m["classificationReason"].as_str().unwrap();
        assert!(
            why.starts_with("SLO breached: latency p95 needs mean ≤ 200; canary 2")
                && why.ends_with("the baseline is breaching as well"),
            "{why}"
        );
        assert_eq!(v["score"]["classification"], "Fail", "{judge}");
    }
    let table = coalmine::report::judge_table(&judge_value(&req, None).unwrap(), None);
    assert!(table.contains("High (critical) (SLO breached)"), "{table}");
}

/// Three values whose mean is over the objective are not a breach at 95 %: the gate says it
/// is uncertain, and the metric keeps the comparative judge's class; thirty are.
#[test]
fn a_handful_of_values_is_uncertain_not_breached() {
    let c = [150.0, 160.0, 155.0];
    let e = [180.0, 235.0, 205.0];
    let v = judged(
        &request(json!({"max": 200}), &c, &e, false),
        Some("coalmine-v1"),
    );
    let m = &v["results"][0];
    assert_eq!(m["slo"]["canary"]["state"], "uncertain", "{m}");
    assert!(m["slo"]["canary"]["estimate"].as_f64().unwrap() > 200.0);
    assert!(m["slo"]["canary"]["bound"].as_f64().unwrap() < 200.0);
    assert_eq!(m["slo"]["baseline"]["state"], "met");
    assert_ne!(m["classification"], "High", "{m}");
    // thirty such values
    let e: Vec<f64> = (0..30).map(|i| [180.0, 235.0, 205.0][i % 3]).collect();
    let c: Vec<f64> = (0..30).map(|i| [150.0, 160.0, 155.0][i % 3]).collect();
    let v = judged(
        &request(json!({"max": 200}), &c, &e, false),
        Some("coalmine-v1"),
    );
    assert_eq!(v["results"][0]["slo"]["canary"]["state"], "breached");
}

/// A quantile objective uses the order-statistic bound; an availability objective on the
/// query's one value per arm (`statistic: value`) is exact; `min` gates fail as `Low`.
#[test]
fn quantile_and_value_gates() {
    let c = normal(3, 200, 100.0, 10.0);
    let e = normal(4, 200, 100.0, 25.0); // same median, a wider tail
    let v = judged(
        &request(
            json!({"max": 130, "statistic": "quantile:0.95"}),
            &c,
            &e,
            false,
        ),
        None,
    );
    let slo = &v["results"][0]["slo"];
    assert_eq!(slo["statistic"], "quantile:0.95");
    assert_eq!(slo["canary"]["state"], "breached", "{slo}");
    assert_eq!(slo["baseline"]["state"], "met", "{slo}");
    assert_eq!(v["results"][0]["classification"], "High");

    let req = request(
        json!({"min": 0.995, "statistic": "value"}),
        &[0.9991],
        &[0.9902],
        false,
    );
    let v = judged(&req, Some("coalmine-v1"));
    let m = &v["results"][0];
    assert_eq!(m["classification"], "Low", "{m}");
    assert_eq!(m["slo"]["canary"]["bound"], 0.9902);
    assert_eq!(
        m["classificationReason"],
        "SLO breached: latency p95 needs value ≥ 0.995; canary 0.9902, baseline 0.9991"
    );
    // more than one value for "value": not judged by the gate, said so
    let v = judged(
        &request(
            json!({"min": 0.995, "statistic": "value"}),
            &[0.99, 0.98],
            &[0.99, 0.98],
            false,
        ),
        Some("coalmine-v1"),
    );
    assert_eq!(v["results"][0]["slo"]["canary"]["state"], "noData");
}

#[test]
fn bad_gates_are_named_by_their_path() {
    let base = "canaryConfig.metrics[0].analysisConfigurations.canary.slo";
    for (slo, want) in [
        (json!({"max": 1, "min": 0}), format!("{base}: give exactly one of \"max\" and \"min\"")),
        (json!({}), format!("{base}: give exactly one of \"max\" and \"min\"")),
        (json!({"max": "200"}), format!("{base}.max: expected a number, found string \"200\"")),
        (json!({"max": 2, "statistic": "p95"}), format!("{base}.statistic: expected \"mean\", \"value\" or \"quantile:q\" with q in (0, 1), got \"p95\"")),
        (json!({"max": 2, "confidence": 1.2}), format!("{base}.confidence: confidence must be in (0.5, 1), got 1.2")),
        (json!({"max": 2, "objective": 1}), format!("{base}.objective: unknown key (known: max, min, statistic, confidence)")),
        (json!(200), format!("{base}: expected an object, found number 200")),
    ] {
        let req = request(slo, &[1.0, 2.0], &[1.0, 2.0], false);
        for judge in [None, Some("coalmine-v1"), Some("coalmine-seq-v2")] {
            let err = judge_value(&req, judge).unwrap_err().to_string();
            assert_eq!(err, want, "{judge:?}");
        }
        // a config saved with it is refused too
        let config = coalmine::judge::CanaryConfig::from_value(
            &req["canaryConfig"],
            &coalmine::judge::json::JsonPath::root().key("canaryConfig"),
        )
        .unwrap();
        let err = coalmine::judge::check_settings(coalmine::judge::JudgeKind::DEFAULT, &config)
            .unwrap_err()
            .to_string();
        assert_eq!(err, want);
    }
}
