//! Judging latency histograms request by request (`metricType: "histogram"`) against judging
//! their per-minute p99, on simulated Prometheus histograms.
//!
//! `cargo bench --bench histogram` (release; about a minute on 2 cores). `-- --quick` runs a
//! quarter of the runs. Prints the table that `docs/metrics.md` shows.
//!
//! Each run: 60 minutes, each arm serving Poisson(1,000) requests a minute with log-normal
//! latency (median 100 ms, log-sd 0.6: p99 ≈ 400 ms), counted into Prometheus's default
//! buckets (5 ms … 10 s, +Inf). "Shared load": every minute's latency in both arms is
//! multiplied by the same factor, an AR(1) on the log scale (sd 0.15, φ 0.8); "GC bursts":
//! in 5 % of the minutes of each arm, 3 % of that minute's requests take 1 s longer. The
//! canary's latency is the baseline's times `shift` (1.0: an A/A run).
//!
//! Judged with `coalmine-v2` (confidence 0.95, `direction: increase`) at each horizon, over
//! the minutes so far:
//! * **histogram**: the buckets per minute as `le` series, one metric (`metricType:
//!   "histogram"`, quantile 0.99);
//! * **p99 per minute**: each minute's p99 interpolated from the same buckets as PromQL's
//!   `histogram_quantile` does, the metric judged on those 2 × minutes values.
//!
//! A run counts as detected at a horizon when its metric is `High` there. The A/A rows are
//! false alarms; each horizon is its own fixed-horizon test, at α = 0.05.
//!
//! Then the same 60 minutes with `coalmine-seq-v2` (α = 0.05), a look a minute as a run
//! takes them: the share of runs flagged within the hour (false alarms on A/A, over all 60
//! looks) and the median minute of detection among them.

use std::collections::BTreeMap;
use std::time::Instant;

use coalmine::judge::json::JsonPath;
use coalmine::judge::{run, CanaryConfig, JudgeKind, Label, MetricSetPair, PairTimes, Thresholds};
use coalmine::query::timeseries::bucket_quantile;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal, Poisson};

const MINUTES: usize = 60;
const HORIZONS: [usize; 7] = [5, 10, 15, 20, 30, 45, 60];
const RATE: f64 = 1000.0;
const BOUNDS: [f64; 12] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];
const LE: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    shift: f64,
    shared_load: bool,
    bursts: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "A/A",
        shift: 1.0,
        shared_load: false,
        bursts: false,
    },
    Scenario {
        name: "A/A, shared load",
        shift: 1.0,
        shared_load: true,
        bursts: false,
    },
    Scenario {
        name: "A/A, GC bursts",
        shift: 1.0,
        shared_load: false,
        bursts: true,
    },
    Scenario {
        name: "A/A, shared load, GC bursts",
        shift: 1.0,
        shared_load: true,
        bursts: true,
    },
    Scenario {
        name: "latency +10 %",
        shift: 1.1,
        shared_load: false,
        bursts: false,
    },
    Scenario {
        name: "latency +10 %, shared load, GC bursts",
        shift: 1.1,
        shared_load: true,
        bursts: true,
    },
];

/// Cumulative bucket counts per minute, `[arm][minute][bucket]`.
type Histograms = [Vec<[f64; 12]>; 2];

fn simulate(s: Scenario, rng: &mut impl Rng) -> Histograms {
    let latency = LogNormal::new(0.1f64.ln(), 0.6).expect("valid");
    let noise = Normal::new(0.0, 0.15 * (1.0f64 - 0.8 * 0.8).sqrt()).expect("valid");
    let requests = Poisson::new(RATE).expect("valid");
    let mut load = 0.0f64;
    let mut out: Histograms = [Vec::new(), Vec::new()];
    for _ in 0..MINUTES {
        load = if s.shared_load {
            0.8 * load + noise.sample(rng)
        } else {
            0.0
        };
        for (arm, hist) in out.iter_mut().enumerate() {
            let factor = load.exp() * if arm == 1 { s.shift } else { 1.0 };
            let burst = s.bursts && rng.random::<f64>() < 0.05;
            let mut counts = [0.0; 12];
            let n = requests.sample(rng) as usize;
            for _ in 0..n {
                let mut v = latency.sample(rng) * factor;
                if burst && rng.random::<f64>() < 0.03 {
                    v += 1.0;
                }
                counts[BOUNDS.partition_point(|&b| b < v)] += 1.0;
            }
            for j in 1..12 {
                counts[j] += counts[j - 1];
            }
            hist.push(counts);
        }
    }
    out
}

fn config(histogram: bool) -> CanaryConfig {
    config_for(histogram, "coalmine-v2")
}

fn config_for(histogram: bool, judge: &str) -> CanaryConfig {
    let canary = if histogram {
        serde_json::json!({"direction": "increase", "metricType": "histogram",
                           "histogram": {"quantile": 0.99}})
    } else {
        serde_json::json!({"direction": "increase"})
    };
    let doc = serde_json::json!({
        "name": "histogram-bench",
        "judge": {"name": judge, "judgeConfigurations": if judge == "coalmine-v2" {
            serde_json::json!({"confidence": 0.95})
        } else {
            serde_json::json!({"alpha": 0.05})
        }},
        "metrics": [{"name": "latency", "analysisConfigurations": {"canary": canary},
                     "groups": ["latency"]}],
        "classifier": {"groupWeights": {"latency": 100}},
    });
    CanaryConfig::from_value(&doc, &JsonPath::root()).expect("a valid config")
}

