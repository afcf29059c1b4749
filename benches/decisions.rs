//! The labelled decision benchmark: how often each judge fails a healthy canary and how often
//! it catches a regressed one, on judgments shaped like real canary analysis.
//!
//! `cargo bench --bench decisions` (or, slower, `cargo test --release --bench decisions`);
//! `DECISIONS_AA` and `DECISIONS_REGRESSED` set the canaries per cell (defaults 400 and 100).
//! Prints a Markdown table (the one in `docs/judges.md`).
//!
//! Each canary has three metrics, 60 per-minute values a side, sampled at the same minutes:
//! * `latency`: lognormal around 120 ms, log-sd 0.08, `direction: increase`, allowed +3 %;
//! * `errors`: Poisson counts at 2 per minute, `direction: increase`, allowed ×1.25;
//! * `cpu`: normal 45 ± 4, `direction: increase`, allowed +3 %.
//!
//! Serial dependence: each series is AR(1) with coefficient φ (latency on the log scale; the
//! error counts through an AR(1) log-intensity of sd 0.25 when φ > 0). Scenarios change one
//! thing in the canary (or, for the shared-load ones, in both arms at the same minutes).
//! A metric counts as a false alarm when it is classified High or Low on an A/A canary; a
//! canary is "not Pass" when its score is below the pass threshold (95); a regression is
//! detected when its metric is High and the canary does not pass.

use coalmine::judge::judge_value;
use coalmine::synthetic::Synth;
use serde_json::{json, Value};

const N: usize = 60;
const JUDGES: [&str; 5] = [
    "NetflixACAJudge-v1.0",
    "coalmine-v1",
    "coalmine-v2",
    "coalmine-seq-v1",
    "coalmine-seq-v2",
];

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    AA,
    Latency(f64),
    LatencyVariance2,
    LatencyTail,
    Errors(f64),
    RareErrors,
    BurstyErrorsAA,
    CpuOneSd,
    SharedLoadAA,
    SharedLoadLatency10,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::AA => "A/A".into(),
            Scenario::Latency(f) => format!("latency +{:.0} %", (f - 1.0) * 100.0),
            Scenario::LatencyVariance2 => "latency variance ×2".into(),
            Scenario::LatencyTail => "10 % of latency values ×3".into(),
            Scenario::Errors(f) => format!("errors ×{f}"),
            Scenario::RareErrors => "rare errors 0.05 → 0.3/min".into(),
            Scenario::BurstyErrorsAA => "bursty errors, A/A".into(),
            Scenario::CpuOneSd => "CPU +1 sd".into(),
            Scenario::SharedLoadAA => "shared load ±30 %, A/A".into(),
            Scenario::SharedLoadLatency10 => "shared load ±30 %, latency +10 %".into(),
        }
    }

    /// The metric a regression changes (None: a healthy canary).
    fn regressed(self) -> Option<&'static str> {
        match self {
            Scenario::AA | Scenario::BurstyErrorsAA | Scenario::SharedLoadAA => None,
            Scenario::Latency(_)
            | Scenario::LatencyVariance2
            | Scenario::LatencyTail
            | Scenario::SharedLoadLatency10 => Some("latency"),
            Scenario::Errors(_) | Scenario::RareErrors => Some("errors"),
            Scenario::CpuOneSd => Some("cpu"),
        }
    }
}

/// A standard AR(1) series (marginal sd 1).
fn ar1(rng: &mut Synth, phi: f64) -> Vec<f64> {
    let innov = (1.0 - phi * phi).sqrt();
    let mut z = rng.normal(0.0, 1.0);
    (0..N)
        .map(|_| {
            let v = z;
            z = phi * z + rng.normal(0.0, innov);
            v
        })
        .collect()
}

struct Arm {
    latency: Vec<f64>,
    errors: Vec<f64>,
    cpu: Vec<f64>,
}

