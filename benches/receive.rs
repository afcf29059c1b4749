//! Remote-write receive → Kafka-acknowledged throughput, against a bare produce loop of the
//! same bytes in the same run (the peer: what the broker and librdkafka allow at all).
//!
//! Each request is a remote-write body as Prometheus sends it (2,000 series of one sample,
//! snappy + protobuf). The receiver checks it in full (snappy, protobuf, every series
//! against the store's limits) and produces it with the idempotent producer, `acks=all`,
//! answering once the broker acknowledged it; the bare loop produces the same bodies with
//! the same producer settings and no check. 32 requests are in flight at once (a
//! Prometheus remote-write queue with up to 32 shards). The HTTP layer (axum) is not in the
//! loop: it is measured by the API tests, not here.
//!
//! `COALMINE_BENCH_KAFKA=host:port cargo bench --bench receive` (a broker: e.g.
//! `python scripts/tansu.py start`); without a broker it prints how to run it and exits.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

use coalmine::config::Config;
use coalmine::ingest::receive::{Payload, Receiver};

#[path = "payloads.rs"]
mod payloads;

const IN_FLIGHT: usize = 32;
const REQUESTS: usize = 400;
const ROUNDS: usize = 5;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists bench binaries
    }
    let Ok(addr) = std::env::var("COALMINE_BENCH_KAFKA") else {
        eprintln!("receive bench: set COALMINE_BENCH_KAFKA=host:port (a Kafka broker) to run it");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(addr));
}

async fn run(addr: String) {
    let topic = format!("bench-rw-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    let _ = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await;
    let toml = format!(
        "[kafka]\nbootstrap-servers = \"{addr}\"\ntopics = [{{ name = \"{topic}\", format = \"prometheus-remote-write\" }}]\n[receive]\nremote-write-topic = \"{topic}\"\n"
    );
    let cfg = Config::from_text(&toml, "bench", &Default::default()).unwrap();
    let receiver = Receiver::new(&cfg.receive, &cfg.kafka, cfg.store.series_limits)
        .unwrap()
        .unwrap();
    let bare: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let bodies = payloads::remote_write_messages();
    let per_request = 2000.0;
    let samples = REQUESTS as f64 * per_request;
    // warm up both (metadata, connections, the idempotent producer's id)
    for b in bodies.iter().take(4) {
        receiver.accept(Payload::RemoteWrite, b).await.unwrap();
        bare.send(
            FutureRecord::<(), _>::to(&topic).payload(b.as_slice()),
            Timeout::After(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    }
    let (mut recv_rates, mut bare_rates) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        stream::iter(0..REQUESTS)
            .map(|i| receiver.accept(Payload::RemoteWrite, &bodies[i % bodies.len()]))
            .buffer_unordered(IN_FLIGHT)
            .for_each(|r| async move {
                r.unwrap();
            })
            .await;
        recv_rates.push(samples / t.elapsed().as_secs_f64());
        let t = Instant::now();
        stream::iter(0..REQUESTS)
            .map(|i| {
                bare.send(
                    FutureRecord::<(), _>::to(&topic).payload(bodies[i % bodies.len()].as_slice()),
                    Timeout::After(Duration::from_secs(10)),
                )
            })
            .buffer_unordered(IN_FLIGHT)
            .for_each(|r| async move {
                r.unwrap();
            })
            .await;
        bare_rates.push(samples / t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (r, b) = (median(&mut recv_rates), median(&mut bare_rates));
    let bytes: usize = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    println!(
        "remote-write receive → acknowledged: {:.0} k samples/s (median of {ROUNDS} rounds of {REQUESTS} requests × 2,000 samples, {bytes} bytes each, {IN_FLIGHT} in flight)",
        r / 1e3
    );
    println!(
        "bare produce loop of the same bodies: {:.0} k samples/s",
        b / 1e3
    );
    println!("ratio receiver / bare produce: {:.2}", r / b);
    let _ = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
}
