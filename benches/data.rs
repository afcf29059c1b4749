//! Deterministic synthetic data for the benchmarks (no RNG crate needed).

/// SplitMix64 → uniform (0,1) → Box–Muller normal.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    pub fn normals(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal(mean, sd)).collect()
    }
}

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
