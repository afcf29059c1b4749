//! Validation of `coalmine-seq-v1` against Kayenta-style continuous judgment.
//!
//! `cargo bench --bench validate_sequential` (release; about 10 minutes on 2 cores). Prints the
//! table that `docs/sequential.md` shows. `-- --quick` runs a tenth of the runs.
//!
//! Every run lasts 3 h of 10 s ticks (1,080 ticks); each tick delivers one value per arm
//! (a per-interval aggregate, as a Kayenta metric series) and every tick is judged:
//! * `coalmine-seq-v1`: one [`SequentialState::update`] per tick, alarm at the first
//!   crossing of `1/α`, α = 0.01 (one metric), `direction = increase`. 10,000 runs per
//!   scenario.
//! * `NetflixACAJudge-v1.0` (Kayenta standalone): from tick 30 (5 min) on, the classifier
//!   on the last 180 values (30 min sliding window) at every tick, alarm at the first
//!   `High`. 200 runs per scenario (each run is ~1,000 Kayenta Mann–Whitney intervals,
//!   ~0.3 s).
//!
//! Latency: lognormal, median 100, σ_log 0.25; regressions multiply the canary's values
//! (+5/10/20 %) or its σ_log (×1.5, variance only); the sequential judge tests p50 and p90.
//! AR(1): the log-latency of each arm is autocorrelated from tick to tick with φ = 0.8
//! (same marginal); batch means of 10 (`batchSize: 10`) shown too. Counts: errors per tick
//! per arm are Poisson with a common daily-shaped load `λ(t) = λ·(1 + 0.5·sin(2πt/T))`,
//! 50/50 traffic; the canary's rate is multiplied by 1.5/2/3; "sparse" has 0.05
//! errors/tick in the baseline and ×4 in the canary; "bursty" draws incidents as Poisson
//! and each incident logs a geometric number of errors (mean 5): overdispersed, outside the
//! Poisson model.

use std::time::Instant;

use coalmine::judge::classifier::{classify, ClassifierParams, ClassifyInput, IntervalMethod};
use coalmine::judge::effect::EffectMeasure;
use coalmine::judge::sequential::{Alternative, MetricType, SequentialParams, SequentialState};
use coalmine::judge::{Direction, Label, NanStrategy};

#[path = "data.rs"]
#[allow(dead_code)]
mod data;
use data::Gen;

const TICKS: usize = 1080;
const TICK_SECS: f64 = 10.0;
const KAYENTA_WINDOW: usize = 180;
const KAYENTA_WARMUP: usize = 30;

#[derive(Clone, Copy)]
enum Kind {
    Latency {
        mult: f64,
        sigma_mult: f64,
        phi: f64,
    },
    Counts {
        base: f64,
        mult: f64,
        burst: f64,
    },
}

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    kind: Kind,
    batch: u32,
    null: bool,
    /// The sequential judge's α; rows at 0.05 compare at Kayenta-like false-alarm rates.
    alpha: f64,
    kayenta: bool,
}

/// One run's series generator.
struct Series {
    g: Gen,
    kind: Kind,
    state: [f64; 2],
    t: usize,
}

impl Series {
    fn new(kind: Kind, seed: u64) -> Self {
        let mut g = Gen::new(seed);
        let state = [g.normal(0.0, 1.0), g.normal(0.0, 1.0)];
        Series {
            g,
            kind,
            state,
            t: 0,
        }
    }

