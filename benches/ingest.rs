//! Decode throughput: points per second on one core, for the JSON and line-protocol formats
//! (messages of 100 points, 1,000 series), Prometheus JSON (one sample per message), OTLP
//! protobuf as the OpenTelemetry Collector writes it (100 instances' requests of an HTTP
//! duration histogram with the SDK's 15 default bounds and a request counter, 30 attribute
//! sets each: 630 points a message, each histogram bucket a point) and remote-write bodies
//! as Prometheus sends them (2,000 series of one sample each).
//!
//! `cargo bench --bench ingest`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;

use coalmine::ingest::decode::{Decoder, Format};

#[path = "payloads.rs"]
mod payloads;
use coalmine::store::segment::PointColumns;
use coalmine::store::SeriesRegistry;
use payloads::{otlp_messages, remote_write_messages};

const MESSAGES: usize = 100;
const PER_MESSAGE: usize = 100;

fn json_messages() -> Vec<Vec<u8>> {
    (0..MESSAGES)
        .map(|m| {
            let pts: Vec<String> = (0..PER_MESSAGE)
                .map(|j| {
                    let s = (m * PER_MESSAGE + j) % 1000;
                    format!(
                        r#"{{"metric":"http.latency_ms","ts":{},"value":{}.25,"tags":{{"app":"checkout","version":"v{}","instance":"i-{}"}}}}"#,
                        1795302000000u64 + (m * PER_MESSAGE + j) as u64,
                        j * 7 % 1000,
                        s % 2,
                        s
                    )
                })
                .collect();
            format!("[{}]", pts.join(",")).into_bytes()
        })
        .collect()
}

fn influx_messages() -> Vec<Vec<u8>> {
    (0..MESSAGES)
        .map(|m| {
            let lines: Vec<String> = (0..PER_MESSAGE / 2)
                .map(|j| {
                    let s = (m * PER_MESSAGE + j) % 500;
                    format!(
                        "http,app=checkout,version=v{},instance=i-{} latency_ms={}.25,count={}i {}",
                        s % 2,
                        s,
                        j * 7 % 1000,
                        j,
                        (1795302000000u64 + (m * PER_MESSAGE + j) as u64) * 1_000_000
                    )
                })
                .collect();
            lines.join("\n").into_bytes()
        })
        .collect()
}

fn prom_messages() -> Vec<Vec<u8>> {
    (0..MESSAGES * PER_MESSAGE)
        .map(|i| {
            format!(
                r#"{{"timestamp":"2026-11-21T23:00:00Z","value":"{}.5","name":"http_latency","labels":{{"__name__":"http_latency","app":"checkout","instance":"i-{}"}}}}"#,
                i % 1000,
                i % 1000
            )
            .into_bytes()
        })
        .collect()
}

fn decode_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, format, messages) in [
        ("json (100 points/message)", Format::Json, json_messages()),
        (
            "influx (100 points/message)",
            Format::Influx,
            influx_messages(),
        ),
        (
            "prometheus-json (1 point/message)",
            Format::PrometheusJson,
            prom_messages(),
        ),
        (
            "otlp-proto (630 points/message)",
            Format::OtlpProto,
            otlp_messages(),
        ),
        (
            "prometheus-remote-write (2,000 samples/message)",
            Format::PrometheusRemoteWrite,
            remote_write_messages(),
        ),
    ] {
        // series already known: the steady state of a long-running daemon
        let mut registry = SeriesRegistry::new();
        let mut warm = PointColumns::default();
        let mut d = Decoder::new(format, 1 << 20);
        for m in &messages {
            d.decode(m, Some(0), &mut registry, &mut warm).unwrap();
        }
        group.throughput(Throughput::Elements(warm.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || PointColumns {
                    series: Vec::with_capacity(warm.len()),
                    ts: Vec::with_capacity(warm.len()),
                    value: Vec::with_capacity(warm.len()),
                },
                |out| {
                    for m in &messages {
                        d.decode(black_box(m), Some(0), &mut registry, out).unwrap();
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, decode_bench);
criterion_main!(benches);
