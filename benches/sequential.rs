//! `coalmine-seq-v1` and `coalmine-seq-v2` state updates: a run's tick over 10,000 metrics,
//! each getting 100 new points per arm (the target: < 50 ms for the tick).
//!
//! `cargo bench --bench sequential`. States are warmed with 1,000 points per arm first and
//! keep growing across iterations, as a long run's would. Measured on one thread, on two (the
//! metrics split in two halves, as `judge_states` does from 200,000 points on), and as a
//! whole run tick through `judge_states` (updates, per-metric reports, classification and
//! score).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use std::collections::BTreeMap;

use coalmine::judge::json::JsonPath;
use coalmine::judge::sequential::{
    judge_states, Alternative, Horizon, MetricType, SequentialParams, SequentialState,
};
use coalmine::judge::{CanaryConfig, MetricSetPair, Thresholds};

#[path = "data.rs"]
#[allow(dead_code)]
mod data;

const METRICS: usize = 10_000;
const NEW_POINTS: usize = 100;

/// Warmed states: 1,000 points per arm, in one look (`coalmine-seq-v1`) or in 40 looks of 25
/// (`coalmine-seq-v2`, whose warm-up needs 30 looks), for a run of 1,080 ticks.
fn states(kind: MetricType, v2: bool, pool_c: &[f64], pool_e: &[f64]) -> Vec<SequentialState> {
    let mut p = if v2 {
        SequentialParams::v2(kind)
    } else {
        SequentialParams::new(kind)
    };
    p.alternative = Alternative::Either;
    p.alpha = 0.01 / METRICS as f64;
    p.horizon_looks = 1080.0;
    if kind == MetricType::Continuous && !v2 {
        p.quantiles = vec![0.5, 0.9];
    }
    let looks = if v2 { 40 } else { 1 };
    (0..METRICS)
        .map(|i| {
            let mut s = SequentialState::new(p.clone()).unwrap();
            let off = (i * 37) % (pool_c.len() - 1000);
            let per = 1000 / looks;
            for k in 0..looks {
                let at = off + k * per;
                s.update(&pool_c[at..at + per], &pool_e[at..at + per])
                    .unwrap();
            }
            s
        })
        .collect()
}

fn tick(c: &mut Criterion) {
    let mut g = data::Gen::new(42);
    let lat_c: Vec<f64> = (0..20_000)
        .map(|_| (4.6 + 0.3 * g.normal(0.0, 1.0)).exp())
        .collect();
    let lat_e: Vec<f64> = (0..20_000)
        .map(|_| (4.6 + 0.3 * g.normal(0.0, 1.0)).exp())
        .collect();
    let cnt_c: Vec<f64> = (0..20_000).map(|_| (g.uniform() * 6.0).floor()).collect();
    let cnt_e: Vec<f64> = (0..20_000).map(|_| (g.uniform() * 6.0).floor()).collect();
    let mut group = c.benchmark_group("sequential_tick_10000_metrics_x_100_points");
    group.sample_size(20);
    group.throughput(Throughput::Elements((METRICS * NEW_POINTS * 2) as u64));
    for (name, kind, v2, pc, pe) in [
        (
            "continuous p50+p90",
            MetricType::Continuous,
            false,
            &lat_c,
            &lat_e,
        ),
        ("count", MetricType::Count, false, &cnt_c, &cnt_e),
        (
            "seq-v2 continuous (paired + p90 tail)",
            MetricType::Continuous,
            true,
            &lat_c,
            &lat_e,
        ),
        (
            "seq-v2 count (dispersion)",
            MetricType::Count,
            true,
            &cnt_c,
            &cnt_e,
        ),
    ] {
        let mut st = states(kind, v2, pc, pe);
        let mut round = 0usize;
        let update = |st: &mut [SequentialState], first: usize, round: usize| {
            for (i, s) in st.iter_mut().enumerate() {
                let off = ((first + i) * 131 + round * 977) % (pc.len() - NEW_POINTS);
                s.update(
                    black_box(&pc[off..off + NEW_POINTS]),
                    black_box(&pe[off..off + NEW_POINTS]),
                )
                .unwrap();
            }
        };
        group.bench_function(format!("{name}, 1 thread"), |b| {
            b.iter(|| {
                round += 1;
                update(&mut st, 0, round);
            })
        });
        group.bench_function(format!("{name}, 2 threads"), |b| {
            b.iter(|| {
                round += 1;
                let (a, z) = st.split_at_mut(METRICS / 2);
                std::thread::scope(|s| {
                    s.spawn(|| update(a, 0, round));
                    update(z, METRICS / 2, round);
                });
            })
        });
        let exact: u64 = st.iter().map(|s| s.monitor.exact_looks).sum();
        let looks: u64 = st.iter().map(|s| s.looks()).sum();
        eprintln!("{name}: {exact} of {looks} looks needed the exact e-value");
    }
    group.finish();

    // A whole run tick: 10,000 metric pairs of 100 new values per arm through judge_states.
    let metrics: Vec<serde_json::Value> = (0..METRICS)
        .map(|i| {
            serde_json::json!({
                "name": format!("m{i}"), "query": {"type": "sql"}, "groups": ["g"],
                "analysisConfigurations": {"canary": {"direction": "either"}}
            })
        })
        .collect();
    let config = CanaryConfig::from_value(
        &serde_json::json!({
            "judge": {"name": "coalmine-seq-v1"},
            "metrics": metrics,
            "classifier": {"groupWeights": {"g": 100}},
        }),
        &JsonPath::root(),
    )
    .unwrap();
    let thresholds = Thresholds {
        pass: 95.0,
        marginal: 75.0,
    };
    let pairs_at = |round: usize| -> Vec<MetricSetPair> {
        (0..METRICS)
            .map(|i| {
                let off = (i * 131 + round * 977) % (lat_c.len() - NEW_POINTS);
                MetricSetPair {
                    name: format!("m{i}"),
                    id: i.to_string(),
                    tags: BTreeMap::new(),
                    control: lat_c[off..off + NEW_POINTS].to_vec(),
                    experiment: lat_e[off..off + NEW_POINTS].to_vec(),
                    times: None,
                    histogram: None,
                }
            })
            .collect()
    };
    let mut run_states = BTreeMap::new();
    for round in 0..10 {
        judge_states(
            coalmine::judge::sequential::SeqVersion::V1,
            &config,
            &pairs_at(round),
            &mut run_states,
            thresholds,
            Horizon::Looks(120),
        )
        .unwrap();
    }
    let mut group = c.benchmark_group("sequential_run_tick_judge_states");
    group.sample_size(10);
    let mut round = 10;
    group.bench_function("10000 metrics x 100 new points, continuous", |b| {
        b.iter_batched(
            || {
                round += 1;
                pairs_at(round)
            },
            |pairs| {
                judge_states(
                    coalmine::judge::sequential::SeqVersion::V1,
                    &config,
                    &pairs,
                    &mut run_states,
                    thresholds,
                    Horizon::Looks(120),
                )
                .unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();

    // The per-tick report a run publishes (exact e-values and confidence sequences).
    let mut group = c.benchmark_group("sequential_report");
    let st = states(MetricType::Continuous, false, &lat_c, &lat_e);
    group.bench_function("continuous p50+p90, 1000 points/arm", |b| {
        b.iter(|| black_box(&st[7]).report())
    });
    let st = states(MetricType::Count, false, &cnt_c, &cnt_e);
    group.bench_function("count", |b| b.iter(|| black_box(&st[7]).report()));
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