    fn poisson(&mut self, lambda: f64) -> f64 {
        // Knuth's multiplication method (λ ≤ ~30 here)
        let l = (-lambda).exp();
        let (mut k, mut p) = (0.0, 1.0);
        loop {
            p *= self.g.uniform();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }

    /// `(control, experiment)` values of the next tick.
    fn next(&mut self) -> (f64, f64) {
        self.t += 1;
        match self.kind {
            Kind::Latency {
                mult,
                sigma_mult,
                phi,
            } => {
                let innov = (1.0 - phi * phi).sqrt();
                for s in &mut self.state {
                    *s = phi * *s + innov * self.g.normal(0.0, 1.0);
                }
                let sigma = 0.25;
                let c = 100.0 * (sigma * self.state[0]).exp();
                let e = 100.0 * mult * (sigma * sigma_mult * self.state[1]).exp();
                (c, e)
            }
            Kind::Counts { base, mult, burst } => {
                let load =
                    1.0 + 0.5 * (2.0 * std::f64::consts::PI * self.t as f64 / TICKS as f64).sin();
                let draw = |me: &mut Self, rate: f64| {
                    if burst <= 1.0 {
                        me.poisson(rate)
                    } else {
                        let incidents = me.poisson(rate / burst);
                        (0..incidents as usize)
                            .map(|_| geometric(&mut me.g, burst))
                            .sum()
                    }
                };
                let c = draw(self, base * load);
                let e = draw(self, base * load * mult);
                (c, e)
            }
        }
    }
}

/// Geometric on {1, 2, …} with the given mean.
fn geometric(g: &mut Gen, mean: f64) -> f64 {
    let p = 1.0 / mean;
    (g.uniform().ln() / (1.0 - p).ln()).floor() + 1.0
}

fn seq_params(s: &Scenario) -> SequentialParams {
    let mut p = match s.kind {
        Kind::Latency { .. } => {
            let mut p = SequentialParams::new(MetricType::Continuous);
            p.quantiles = vec![0.5, 0.9];
            p
        }
        Kind::Counts { .. } => SequentialParams::new(MetricType::Count),
    };
    p.alternative = Alternative::Increase;
    p.alpha = s.alpha;
    p.batch_size = s.batch;
    p
}

/// Tick of the first alarm, if any.
fn run_seq(s: &Scenario, seed: u64) -> Option<usize> {
    let mut state = SequentialState::new(seq_params(s)).unwrap();
    let mut series = Series::new(s.kind, seed);
    for t in 1..=TICKS {
        let (c, e) = series.next();
        state.update(&[c], &[e]).unwrap();
        if state.monitor.crossed.is_some() {
            return Some(t);
        }
    }
    None
}

fn run_kayenta(s: &Scenario, seed: u64) -> Option<usize> {
    let mut series = Series::new(s.kind, seed);
    let (mut c, mut e) = (Vec::with_capacity(TICKS), Vec::with_capacity(TICKS));
    let input = ClassifyInput {
        metric_name: "m",
        direction: Direction::Increase,
        nan_strategy: NanStrategy::Remove,
        critical: false,
        data_required: false,
        experiment_label: "Canary",
        control_label: "Baseline",
    };
    // NetflixACAJudge-v1.0: confidence 0.98 and tolerance 0.25 hard-coded, Kayenta's interval.
    let params = ClassifierParams {
        tolerance: 0.25,
        confidence: 0.98,
        effect_thresholds: (1.0, 1.0),
        critical_thresholds: (1.0, 1.0),
        measure: EffectMeasure::MeanRatio,
        interval: IntervalMethod::Kayenta,
    };
    for t in 1..=TICKS {
        let (x, y) = series.next();
        c.push(x);
        e.push(y);
        if t < KAYENTA_WARMUP {
            continue;
        }
        let from = t.saturating_sub(KAYENTA_WINDOW);
        if let Ok(r) = classify(&c[from..], &e[from..], &input, &params) {
            if r.label == Label::High {
                return Some(t);
            }
        }
    }
    None
}

struct Row {
    scenario: &'static str,
    judge: &'static str,
    runs: usize,
    alarms: usize,
    median_minutes: f64,
    null: bool,
}

fn evaluate(
    s: &Scenario,
    judge: &'static str,
    runs: usize,
    f: fn(&Scenario, u64) -> Option<usize>,
) -> Row {
    let started = Instant::now();
    let row = evaluate_inner(s, judge, runs, f);
    eprintln!(
        "  {} / {judge}: {runs} runs in {:.1} s",
        s.name,
        started.elapsed().as_secs_f64()
    );
    row
}

fn evaluate_inner(
    s: &Scenario,
    judge: &'static str,
    runs: usize,
    f: fn(&Scenario, u64) -> Option<usize>,
) -> Row {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let mut ticks: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..runs)
                        .step_by(threads)
                        .filter_map(|i| f(s, 0x5eed_0000 + i as u64 * 7919))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    ticks.sort_unstable();
    let median_minutes = if ticks.is_empty() {
        f64::NAN
    } else {
        ticks[(ticks.len() - 1) / 2] as f64 * TICK_SECS / 60.0
    };
    Row {
        scenario: s.name,
        judge,
        runs,
        alarms: ticks.len(),
        median_minutes,
        null: s.null,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (seq_runs, kay_runs) = if quick { (1_000, 20) } else { (10_000, 200) };
    let lat = |mult, sigma_mult, phi| Kind::Latency {
        mult,
        sigma_mult,
        phi,
    };
    let cnt = |base, mult, burst| Kind::Counts { base, mult, burst };
    let scenarios = [
        Scenario {
            name: "A/A latency, i.i.d.",
            kind: lat(1.0, 1.0, 0.0),
            batch: 1,
            null: true,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "A/A latency, AR(1) φ=0.8",
            kind: lat(1.0, 1.0, 0.8),
            batch: 1,
            null: true,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "A/A latency, AR(1) φ=0.8, batchSize 10",
            kind: lat(1.0, 1.0, 0.8),
            batch: 10,
            null: true,
            alpha: 0.01,
            kayenta: false,
        },
        Scenario {
            name: "A/A errors, Poisson (2/tick)",
            kind: cnt(2.0, 1.0, 1.0),
            batch: 1,
            null: true,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "A/A errors, bursty (incidents × 5)",
            kind: cnt(2.0, 1.0, 5.0),
            batch: 1,
            null: true,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "A/A errors, sparse (0.05/tick)",
            kind: cnt(0.05, 1.0, 1.0),
            batch: 1,
            null: true,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "latency +5 %",
            kind: lat(1.05, 1.0, 0.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "latency +10 %",
            kind: lat(1.10, 1.0, 0.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "latency +20 %",
            kind: lat(1.20, 1.0, 0.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "latency variance ×1.5 (median unchanged)",
            kind: lat(1.0, 1.5, 0.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "A/A latency, i.i.d., α = 0.05",
            kind: lat(1.0, 1.0, 0.0),
            batch: 1,
            null: true,
            alpha: 0.05,
            kayenta: false,
        },
        Scenario {
            name: "latency +5 %, α = 0.05",
            kind: lat(1.05, 1.0, 0.0),
            batch: 1,
            null: false,
            alpha: 0.05,
            kayenta: false,
        },
        Scenario {
            name: "latency +10 %, α = 0.05",
            kind: lat(1.10, 1.0, 0.0),
            batch: 1,
            null: false,
            alpha: 0.05,
            kayenta: false,
        },
        Scenario {
            name: "latency +20 %, α = 0.05",
            kind: lat(1.20, 1.0, 0.0),
            batch: 1,
            null: false,
            alpha: 0.05,
            kayenta: false,
        },
        Scenario {
            name: "errors ×1.5",
            kind: cnt(2.0, 1.5, 1.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "errors ×2",
            kind: cnt(2.0, 2.0, 1.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "errors ×3",
            kind: cnt(2.0, 3.0, 1.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
        Scenario {
            name: "sparse errors ×4 (0.05/tick)",
            kind: cnt(0.05, 4.0, 1.0),
            batch: 1,
            null: false,
            alpha: 0.01,
            kayenta: true,
        },
    ];
    println!("| scenario | judge | runs | alarm rate within 3 h | median time to alarm |");
    println!("|---|---|---:|---:|---:|");
    let start = Instant::now();
    for s in &scenarios {
        let mut rows = vec![evaluate(s, "coalmine-seq-v1", seq_runs, run_seq)];
        if s.kayenta {
            rows.push(evaluate(
                s,
                "NetflixACAJudge-v1.0 (30 min window)",
                kay_runs,
                run_kayenta,
            ));
        }
        for r in rows {
            let rate = r.alarms as f64 / r.runs as f64;
            let label = if r.null { "false alarms" } else { "detected" };
            let median = if r.median_minutes.is_nan() {
                "–".to_string()
            } else {
                format!("{:.1} min", r.median_minutes)
            };
            println!(
                "| {} | {} | {} | {:.2} % {label} | {median} |",
                r.scenario,
                r.judge,
                r.runs,
                100.0 * rate
            );
        }
    }
    eprintln!("validation took {:.0} s", start.elapsed().as_secs_f64());
}
