//! Load generator for `benches/ingest_e2e.py`: produces metric points to a topic as fast as
//! the broker takes them. Not part of the product.
//!
//! `produce BROKER TOPIC MESSAGES POINTS_PER_MESSAGE [SERIES]`

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        eprintln!("usage: produce BROKER TOPIC MESSAGES POINTS_PER_MESSAGE [SERIES]");
        std::process::exit(2);
    }
    let (broker, topic) = (&a[0], &a[1]);
    let messages: u64 = a[2].parse().unwrap();
    let per: u64 = a[3].parse().unwrap();
    let series: u64 = a.get(4).map_or(1000, |s| s.parse().unwrap());
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", "4000000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2000000")
        .create()
        .unwrap();
    let start = Instant::now();
    let mut payload = String::new();
    let (mut points, mut bytes) = (0u64, 0u64);
    for m in 0..messages {
        payload.clear();
        if per > 1 {
            payload.push('[');
        }
        for j in 0..per {
            let i = m * per + j;
            if j > 0 {
                payload.push(',');
            }
            let s = i % series;
            payload.push_str(&format!(
                r#"{{"metric":"http.latency_ms","ts":{},"value":{}.5,"tags":{{"app":"checkout","version":"v{}","instance":"i-{}"}}}}"#,
                1_795_302_000_000 + i / series * 1000,
                i % 997,
                s % 2,
                s
            ));
            points += 1;
        }
        if per > 1 {
            payload.push(']');
        }
        bytes += payload.len() as u64;
        let key = (m % 64).to_string();
        let mut rec: BaseRecord<'_, str, str> = BaseRecord::to(topic)
            .payload(payload.as_str())
            .key(key.as_str());
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    p.flush(Duration::from_secs(300)).unwrap();
    let s = start.elapsed().as_secs_f64();
    println!(
        "{{\"messages\": {messages}, \"points\": {points}, \"bytes\": {bytes}, \"seconds\": {s:.3}, \"points_per_s\": {:.0}, \"messages_per_s\": {:.0}}}",
        points as f64 / s,
        messages as f64 / s
    );
}
