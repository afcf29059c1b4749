//! The HTML report of a run: 20 SQL metrics × 120 judgments, 30-minute sliding windows over
//! 6 + 6 instances writing 1 point/s each (the run tick bench's data, two and a half hours
//! of it). Once with per-minute metrics (30 values a side), once with per-second ones (1,800
//! values a side, thinned for display).
//!
//! Target: ≤ 300 ms and ≤ 3 MB of HTML. Peer, measured in the same run: the same run as
//! JSON, what `GET /runs/{id}` returns.
//!
//! `cargo bench --bench report`

use criterion::{criterion_group, criterion_main, Criterion};

use coalmine::query::Engine;
use coalmine::report::{run_html, Form};
use coalmine::runs::{Judgment, PreparedRun, Run, RunStatus};

#[path = "support/run_data.rs"]
mod run_data;
use run_data::{config, run_spec, store, T0, WINDOW_S};

const JUDGMENTS: i64 = 120;

fn report_bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("coalmine-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = store(&dir, WINDOW_S + JUDGMENTS * 60);
    let engine = Engine::new(store.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("report");
    group.sample_size(20);
    for (bin_s, label) in [(60, "per-minute metrics"), (1, "per-second metrics")] {
        let cfg = config(bin_s);
        let prepared = rt
            .block_on(PreparedRun::prepare(&engine, &cfg, run_spec()))
            .unwrap();
        let mut judgments = Vec::new();
        let mut pairs = Vec::new();
        for i in 0..JUDGMENTS {
            let tick = T0 + (WINDOW_S + i * 60) * 1000;
            let (result, p) = rt.block_on(prepared.judge(tick)).unwrap();
            judgments.push(Judgment::new(
                i as u64 + 1,
                tick,
                (tick - WINDOW_S * 1000, tick),
                result,
                0.0,
                tick,
            ));
            pairs = p;
        }
        let run = Run {
            id: format!("bench-{bin_s}s"),
            spec: run_spec(),
            config: cfg,
            status: RunStatus::Pass,
            created_ms: T0,
            next_tick: JUDGMENTS as u64 + 1,
            judgments,
            message: None,
            sequential: Default::default(),
            traffic_split: None,
        };
        let pairs: Vec<_> = pairs.into_iter().map(|p| p.pair).collect();
        let values: usize = pairs
            .iter()
            .map(|p| p.control.len() + p.experiment.len())
            .sum();
        let page = run_html(&run, &pairs, "the last window", Form::Page);
        let json = serde_json::to_vec(&run).unwrap();
        println!(
            "{label}: {} values in the last window's series; report {:.2} MB, run JSON {:.2} MB",
            values,
            page.len() as f64 / 1e6,
            json.len() as f64 / 1e6
        );
        assert!(page.len() < 3_000_000, "the report is at most 3 MB");
        group.bench_function(format!("run report, {label}"), |b| {
            b.iter(|| run_html(&run, &pairs, "the last window", Form::Page))
        });
        group.bench_function(format!("run JSON (GET /runs/{{id}}), {label}"), |b| {
            b.iter(|| serde_json::to_vec(&run).unwrap())
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, report_bench);
criterion_main!(benches);
