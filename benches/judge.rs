//! Judge benchmarks: the Mann–Whitney test (R semantics and Kayenta's) and full judgments.
//!
//! `cargo bench --bench judge`. The comparison against R in the same run is
//! `benches/compare_r.py`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

use coalmine::judge::kayenta_mw::mann_whitney_kayenta;
use coalmine::judge::{mann_whitney, run_with, JudgeKind, JudgeRequest, Parallelism};

#[path = "data.rs"]
mod data;

fn mann_whitney_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("mann_whitney");
    for n in [40usize, 100, 1_000, 10_000, 100_000] {
        let mut g = data::Gen::new(n as u64);
        let x = g.normals(n, 0.1, 1.0);
        let y = g.normals(n, 0.0, 1.0);
        group.throughput(Throughput::Elements(2 * n as u64));
        group.bench_with_input(BenchmarkId::new("coalmine", n), &n, |b, _| {
            b.iter(|| mann_whitney(black_box(&x), black_box(&y), 0.95, None, true).unwrap())
        });
        if n <= 10_000 {
            group.bench_with_input(BenchmarkId::new("kayenta", n), &n, |b, _| {
                b.iter(|| mann_whitney_kayenta(black_box(&x), black_box(&y), 0.95).unwrap())
            });
        }
    }
    group.finish();
}

fn judgment_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("judgment_100_metrics_1000_points");
    group.sample_size(20);
    let value = data::judge_request(100, 1_000, 42);
    let request = JudgeRequest::from_value(&value).unwrap();
    for kind in [
        JudgeKind::NetflixAcaV1,
        JudgeKind::CoalmineV1,
        JudgeKind::CoalmineV2,
    ] {
        for (label, p) in [
            ("1 thread", Parallelism::Sequential),
            ("all cores", Parallelism::Auto),
        ] {
            group.bench_function(format!("{} {label}", kind.name()), |b| {
                b.iter(|| {
                    let r = black_box(&request);
                    run_with(
                        kind,
                        &r.canary_config,
                        &r.metric_set_pair_list,
                        r.score_thresholds,
                        p,
                    )
                    .unwrap()
                })
            });
        }
    }
    group.bench_function("parse+judge coalmine-v1", |b| {
        b.iter(|| coalmine::judge::judge_value(black_box(&value), Some("coalmine-v1")).unwrap())
    });
    group.finish();
}

criterion_group!(benches, mann_whitney_bench, judgment_bench);
criterion_main!(benches);
