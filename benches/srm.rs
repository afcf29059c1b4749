//! Validation of the traffic-split guard (`trafficSplit`, [`coalmine::judge::split`]).
//!
//! `cargo bench --bench srm` (release; about a minute on 2 cores). `-- --quick` runs a
//! tenth of the runs. Prints the table that `docs/slo.md` shows.
//!
//! Every run lasts 3 h of 10 s looks (1,080 looks, each checked): 100 requests/s arrive as
//! Poisson (1,000 per look on average; "daily load" multiplies the rate by
//! `1 + 0.5·sin(2πt/3 h)`), each routed to the canary with probability `p`. "Sticky
//! sessions": requests come in sessions of a geometric number of requests (mean 10), each
//! session routed as a whole, so counts are overdispersed while the share is right.
//!
//! Compared, on the same series:
//! * **coalmine**: the guard as a run uses it (α = 0.001, counts scaled by their
//!   overdispersion), alarm at the first look where the e-value reaches 1/α.
//! * **savvi multinomial** (the same e-process without the overdispersion scaling).
//! * **χ² every look**: the classic SRM check (Pearson χ² of the cumulative counts,
//!   p < 0.001), repeated at every look as a dashboard would.

use std::time::Instant;

use coalmine::judge::sequential::CountTest;
use coalmine::judge::split::{Looks, SplitGuard, SplitState};
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson};

const LOOKS: usize = 1080;
const LOOK_SECS: f64 = 10.0;
const ALPHA: f64 = 0.001;
/// |z| above which the two-sided p-value is below 0.001.
const Z_001: f64 = 3.290_526_731_491_926;

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// The canary's true share, and the share configured.
    share: f64,
    expected: f64,
    /// Requests per second.
    rate: f64,
    daily: bool,
    sticky: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "A/A 50/50",
        share: 0.5,
        expected: 0.5,
        rate: 100.0,
        daily: false,
        sticky: false,
    },
    Scenario {
        name: "A/A 50/50, daily load",
        share: 0.5,
        expected: 0.5,
        rate: 100.0,
        daily: true,
        sticky: false,
    },
    Scenario {
        name: "A/A 10/90",
        share: 0.1,
        expected: 0.1,
        rate: 100.0,
        daily: false,
        sticky: false,
    },
    Scenario {
        name: "A/A 50/50, sticky sessions",
        share: 0.5,
        expected: 0.5,
        rate: 100.0,
        daily: false,
        sticky: true,
    },
    Scenario {
        name: "45/55, 50/50 configured",
        share: 0.45,
        expected: 0.5,
        rate: 100.0,
        daily: false,
        sticky: false,
    },
    Scenario {
        name: "45/55, sticky sessions",
        share: 0.45,
        expected: 0.5,
        rate: 100.0,
        daily: false,
        sticky: true,
    },
    Scenario {
        name: "49/51, 50/50 configured",
        share: 0.49,
        expected: 0.5,
        rate: 100.0,
        daily: false,
        sticky: false,
    },
    Scenario {
        name: "45/55 at 1 req/s",
        share: 0.45,
        expected: 0.5,
        rate: 1.0,
        daily: false,
        sticky: false,
    },
];

/// One look's (baseline, canary) requests.
fn look(s: &Scenario, t: usize, rng: &mut rand::rngs::StdRng) -> (f64, f64) {
    let load = if s.daily {
        1.0 + 0.5 * (2.0 * std::f64::consts::PI * t as f64 / LOOKS as f64).sin()
    } else {
        1.0
    };
    let lambda = s.rate * LOOK_SECS * load;
    if s.sticky {
        // sessions: Poisson many, geometric sizes (mean 10), routed whole
        let sessions = Poisson::new(lambda / 10.0).map_or(0.0, |p| p.sample(rng)) as u64;
        let (mut c, mut e) = (0.0, 0.0);
        for _ in 0..sessions {
            let size = (rng.random::<f64>().ln() / (0.9f64).ln()).floor() + 1.0;
            if rng.random::<f64>() < s.share {
                e += size;
            } else {
                c += size;
            }
        }
        (c, e)
    } else {
        let n = Poisson::new(lambda).map_or(0.0, |p| p.sample(rng)) as u64;
        let e = Binomial::new(n, s.share).map_or(0, |b| b.sample(rng)) as f64;
        (n as f64 - e, e)
    }
}

/// The look of the first alarm of each method (None: none in 3 h).
fn run(s: &Scenario, seed: u64) -> [Option<usize>; 3] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let guard = SplitGuard {
        metric: "requests".into(),
        share: s.expected,
        alpha: ALPHA,
    };
    let mut ours = SplitState::new(&guard);
    let mut plain = CountTest::new(s.expected, 100.0, &[], ALPHA);
    let (mut k, mut n) = (0.0, 0.0);
    let mut first = [None; 3];
    for t in 0..LOOKS {
        let (c, e) = look(s, t, &mut rng);
        if first[0].is_none() {
            ours.observe(&Looks {
                control: vec![c],
                experiment: vec![e],
            });
            if ours.mismatched() {
                first[0] = Some(t + 1);
            }
        }
        if first[1].is_none() {
            plain.add(c, e);
            if plain.ln_e_two_sided() >= (1.0 / ALPHA).ln() {
                first[1] = Some(t + 1);
            }
        }
        k += e;
        n += c + e;
        let z = (k - s.expected * n) / (n * s.expected * (1.0 - s.expected)).sqrt();
        if first[2].is_none() && n > 0.0 && z.abs() > Z_001 {
            first[2] = Some(t + 1);
        }
        if first.iter().all(Option::is_some) {
            break;
        }
    }
    first
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs: u64 = if quick { 200 } else { 2000 };
    println!(
        "| scenario | method | runs | alarms | median time to alarm | time per run (3 methods) |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for s in SCENARIOS {
        let start = Instant::now();
        let results: Vec<[Option<usize>; 3]> = (0..runs).map(|i| run(s, 0x5a17 + i)).collect();
        let per_run = start.elapsed().as_secs_f64() / runs as f64;
        for (m, name) in ["coalmine guard", "savvi multinomial", "χ² every look"]
            .iter()
            .enumerate()
        {
            let hits: Vec<f64> = results
                .iter()
                .filter_map(|r| r[m])
                .map(|l| l as f64 * LOOK_SECS)
                .collect();
            let rate = 100.0 * hits.len() as f64 / runs as f64;
            let time = if hits.is_empty() {
                "–".to_string()
            } else {
                let secs = median(hits);
                if secs < 120.0 {
                    format!("{secs:.0} s")
                } else {
                    format!("{:.1} min", secs / 60.0)
                }
            };
            let timing = if m == 0 {
                format!("{:.2} ms", per_run * 1e3)
            } else {
                String::new()
            };
            println!(
                "| {} | {name} | {runs} | {rate:.2} % | {time} | {timing} |",
                s.name
            );
        }
    }
}
