//! Re-judging an archive in Rust, without Python or archive loading in the timing:
//! `cargo bench --bench rejudge`. The Python figure against scipy is
//! `benches/rejudge_vs_scipy.py`; this bench isolates the engine for profiling.
//!
//! Fixture: 300 runs × 5 judgments × 20 metrics (`coalmine demo --archive` data; runs that
//! fail stop early, leaving ~1,100 judgments of 30 values a side).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::atomic::{AtomicBool, AtomicUsize};

use coalmine::archive::fixture::{generate, FixtureOptions};
use coalmine::archive::rejudge::rejudge;
use coalmine::archive::Archive;

fn rejudge_bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("coalmine-bench-rejudge-{}", std::process::id()));
    let opts = FixtureOptions {
        runs: 300,
        judgments: 5,
        metrics: 20,
        ..FixtureOptions::default()
    };
    generate(&dir, &opts).expect("fixture");
    let archive = Archive::open(&dir).expect("archive");
    let n = archive.judgments.len();
    let mut group = c.benchmark_group(format!("rejudge_{n}_judgments_20_metrics"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for threads in [1usize, 2] {
        group.bench_function(format!("NetflixACAJudge-v1.0 {threads} thread(s)"), |b| {
            b.iter(|| {
                let (stop, done) = (AtomicBool::new(false), AtomicUsize::new(0));
                rejudge(
                    &archive,
                    Some("NetflixACAJudge-v1.0"),
                    &serde_json::Value::Null,
                    threads,
                    &stop,
                    &done,
                )
                .expect("rejudge")
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, rejudge_bench);
criterion_main!(benches);
