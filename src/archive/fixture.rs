//! A synthetic archive with known labels, for notebooks, tests and benchmarks without Kafka:
//! `coalmine demo --archive DIR --runs N`.
//!
//! Half of the runs are healthy (A/A); the others have a recorded regression in the canary:
//! latency shifts (+5/+10/+20%), error-rate increases (×2/×3), a variance-only change (×1.5
//! spread), or more sparse error counts (×4 on a rate of 0.2 per minute). Each judgment holds
//! 30 one-minute values per scope per metric, judged when generated (by default with
//! `NetflixACAJudge-v1.0`, as if the archive came from Kayenta), with Kayenta's standalone
//! run semantics (stop at the first judgment at or below marginal).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::{write_judgment, write_run, ArchiveError};
use crate::error::kind::IoError;
use crate::judge::{self, CanaryConfig, JudgeKind, MetricSetPair, Parallelism, Thresholds};
use crate::runs::{spec, Judgment, PairData, Run, RunStatus};
use crate::synthetic::Synth as Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    pub runs: usize,
    pub judgments: usize,
    /// 6 named golden-signal metrics, then generic ones up to this count.
    pub metrics: usize,
    pub seed: u64,
    pub judge: String,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            runs: 200,
            judgments: 5,
            metrics: 6,
            seed: 42,
            judge: JudgeKind::NetflixAcaV1.name().to_string(),
        }
    }
}

/// The regression a run carries.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    None,
    Latency(f64),
    ErrorRate(f64),
    Variance(f64),
    SparseErrors(f64),
}

impl Kind {
    fn pick(r: &mut Rng) -> Kind {
        let x = r.uniform();
        match x {
            x if x < 0.5 => Kind::None,
            x if x < 0.58 => Kind::Latency(0.05),
            x if x < 0.66 => Kind::Latency(0.10),
            x if x < 0.74 => Kind::Latency(0.20),
            x if x < 0.80 => Kind::ErrorRate(2.0),
            x if x < 0.86 => Kind::ErrorRate(3.0),
            x if x < 0.93 => Kind::Variance(1.5),
            _ => Kind::SparseErrors(4.0),
        }
    }

    fn label(self) -> Value {
        let (kind, magnitude, metrics): (&str, f64, Vec<&str>) = match self {
            Kind::None => ("none", 0.0, vec![]),
            Kind::Latency(m) => (
                "latency",
                m,
                vec!["latency p50", "latency p90", "latency p99"],
            ),
            Kind::ErrorRate(m) => ("error-rate", m, vec!["error rate"]),
            Kind::Variance(m) => ("variance", m, vec!["latency p90", "latency p99"]),
            Kind::SparseErrors(m) => ("sparse-errors", m, vec!["errors"]),
        };
        json!({"regressed": self != Kind::None, "kind": kind, "magnitude": magnitude, "metrics": metrics})
    }
}

/// The fixture's canary config (SQL queries as the daemon would run them).
pub fn fixture_config(metrics: usize) -> Value {
    let q = |m: &str, agg: &str| json!({"type": "sql", "sql": format!("SELECT date_bin(INTERVAL '1 minute', ts) AS ts, {agg} AS value FROM metrics WHERE metric = '{m}' GROUP BY 1")});
    let mut ms = vec![
        json!({"name": "latency p50", "groups": ["latency"], "query": q("http.latency_ms", "approx_percentile_cont(value, 0.5)"),
               "analysisConfigurations": {"canary": {"direction": "increase", "effectSize": {"allowedIncrease": 1.03}}}}),
        json!({"name": "latency p90", "groups": ["latency"], "query": q("http.latency_ms", "approx_percentile_cont(value, 0.9)"),
               "analysisConfigurations": {"canary": {"direction": "increase", "effectSize": {"allowedIncrease": 1.03}}}}),
        json!({"name": "latency p99", "groups": ["latency"], "query": q("http.latency_ms", "approx_percentile_cont(value, 0.99)"),
               "analysisConfigurations": {"canary": {"direction": "increase", "effectSize": {"allowedIncrease": 1.05}}}}),
        json!({"name": "error rate", "groups": ["errors"], "query": q("http.error_rate", "avg(value)"),
               "analysisConfigurations": {"canary": {"direction": "increase", "nanStrategy": "replace", "critical": true, "effectSize": {"criticalIncrease": 1.5}}}}),
        json!({"name": "errors", "groups": ["errors"], "query": q("http.errors", "sum(value)"),
               "analysisConfigurations": {"canary": {"direction": "increase", "nanStrategy": "replace"}}}),
        json!({"name": "cpu", "groups": ["saturation"], "query": q("process.cpu", "avg(value)"),
               "analysisConfigurations": {"canary": {"direction": "either", "effectSize": {"allowedIncrease": 1.1, "allowedDecrease": 0.9}}}}),
    ];
    for k in ms.len()..metrics {
        ms.push(json!({"name": format!("signal {k:02}"), "groups": ["saturation"], "query": q(&format!("signal.{k:02}"), "avg(value)"),
                       "analysisConfigurations": {"canary": {"direction": "increase", "effectSize": {"allowedIncrease": 1.1}}}}));
    }
    ms.truncate(metrics.max(1));
    json!({"name": "fixture-golden-signals", "applications": ["fixture"], "metrics": ms,
           "classifier": {"groupWeights": {"latency": 50, "errors": 30, "saturation": 20}}})
}

