//! Validation of `coalmine-seq-v2` and `coalmine-seq-v1` against Kayenta-style continuous
//! judgment.
//!
//! `cargo bench --bench validate_sequential` (release; about 25 minutes on 2 cores). Prints the
//! table that `docs/sequential.md` shows. `-- --quick` runs a tenth of the runs;
//! `-- --only <text>` the scenarios whose name contains the text.
//!
//! Every run lasts 3 h of 10 s ticks (1,080 ticks); each tick delivers one value per arm
//! (a per-interval aggregate, as a Kayenta metric series) and every tick is judged:
//! * `coalmine-seq-v2` with its defaults (α = 0.01, warm-up 30 looks, `direction =
//!   increase`): one [`SequentialState::update`] per tick, alarm at the first crossing of
//!   `1/α`. 2,000 runs per scenario.
//! * `coalmine-seq-v1`: the same, testing p50 and p90 (counts: the Poisson e-process);
//!   2,000 runs.
//! * `NetflixACAJudge-v1.0` (Kayenta standalone): from tick 30 (5 min) on, the classifier
//!   on the last `w` values (sliding window) at every tick, alarm at the first `High`. Its
//!   own setting (30 min window, confidence 0.98), and for the continuous-shift scenarios
//!   stricter settings (longer window, higher confidence), to compare detection at a
//!   false-alarm rate no higher than coalmine's. 200 runs per scenario and setting (each
//!   run is ~1,000 Kayenta Mann–Whitney intervals).
//!
//! Latency: lognormal, median 100, σ_log 0.25; regressions multiply the canary's values
//! (+5/10/20 %) or its σ_log (×1.5, variance only). AR(1): the log-latency of each arm is
//! autocorrelated from tick to tick with φ = 0.5 or 0.8 (same marginal). "Shared load":
//! both arms' values are multiplied by `1 + 0.3·sin(2πt/1 h)`. Counts: errors per tick
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
const KAYENTA_WARMUP: usize = 30;

#[derive(Clone, Copy)]
enum Kind {
    Latency {
        mult: f64,
        sigma_mult: f64,
        phi: f64,
        shared: f64,
    },
    Counts {
        base: f64,
        mult: f64,
        burst: f64,
    },
}

/// A Kayenta sliding-window setting: window (ticks) and confidence.
type KayentaSetting = (usize, f64);