fn arm(rng: &mut Synth, phi: f64, s: Scenario, canary: bool, load: &[f64]) -> Arm {
    let (mut lat_factor, mut lat_sd, mut err_rate, mut cpu_shift) = (1.0, 0.08, 2.0, 0.0);
    let mut tail = false;
    let mut bursty = false;
    match s {
        Scenario::RareErrors => err_rate = if canary { 0.3 } else { 0.05 },
        Scenario::BurstyErrorsAA => bursty = true,
        _ => {}
    }
    if canary {
        match s {
            Scenario::Latency(f) => lat_factor = f,
            Scenario::SharedLoadLatency10 => lat_factor = 1.1,
            Scenario::LatencyVariance2 => lat_sd = 0.08 * 2f64.sqrt(),
            Scenario::LatencyTail => tail = true,
            Scenario::Errors(f) => err_rate *= f,
            Scenario::CpuOneSd => cpu_shift = 4.0,
            _ => {}
        }
    }
    let zl = ar1(rng, phi);
    let latency = zl
        .iter()
        .zip(load)
        .map(|(z, l)| {
            let v = 120.0 * lat_factor * l * (lat_sd * z).exp();
            if tail && rng.uniform() < 0.1 {
                v * 3.0
            } else {
                v
            }
        })
        .collect();
    let ze = ar1(rng, phi);
    let errors = ze
        .iter()
        .zip(load)
        .map(|(z, l)| {
            let latent = if phi > 0.0 {
                (0.25 * z - 0.25f64.powi(2) / 2.0).exp()
            } else {
                1.0
            };
            let mean = err_rate * l * latent;
            // negative binomial (size 0.5: variance 2 + 8) as a gamma–Poisson mixture
            let lambda = if bursty {
                rng.gamma(0.5, mean / 0.5)
            } else {
                mean
            };
            rng.poisson(lambda)
        })
        .collect();
    let zc = ar1(rng, phi);
    let cpu = zc
        .iter()
        .zip(load)
        .map(|(z, l)| (45.0 + cpu_shift + 4.0 * z) * l)
        .collect();
    Arm {
        latency,
        errors,
        cpu,
    }
}

fn config() -> Value {
    let metric = |name: &str, allowed: f64| {
        json!({
            "name": name,
            "query": {"type": "sql", "sql": "SELECT 1"},
            "groups": [name],
            "analysisConfigurations": {"canary": {
                "direction": "increase",
                "effectSize": {"allowedIncrease": allowed},
            }},
        })
    };
    json!({
        "name": "decisions",
        "metrics": [metric("latency", 1.03), metric("errors", 1.25), metric("cpu", 1.03)],
        "classifier": {"groupWeights": {"latency": 34, "errors": 33, "cpu": 33}},
    })
}

fn request(config: &Value, control: &Arm, experiment: &Arm) -> Value {
    let scope = json!({"startTimeMillis": 1_700_000_000_000i64, "stepMillis": 60_000});
    let pair = |name: &str, c: &[f64], e: &[f64]| {
        json!({
            "name": name, "id": name, "tags": {},
            "values": {"control": c, "experiment": e},
            "scopes": {"control": scope, "experiment": scope},
        })
    };
    json!({
        "canaryConfig": config,
        "metricSetPairList": [
            pair("latency", &control.latency, &experiment.latency),
            pair("errors", &control.errors, &experiment.errors),
            pair("cpu", &control.cpu, &experiment.cpu),
        ],
        "scoreThresholds": {"pass": 95, "marginal": 75},
    })
}

