//! Timing harness for `benches/compare_r.py`: runs coalmine on files the peer (R) also reads,
//! and prints median wall times as JSON. Not part of the product.
//!
//! `cargo run --release --example timing -- mw X.csv Y.csv REPS`
//! `cargo run --release --example timing -- judge REQUEST.json REPS`

use std::time::Instant;

use coalmine::judge::{judge_request, mann_whitney, JudgeKind, JudgeRequest};

fn read_column(path: &str) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{path}: {l:?}: {e}"))
        })
        .collect()
}

fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mw") => {
            let (x, y) = (read_column(&args[1]), read_column(&args[2]));
            let reps: usize = args[3].parse().unwrap();
            let r = mann_whitney(&x, &y, 0.95, None, true).unwrap();
            let secs = median_seconds(reps, || {
                std::hint::black_box(mann_whitney(&x, &y, 0.95, None, true).unwrap());
            });
            println!(
                "{}",
                serde_json::json!({"median_s": secs, "reps": reps, "lower": r.lower, "upper": r.upper,
                                   "estimate": r.estimate, "p_value": r.p_value, "method": r.method.as_str()})
            );
        }
        Some("judge") => {
            let text = std::fs::read_to_string(&args[1]).unwrap();
            let reps: usize = args[2].parse().unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let request = JudgeRequest::from_value(&value).unwrap();
            let mut out = serde_json::Map::new();
            for kind in [JudgeKind::NetflixAcaV1, JudgeKind::CoalmineV1] {
                let secs = median_seconds(reps, || {
                    std::hint::black_box(judge_request(&request, Some(kind.name())).unwrap());
                });
                let score = judge_request(&request, Some(kind.name()))
                    .unwrap()
                    .score
                    .score;
                out.insert(
                    kind.name().into(),
                    serde_json::json!({"median_s": secs, "score": score}),
                );
            }
            println!("{}", serde_json::Value::Object(out));
        }
        _ => {
            eprintln!("usage: timing mw X.csv Y.csv REPS | timing judge REQUEST.json REPS");
            std::process::exit(2);
        }
    }
}