fn pair(tags: BTreeMap<String, String>, control: Vec<f64>, experiment: Vec<f64>) -> MetricSetPair {
    let times: Vec<Option<i64>> = (0..control.len() as i64)
        .map(|m| Some(m * 60_000))
        .collect();
    MetricSetPair {
        name: "latency".into(),
        id: tags.get("le").cloned().unwrap_or_default(),
        tags,
        control,
        experiment,
        times: Some(PairTimes {
            control: times.clone(),
            experiment: times,
        }),
        histogram: None,
    }
}

const THRESHOLDS: Thresholds = Thresholds {
    pass: 95.0,
    marginal: 75.0,
};

fn high(config: &CanaryConfig, pairs: &[MetricSetPair]) -> bool {
    let r = run(JudgeKind::CoalmineV2, config, pairs, THRESHOLDS).expect("judged");
    r.results
        .iter()
        .any(|m| m.classification == Label::High.as_str())
}

/// The look (minute) at which `coalmine-seq-v2` flagged the metric, if it did.
fn crossed(config: &CanaryConfig, pairs: &[MetricSetPair]) -> Option<u64> {
    let r = run(JudgeKind::CoalmineSeqV2, config, pairs, THRESHOLDS).expect("judged");
    let m = &r.results[0];
    if m.classification != Label::High.as_str() {
        return None;
    }
    let v = serde_json::to_value(m).expect("serialisable");
    v["resultMetadata"]["test"]["crossedAtLook"].as_u64()
}

fn bucket_pairs(h: &Histograms, minutes: usize) -> Vec<MetricSetPair> {
    (0..12)
        .map(|j| {
            let series = |arm: usize| h[arm][..minutes].iter().map(|c| c[j]).collect();
            pair(
                BTreeMap::from([("le".to_string(), LE[j].to_string())]),
                series(0),
                series(1),
            )
        })
        .collect()
}

fn p99_pair(h: &Histograms, minutes: usize) -> MetricSetPair {
    let p99 = |arm: usize| -> Vec<f64> {
        h[arm][..minutes]
            .iter()
            .map(|c| {
                let mut b: Vec<(f64, f64)> =
                    BOUNDS.iter().copied().zip(c.iter().copied()).collect();
                bucket_quantile(0.99, &mut b)
            })
            .collect()
    };
    pair(BTreeMap::new(), p99(0), p99(1))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs: usize = std::env::var("HISTOGRAM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 100 } else { 400 });
    let started = Instant::now();
    let (hist_config, p99_config) = (config(true), config(false));
    let (hist_seq, p99_seq) = (
        config_for(true, "coalmine-seq-v2"),
        config_for(false, "coalmine-seq-v2"),
    );
    let mut sequential = Vec::new();
    println!(
        "| scenario | judged on | {} |",
        HORIZONS.map(|h| format!("{h} min")).join(" | ")
    );
    println!("|---|---|{}", "---:|".repeat(HORIZONS.len()));
    for (si, s) in SCENARIOS.iter().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x4849_5354 + si as u64);
        let mut detected = [[0usize; HORIZONS.len()]; 2];
        let mut looks: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            let h = simulate(*s, &mut rng);
            for (k, &minutes) in HORIZONS.iter().enumerate() {
                if high(&hist_config, &bucket_pairs(&h, minutes)) {
                    detected[0][k] += 1;
                }
                if high(&p99_config, &[p99_pair(&h, minutes)]) {
                    detected[1][k] += 1;
                }
            }
            looks[0].extend(crossed(&hist_seq, &bucket_pairs(&h, MINUTES)));
            looks[1].extend(crossed(&p99_seq, &[p99_pair(&h, MINUTES)]));
        }
        sequential.push((s.name, looks));
        for (i, judged) in ["histogram (requests)", "p99 per minute"]
            .iter()
            .enumerate()
        {
            let cells: Vec<String> = detected[i]
                .iter()
                .map(|&d| format!("{:.1} %", 100.0 * d as f64 / runs as f64))
                .collect();
            println!("| {} | {judged} | {} |", s.name, cells.join(" | "));
        }
    }
    println!("\n| scenario | judged on | flagged within 60 min | median minute of detection |");
    println!("|---|---|---:|---:|");
    for (name, looks) in sequential {
        for (i, judged) in ["histogram (requests)", "p99 per minute"]
            .iter()
            .enumerate()
        {
            let mut l = looks[i].clone();
            l.sort_unstable();
            let median = if l.is_empty() {
                "–".to_string()
            } else {
                l[l.len() / 2].to_string()
            };
            println!(
                "| {name} | {judged} | {:.1} % | {median} |",
                100.0 * l.len() as f64 / runs as f64
            );
        }
    }
    println!(
        "\n{runs} runs per scenario; coalmine-v2 at confidence 0.95, coalmine-seq-v2 at alpha 0.05; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
