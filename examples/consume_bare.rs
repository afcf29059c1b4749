//! The ceiling for `benches/ingest_e2e.py`: a bare rdkafka consume loop (BaseConsumer on one
//! thread, payloads touched but not decoded, nothing stored) over the same topic.
//!
//! `consume_bare BROKER TOPIC MESSAGES`

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (broker, topic) = (&a[0], &a[1]);
    let want: u64 = a[2].parse().unwrap();
    let group = format!("bare-{}", std::process::id());
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .unwrap();
    c.subscribe(&[topic.as_str()]).unwrap();
    let (mut n, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    let mut first: Option<Instant> = None;
    while n < want {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            let p = m.payload().unwrap_or_default();
            bytes += p.len() as u64;
            checksum = checksum.wrapping_add(*p.last().unwrap_or(&0) as u64);
            n += 1;
        }
    }
    let s = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!(
        "{{\"messages\": {n}, \"bytes\": {bytes}, \"seconds\": {s:.3}, \"messages_per_s\": {:.0}, \"checksum\": {checksum}}}",
        n as f64 / s
    );
}
