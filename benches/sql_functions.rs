//! The counter and histogram SQL functions ([`coalmine::query::timeseries`]).
//!
//! A latency histogram of 12 instances × 15 buckets (Prometheus's default bounds), scraped
//! every 15 s over a 30-minute window (120 samples per series, 21,600 points); one planned
//! query per measurement, as a run's tick executes it:
//! * `histogram_quantile` per minute: p99 per `date_bin` minute from the `increase` of every
//!   instance's buckets (the target: p50 ≤ 5 ms per query);
//! * the same rows summed instead (`sum(value)` by minute and bound): the floor of reading
//!   and grouping the same points, to show what the functions add;
//! * `rate` per minute of a counter per instance (12 series × 120 samples).
//!
//! `cargo bench --bench sql_functions`

use criterion::{criterion_group, criterion_main, Criterion};

use coalmine::query::{Binding, Engine};
use coalmine::store::segment::PointColumns;
use coalmine::store::{message_offsets, Store};

const T0: i64 = 1_795_302_000_000;
const INSTANCES: usize = 12;
const SAMPLES: i64 = 120; // 30 minutes at 15 s
const BOUNDS: [&str; 15] = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5",
    "7.5", "10", "+Inf",
];

#[path = "support/run_data.rs"]
mod run_data;

fn store(dir: &std::path::Path) -> Store {
    let store = run_data::open_store(dir);
    let mut pts = PointColumns::default();
    {
        let mut reg = store.registry_mut();
        for i in 0..INSTANCES {
            let inst = format!("i-{i}");
            for (b, le) in BOUNDS.iter().enumerate() {
                let id = reg.resolve(
                    "http_request_duration_seconds_bucket",
                    &[
                        ("app", "svc"),
                        ("instance", &inst),
                        ("le", le),
                        ("version", "v1"),
                    ],
                );
                // 150 requests per scrape, spread over the buckets (cumulative)
                let per = (150 * (b + 1) / BOUNDS.len()) as f64;
                for k in 0..SAMPLES {
                    pts.push(id, T0 + 5_000 + k * 15_000, per * k as f64);
                }
            }
            let id = reg.resolve(
                "http_requests_total",
                &[("app", "svc"), ("instance", &inst), ("version", "v1")],
            );
            for k in 0..SAMPLES {
                pts.push(id, T0 + 5_000 + k * 15_000, (150 * k) as f64);
            }
        }
    }
    store.append(&pts, &message_offsets("bench", 0, 0));
    store.flush().unwrap();
    store
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("coalmine-bench-sqlfn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::new(store(&dir));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let binding = Binding::new(
        [("version".to_string(), "v1".to_string())].into(),
        T0,
        T0 + 1_800_000,
    );
    let queries = [
        (
            "histogram_quantile p99 per minute, 12 instances × 15 buckets, 30 min",
            "SELECT t AS ts, histogram_quantile(0.99, le, inc) AS value FROM (SELECT date_bin(INTERVAL '1 minute', ts) AS t, le, instance, increase(value, ts) AS inc FROM metrics WHERE metric = 'http_request_duration_seconds_bucket' GROUP BY 1, 2, 3) GROUP BY t",
        ),
        (
            "peer: sum(value) per minute and bound, same points",
            "SELECT t AS ts, sum(s) AS value FROM (SELECT date_bin(INTERVAL '1 minute', ts) AS t, le, sum(value) AS s FROM metrics WHERE metric = 'http_request_duration_seconds_bucket' GROUP BY 1, 2) GROUP BY t",
        ),
        (
            "rate per minute, 12 counters, 30 min",
            "SELECT t AS ts, sum(r) AS value FROM (SELECT date_bin(INTERVAL '1 minute', ts) AS t, instance, rate(value, ts, INTERVAL '1 minute') AS r FROM metrics WHERE metric = 'http_requests_total' GROUP BY 1, 2) GROUP BY t",
        ),
    ];
    let mut group = c.benchmark_group("sql functions");
    group.sample_size(50);
    for (name, sql) in queries {
        let q = rt.block_on(engine.plan(sql, binding.clone())).unwrap();
        let series = rt.block_on(q.series()).unwrap();
        assert_eq!(series[0].values.len(), 30, "{name}: 30 minutes");
        group.bench_function(name, |b| b.iter(|| rt.block_on(q.series()).unwrap()));
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
