//! Store benchmarks on 10M points of 1,000 series (one point per second per series):
//! the window scan of one series' hour (p50 latency), and, printed once, resident bytes per
//! point in the hot store and bytes per point on disk.
//!
//! `cargo bench --bench store`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use coalmine::store::segment::PointColumns;
use coalmine::store::{message_offsets, ScanFilter, Store, StoreConfig};

const SERIES: usize = 1_000;
const PER_SERIES: usize = 10_000; // 10M points
const T0: i64 = 1_795_302_000_000;

fn build(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention = Duration::from_secs(100 * 365 * 24 * 3600);
    cfg.hot_window = cfg.retention;
    cfg.flush_points = 1_000_000;
    cfg.compact_min_segments = 100; // measure the flushed layout
    let store = Store::open(cfg).unwrap();
    let ids: Vec<u32> = {
        let mut reg = store.registry_mut();
        (0..SERIES)
            .map(|s| {
                reg.resolve(
                    "http.latency_ms",
                    &[("app", "checkout"), ("instance", &format!("i-{s}"))],
                )
            })
            .collect()
    };
    // arrival order: time-major, as a live stream delivers it
    let mut pts = PointColumns::default();
    let mut offset = 0;
    for t in 0..PER_SERIES {
        for (s, &id) in ids.iter().enumerate() {
            pts.push(id, T0 + t as i64 * 1000, (s + t) as f64);
        }
        if pts.len() >= 100_000 {
            store.append(&pts, &message_offsets("bench", 0, offset));
            offset += 1;
            pts.clear();
            if store.active_points() >= 1_000_000 {
                store.flush().unwrap();
            }
        }
    }
    store.append(&pts, &message_offsets("bench", 0, offset));
    store.flush().unwrap();
    store
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn store_bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("coalmine-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rss_before = rss_bytes();
    let t = Instant::now();
    let store = build(&dir);
    let built = t.elapsed();
    let st = store.stats();
    let points = st.segment_points;
    println!(
        "store: {points} points of {} series in {} segments, built in {built:.2?} ({:.2} M points/s appended+flushed)",
        st.series,
        st.segments,
        points as f64 / built.as_secs_f64() / 1e6
    );
    println!(
        "store: hot memory {:.2} bytes/point (Arrow buffers), process RSS growth {:.2} bytes/point, disk {:.2} bytes/point",
        st.memory_bytes as f64 / points as f64,
        rss_bytes().saturating_sub(rss_before) as f64 / points as f64,
        st.disk_bytes as f64 / points as f64
    );
    let mut group = c.benchmark_group("scan");
    let mut k = 0usize;
    group.bench_function("one series, one hour, out of 10M points", |b| {
        b.iter(|| {
            k = (k + 7) % SERIES;
            let f = ScanFilter {
                metric: Some("http.latency_ms".into()),
                tags: [("instance".to_string(), format!("i-{k}"))].into(),
                start_ms: T0 + 3_600_000,
                end_ms: T0 + 7_200_000,
            };
            let batches = store.scan(black_box(&f)).unwrap();
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(n, 3600);
            n
        })
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, store_bench);
criterion_main!(benches);
