//! Canary-run benchmarks.
//!
//! * criterion: latency of one judgment tick of a run with 20 SQL metrics over a 30-minute
//!   window (6 instances per scope, 1 point/s each).
//! * criterion: the same tick while another run's query (a runaway `generate_series`) runs
//!   into its time limit over and over, on an engine with the daemon's default limits: one
//!   run's query must not starve other runs' ticks (target: within 2× the tick alone).
//! * printed once: how many such runs, ticking every 60 s, the machine sustains while a
//!   second thread ingests 200,000 points/s (JSON decode → store → flush, as the daemon's
//!   ingest threads do): judgments per second on one judging thread × 60.
//!
//! `cargo bench --bench runs`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use coalmine::ingest::decode::{Decoder, Format};
use coalmine::query::{Binding, Engine, QueryLimits};
use coalmine::runs::PreparedRun;
use coalmine::store::segment::PointColumns;
use coalmine::store::{message_offsets, Store};

#[path = "support/run_data.rs"]
mod run_data;
use run_data::{config, run_spec, store, METRICS, T0, WINDOW_S};

/// Decode JSON messages of 100 points into the store at `rate` points/s until `stop`.
fn ingest(store: Store, rate: u64, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut decoder = Decoder::new(Format::Json, 1 << 20);
    let msgs: Vec<Vec<u8>> = (0..100)
        .map(|k| {
            let pts: Vec<String> = (0..100)
                .map(|j| format!(r#"{{"metric":"ingest.latency","ts":{},"value":{}.5,"tags":{{"instance":"x-{}"}}}}"#, T0 + 10_000_000 + k * 100 + j, j, (k * 100 + j) % 1000))
                .collect();
            format!("[{}]", pts.join(",")).into_bytes()
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut last_flush = Instant::now();
    let mut cols = PointColumns::default();
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        {
            let mut reg = store.registry_mut();
            for m in &msgs[..10] {
                decoder.decode(m, None, &mut reg, &mut cols).unwrap();
            }
        }
        store.append(&cols, &message_offsets("ingest", 0, sent as i64));
        sent += cols.len() as u64;
        cols.clear();
        if last_flush.elapsed() >= Duration::from_secs(1) {
            store.flush().unwrap();
            last_flush = Instant::now();
        }
    }
    done.store(sent, Ordering::Relaxed);
}

fn runs_bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("coalmine-bench-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = store(&dir, WINDOW_S);
    let engine = Engine::new(store.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prepared = rt
        .block_on(PreparedRun::prepare(&engine, &config(60), run_spec()))
        .unwrap();
    let tick = T0 + WINDOW_S * 1000;
    let (result, pairs) = rt.block_on(prepared.judge(tick)).unwrap();
    assert_eq!(pairs.len(), METRICS);
    assert_eq!(
        result.results[0].control_metadata.stats.count, 30,
        "30 one-minute values per side"
    );
    let mut group = c.benchmark_group("run tick");
    group.sample_size(30);
    group.bench_function(
        "20 SQL metrics, 30-minute window, 6+6 instances at 1 pt/s",
        |b| b.iter(|| rt.block_on(prepared.judge(tick)).unwrap()),
    );
    // The same tick over a window with no data: the fixed cost of 40 queries (planning,
    // optimising, executing empty plans) and the judge.
    group.bench_function("20 SQL metrics, empty window", |b| {
        b.iter(|| rt.block_on(prepared.judge(T0 - 3_600_000)).unwrap())
    });
    // Another run's query at its limit: the daemon's engine (default limits but a 2 s
    // timeout, so the bench sees many cancellations), a runaway query restarted as soon as it
    // is cancelled, on the same query threads as the tick.
    let limited = Engine::with_limits(
        store.clone(),
        QueryLimits {
            timeout: Duration::from_secs(2),
            ..QueryLimits::default()
        },
    )
    .unwrap();
    let prepared_limited = rt
        .block_on(PreparedRun::prepare(&limited, &config(60), run_spec()))
        .unwrap();
    group.bench_function(
        "20 SQL metrics, 30-minute window, alone (query limits on)",
        |b| b.iter(|| rt.block_on(prepared_limited.judge(tick)).unwrap()),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let cancelled = Arc::new(AtomicU64::new(0));
    let runaway = {
        let (engine, stop, cancelled) = (limited.clone(), stop.clone(), cancelled.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let r = rt.block_on(engine.query(
                    "SELECT count(*) AS value FROM generate_series(1, 1000000000000)",
                    Binding::all(),
                ));
                assert!(r.is_err(), "the runaway query is stopped at its limit");
                cancelled.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    group.bench_function(
        "20 SQL metrics, 30-minute window, while another run's query hits its time limit",
        |b| b.iter(|| rt.block_on(prepared_limited.judge(tick)).unwrap()),
    );
    stop.store(true, Ordering::Relaxed);
    runaway.join().unwrap();
    println!(
        "runaway queries cancelled at their 2 s limit meanwhile: {}",
        cancelled.load(Ordering::Relaxed)
    );
    group.finish();

    // Capacity while ingesting 200k points/s.
    let stop = Arc::new(AtomicBool::new(false));
    let ingested = Arc::new(AtomicU64::new(0));
    let ingest_thread = {
        let (st, stop, done) = (store.clone(), stop.clone(), ingested.clone());
        std::thread::spawn(move || ingest(st, 200_000, stop, done))
    };
    let start = Instant::now();
    let mut ticks = 0u64;
    while start.elapsed() < Duration::from_secs(20) {
        rt.block_on(prepared.judge(tick)).unwrap();
        ticks += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    ingest_thread.join().unwrap();
    let rate = ingested.load(Ordering::Relaxed) as f64 / secs;
    println!(
        "capacity: {:.1} judgments/s on one judging thread while ingesting {:.0} points/s → {:.0} runs of {METRICS} metrics ticking every 60 s",
        ticks as f64 / secs,
        rate,
        ticks as f64 / secs * 60.0
    );
    drop(prepared);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, runs_bench);
criterion_main!(benches);
