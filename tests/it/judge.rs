//! Judge behaviour beyond Kayenta's vectors: coalmine-v1 semantics, parallelism.

use coalmine::judge::{run_with, JudgeKind, JudgeRequest, Parallelism};
use serde_json::json;

/// A request with `metrics` metrics; every third is shifted up 5% in the canary, and some
/// series are constant (Kayenta's noise path).
fn request(metrics: usize, points: usize) -> JudgeRequest {
    let mut state = 12345u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
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