/// Kayenta's own: 30 min window, NetflixACAJudge-v1.0's fixed confidence 0.98.
const KAYENTA_OWN: &[KayentaSetting] = &[(180, 0.98)];
/// The same and stricter settings (for the continuous-shift rows).
const KAYENTA_SWEEP: &[KayentaSetting] = &[(180, 0.98), (180, 0.999), (360, 0.999), (360, 0.9999)];

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    kind: Kind,
    null: bool,
    kayenta: &'static [KayentaSetting],
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
                shared,
            } => {
                let innov = (1.0 - phi * phi).sqrt();
                for s in &mut self.state {
                    *s = phi * *s + innov * self.g.normal(0.0, 1.0);
                }
                let sigma = 0.25;
                // a load both arms share: ±`shared` over each hour (360 ticks)
                let load =
                    1.0 + shared * (2.0 * std::f64::consts::PI * self.t as f64 / 360.0).sin();
                let c = 100.0 * load * (sigma * self.state[0]).exp();
                let e = 100.0 * load * mult * (sigma * sigma_mult * self.state[1]).exp();
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

/// Which sequential judge a run uses.
#[derive(Clone, Copy)]
enum Seq {
    V1,
    V2,
}

fn seq_params(s: &Scenario, judge: Seq) -> SequentialParams {
    let metric_type = match s.kind {
        Kind::Latency { .. } => MetricType::Continuous,
        Kind::Counts { .. } => MetricType::Count,
    };
    let mut p = match judge {
        Seq::V1 => {
            let mut p = SequentialParams::new(metric_type);
            p.quantiles = vec![0.5, 0.9];
            p
        }
        Seq::V2 => SequentialParams::v2(metric_type),
    };
    p.alternative = Alternative::Increase;
    p.alpha = 0.01;
    // what a run of 1,080 ticks sets: the mixtures tuned for the run's length
    p.t_opt = TICKS as f64;
    p.horizon_looks = TICKS as f64;
    p
}

/// Tick of the first alarm, if any.
fn run_seq(s: &Scenario, judge: Seq, seed: u64) -> Option<usize> {
    let mut state = SequentialState::new(seq_params(s, judge)).unwrap();
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

fn run_kayenta(s: &Scenario, (window, confidence): KayentaSetting, seed: u64) -> Option<usize> {
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
    // NetflixACAJudge-v1.0: tolerance 0.25 hard-coded, Kayenta's interval; its confidence
    // (0.98) as the setting says.
    let params = ClassifierParams {
        tolerance: 0.25,
        confidence,
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
        let from = t.saturating_sub(window);
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
    judge: String,
    runs: usize,
    alarms: usize,
    median_minutes: f64,
    null: bool,
}

fn evaluate(
    s: &Scenario,
    judge: String,
    runs: usize,
    f: &(dyn Fn(u64) -> Option<usize> + Sync),
) -> Row {
    let started = Instant::now();
    eprintln!("  {} / {judge}: {runs} runs …", s.name);
    let row = evaluate_inner(s, judge, runs, f);
    eprintln!("    {:.1} s", started.elapsed().as_secs_f64());
    row
}

fn evaluate_inner(
    s: &Scenario,
    judge: String,
    runs: usize,
    f: &(dyn Fn(u64) -> Option<usize> + Sync),
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
                        .filter_map(|i| f(0x5eed_0000 + i as u64 * 7919))
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
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let (seq_runs, kay_runs) = if quick { (200, 20) } else { (2_000, 200) };
    let lat = |mult, sigma_mult, phi, shared| Kind::Latency {
        mult,
        sigma_mult,
        phi,
        shared,
    };
    let cnt = |base, mult, burst| Kind::Counts { base, mult, burst };
    let sc = |name, kind, null, kayenta| Scenario {
        name,
        kind,
        null,
        kayenta,
    };
    let scenarios = [
        sc(
            "A/A latency, i.i.d.",
            lat(1.0, 1.0, 0.0, 0.0),
            true,
            KAYENTA_SWEEP,
        ),
        sc(
            "A/A latency, AR(1) φ=0.5",
            lat(1.0, 1.0, 0.5, 0.0),
            true,
            KAYENTA_OWN,
        ),
        sc(
            "A/A latency, AR(1) φ=0.8",
            lat(1.0, 1.0, 0.8, 0.0),
            true,
            KAYENTA_SWEEP,
        ),
        sc(
            "A/A latency, shared load ±30 %",
            lat(1.0, 1.0, 0.0, 0.3),
            true,
            KAYENTA_OWN,
        ),
        sc(
            "A/A errors, Poisson (2/tick)",
            cnt(2.0, 1.0, 1.0),
            true,
            KAYENTA_OWN,
        ),
        sc(
            "A/A errors, bursty (incidents × 5)",
            cnt(2.0, 1.0, 5.0),
            true,
            KAYENTA_OWN,
        ),
        sc(
            "A/A errors, sparse (0.05/tick)",
            cnt(0.05, 1.0, 1.0),
            true,
            KAYENTA_OWN,
        ),
        sc("latency +5 %", lat(1.05, 1.0, 0.0, 0.0), false, KAYENTA_OWN),
        sc(
            "latency +10 %",
            lat(1.10, 1.0, 0.0, 0.0),
            false,
            KAYENTA_SWEEP,
        ),
        sc(
            "latency +20 %",
            lat(1.20, 1.0, 0.0, 0.0),
            false,
            KAYENTA_OWN,
        ),
        sc(
            "latency +10 %, AR(1) φ=0.5",
            lat(1.10, 1.0, 0.5, 0.0),
            false,
            KAYENTA_OWN,
        ),
        sc(
            "latency +10 %, AR(1) φ=0.8",
            lat(1.10, 1.0, 0.8, 0.0),
            false,
            KAYENTA_SWEEP,
        ),
        sc(
            "latency +10 %, shared load ±30 %",
            lat(1.10, 1.0, 0.0, 0.3),
            false,
            KAYENTA_OWN,
        ),
        sc(
            "latency variance ×1.5 (median unchanged)",
            lat(1.0, 1.5, 0.0, 0.0),
            false,
            KAYENTA_OWN,
        ),
        sc("errors ×1.5", cnt(2.0, 1.5, 1.0), false, KAYENTA_OWN),
        sc("errors ×2", cnt(2.0, 2.0, 1.0), false, KAYENTA_OWN),
        sc("errors ×2, bursty", cnt(2.0, 2.0, 5.0), false, KAYENTA_OWN),
        sc("errors ×3", cnt(2.0, 3.0, 1.0), false, KAYENTA_OWN),
        sc(
            "sparse errors ×4 (0.05/tick)",
            cnt(0.05, 4.0, 1.0),
            false,
            KAYENTA_OWN,
        ),
    ];
    println!("| scenario | judge | runs | alarm rate within 3 h | median time to alarm |");
    println!("|---|---|---:|---:|---:|");
    let start = Instant::now();
    for s in scenarios
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
    {
        let mut rows = vec![
            evaluate(s, "coalmine-seq-v2".into(), seq_runs, &|seed| {
                run_seq(s, Seq::V2, seed)
            }),
            evaluate(s, "coalmine-seq-v1".into(), seq_runs, &|seed| {
                run_seq(s, Seq::V1, seed)
            }),
        ];
        for &setting in s.kayenta {
            let (window, confidence) = setting;
            rows.push(evaluate(
                s,
                format!(
                    "NetflixACAJudge-v1.0 ({} min window, confidence {confidence})",
                    window as f64 * TICK_SECS / 60.0
                ),
                kay_runs,
                &|seed| run_kayenta(s, setting, seed),
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