/// One-minute values of a metric for one scope.
fn series(r: &mut Rng, metric: &str, canary: bool, kind: Kind, n: usize) -> Vec<f64> {
    let lat = |r: &mut Rng, mean: f64, sd: f64| -> f64 {
        let (mut m, mut s) = (mean, sd);
        if canary {
            match kind {
                Kind::Latency(x) => m *= 1.0 + x,
                Kind::Variance(x) => s *= x * 3.0,
                _ => {}
            }
        }
        (r.normal(m, s) * 100.0).round() / 100.0
    };
    (0..n)
        .map(|_| match metric {
            "latency p50" => lat(r, 100.0, 3.0),
            "latency p90" => lat(r, 150.0, 6.0),
            "latency p99" => lat(r, 250.0, 15.0),
            "error rate" => {
                let rate = if canary {
                    if let Kind::ErrorRate(x) = kind {
                        0.01 * x
                    } else {
                        0.01
                    }
                } else {
                    0.01
                };
                r.poisson(1000.0 * rate) / 1000.0
            }
            "errors" => {
                let lambda = if canary {
                    if let Kind::SparseErrors(x) = kind {
                        0.2 * x
                    } else {
                        0.2
                    }
                } else {
                    0.2
                };
                r.poisson(lambda)
            }
            "cpu" => (r.normal(0.5, 0.03) * 1000.0).round() / 1000.0,
            _ => (r.normal(40.0, 4.0) * 100.0).round() / 100.0,
        })
        .collect()
}

/// Write `opts.runs` runs into `root`. Returns the number of judgments written.
pub fn generate(root: &Path, opts: &FixtureOptions) -> Result<usize, ArchiveError> {
    let kind_of_judge =
        JudgeKind::from_name(&opts.judge).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    std::fs::create_dir_all(root.join("runs")).map_err(|e| {
        ArchiveError::Io(IoError::new(format!("cannot create {}", root.display()), e))
    })?;
    let doc = fixture_config(opts.metrics);
    let config = CanaryConfig::from_value(&doc, &judge::json::JsonPath::root())
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    let names: Vec<String> = config.metrics.iter().map(|m| m.name.clone()).collect();
    let thresholds = Thresholds {
        pass: 95.0,
        marginal: 75.0,
    };
    let t0: i64 = 1_795_302_000_000;
    let mut r = Rng::new(opts.seed);
    let mut written = 0;
    for k in 0..opts.runs {
        let kind = Kind::pick(&mut r);
        let start = t0 + k as i64 * 3_600_000;
        let lifetime = format!("{}m", 5 * opts.judgments);
        let body = json!({"config": "fixture", "scopes": {"default": {"control": {"tags": {"app": "fixture", "version": "baseline"}},
                          "experiment": {"tags": {"app": "fixture", "version": "canary"}}}},
                          "start": start, "lifetime": lifetime, "interval": "5m", "window": "30m"});
        let (spec, _) = spec::parse(&body, start).map_err(ArchiveError::Invalid)?;
        let mut run = Run {
            id: format!("fixture-{k:05}"),
            spec,
            config: doc.clone(),
            status: RunStatus::Running,
            created_ms: start,
            next_tick: 1,
            judgments: Vec::new(),
            message: None,
            sequential: Default::default(),
            traffic_split: None,
        };
        let label = kind.label();
        for index in 1..=opts.judgments as u64 {
            let tick = run.spec.tick_ms(index);
            let (ws, we) = run.spec.window_at(tick);
            let pairs: Vec<PairData> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let control = series(&mut r, name, false, kind, 30);
                    let experiment = series(&mut r, name, true, kind, 30);
                    let times: Vec<Option<i64>> =
                        (0..30).map(|m| Some(we - (30 - m) * 60_000)).collect();
                    PairData {
                        pair: MetricSetPair {
                            name: name.clone(),
                            id: format!("{}-{index}-{i}", run.id),
                            tags: BTreeMap::new(),
                            control,
                            experiment,
                            times: Some(crate::judge::PairTimes {
                                control: times.clone(),
                                experiment: times,
                            }),
                            histogram: None,
                        },
                    }
                })
                .collect();
            let plain: Vec<MetricSetPair> = pairs.iter().map(|p| p.pair.clone()).collect();
            let result = judge::run_with(
                kind_of_judge,
                &config,
                &plain,
                thresholds,
                Parallelism::Sequential,
            )
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
            let score = result.score.score;
            run.judgments
                .push(Judgment::new(index, tick, (ws, we), result, 0.0, tick));
            crate::runs::decide_for_fixture(&mut run, score, index);
            write_judgment(root, &run, &pairs, Some(&label))?;
            written += 1;
            if run.status.is_final() {
                break;
            }
        }
        write_run(root, &run, Some(&label))?;
    }
    Ok(written)
}