#[derive(Default, Clone)]
struct Tally {
    canaries: usize,
    metrics: usize,
    flagged_metrics: usize,
    not_pass: usize,
    inconclusive: usize,
    detected: usize,
    /// False alarms by metric (latency, errors, cpu).
    flagged_by: [usize; 3],
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs every bench once in the test profile: keep that short
    let quick = std::env::args().any(|a| a == "--test" || a == "--no-run")
        || !std::env::args().any(|a| a == "--bench");
    let aa = env("DECISIONS_AA", if quick { 20 } else { 400 });
    let regressed = env("DECISIONS_REGRESSED", if quick { 5 } else { 100 });
    let scenarios = [
        Scenario::AA,
        Scenario::Latency(1.05),
        Scenario::Latency(1.10),
        Scenario::Latency(1.20),
        Scenario::LatencyVariance2,
        Scenario::LatencyTail,
        Scenario::Errors(2.0),
        Scenario::Errors(3.0),
        Scenario::RareErrors,
        Scenario::BurstyErrorsAA,
        Scenario::CpuOneSd,
        Scenario::SharedLoadAA,
        Scenario::SharedLoadLatency10,
    ];
    let config = config();
    println!(
        "| scenario | φ | {} |",
        JUDGES.map(|j| j.to_string()).join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(JUDGES.len()));
    let started = std::time::Instant::now();
    for (si, s) in scenarios.iter().enumerate() {
        for (pi, phi) in [0.0, 0.5, 0.8].into_iter().enumerate() {
            let count = if s.regressed().is_some() {
                regressed
            } else {
                aa
            };
            let mut tallies = vec![Tally::default(); JUDGES.len()];
            let mut rng = Synth::new(1000 * si as u64 + pi as u64);
            for _ in 0..count {
                let shared = matches!(s, Scenario::SharedLoadAA | Scenario::SharedLoadLatency10);
                let load: Vec<f64> = (0..N)
                    .map(|i| {
                        if shared {
                            1.0 + 0.3 * (i as f64 / N as f64 * std::f64::consts::TAU).sin()
                        } else {
                            1.0
                        }
                    })
                    .collect();
                let c = arm(&mut rng, phi, *s, false, &load);
                let e = arm(&mut rng, phi, *s, true, &load);
                let req = request(&config, &c, &e);
                for (j, judge) in JUDGES.iter().enumerate() {
                    let r = judge_value(&req, Some(judge)).expect("judges");
                    let t = &mut tallies[j];
                    t.canaries += 1;
                    let not_pass = r.score.classification != "Pass";
                    t.not_pass += not_pass as usize;
                    t.inconclusive += r.results.iter().any(|m| m.inconclusive) as usize;
                    for m in &r.results {
                        let flagged = m.classification == "High" || m.classification == "Low";
                        if Some(m.name.as_str()) == s.regressed() {
                            t.detected += (m.classification == "High" && not_pass) as usize;
                        } else {
                            t.metrics += 1;
                            t.flagged_metrics += flagged as usize;
                            let k = ["latency", "errors", "cpu"]
                                .iter()
                                .position(|n| *n == m.name)
                                .unwrap_or(0);
                            t.flagged_by[k] += flagged as usize;
                        }
                    }
                }
            }
            let cells: Vec<String> = tallies
                .iter()
                .map(|t| {
                    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
                    let inconclusive = if t.inconclusive > 0 {
                        format!(", {:.0} % inconcl.", pct(t.inconclusive, t.canaries))
                    } else {
                        String::new()
                    };
                    if s.regressed().is_some() {
                        format!(
                            "**{:.0} %** caught{inconclusive}",
                            pct(t.detected, t.canaries)
                        )
                    } else {
                        format!(
                            "{:.1} % / **{:.1} %**{inconclusive}",
                            pct(t.flagged_metrics, t.metrics),
                            pct(t.not_pass, t.canaries)
                        )
                    }
                })
                .collect();
            println!("| {} | {phi} | {} |", s.name(), cells.join(" | "));
            if std::env::var_os("DECISIONS_BY_METRIC").is_some() && s.regressed().is_none() {
                for (j, t) in tallies.iter().enumerate() {
                    eprintln!(
                        "  {} false alarms by metric (latency, errors, cpu): {:?}",
                        JUDGES[j], t.flagged_by
                    );
                }
            }
        }
    }
    println!(
        "\n{aa} A/A and {regressed} regressed canaries per cell; A/A cells: per-metric false alarms / canaries not passed; regressed cells: canaries caught. {:.1} s.",
        started.elapsed().as_secs_f64()
    );
}
