//! Deterministic synthetic data for the benchmarks.

/// The crate's seeded generator (xoshiro256++ with rand_distr's samplers).
pub use coalmine::synthetic::Synth as Gen;

/// A remote-judge request with `metrics` metrics of `points` points per side; every fifth
/// metric is shifted by +3% in the canary.
pub fn judge_request(metrics: usize, points: usize, seed: u64) -> serde_json::Value {
    use serde_json::json;
    let mut g = Gen::new(seed);
    let mut configs = Vec::new();
    let mut pairs = Vec::new();
    for i in 0..metrics {
        let name = format!("metric-{i:03}");
        configs.push(json!({
            "name": name,
            "query": {"type": "sql", "sql": "SELECT value FROM metrics"},
            "groups": [format!("group-{}", i % 5)],
            "analysisConfigurations": {"canary": {"direction": "increase"}},
            "scopeName": "default",
        }));
        let base = 100.0 + i as f64;
        let shift = if i % 5 == 0 { 1.03 } else { 1.0 };
        let control: Vec<f64> = g.normals(points, base, base * 0.1);
        let experiment: Vec<f64> = g.normals(points, base * shift, base * 0.1);
        pairs.push(json!({"name": name, "id": format!("pair-{i}"), "tags": {},
                          "values": {"control": control, "experiment": experiment}}));
    }
    json!({
        "canaryConfig": {"name": "bench", "applications": ["bench"], "metrics": configs},
        "metricSetPairList": pairs,
        "scoreThresholds": {"pass": 95.0, "marginal": 75.0},
    })
}
