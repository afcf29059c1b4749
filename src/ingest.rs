//! Ingest: Kafka messages → decoded points → the store, with the store's durability driving
//! offset commits.
//!
//! ```text
//! consumer thread ──MessageBatch──► decoder thread ──append──► Store ◄──flush── flusher
//!   poll, copy payloads               skip already-durable        │
//!   commit durable offsets ◄──────────────────────────────────────┘ durable offsets
//! ```
//!
//! The decoder is format-aware per topic ([`decode`]); undecodable messages are counted,
//! logged once per burst and copied to a dead-letter topic when one is configured.

pub mod decode;
mod decode_error;
mod fast_json;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod otlp;
pub mod receive;
pub mod remote_write;
mod timestamp;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::settings::{Kind, Setting, Values};
use decode::Format;

/// The `[kafka]` settings of `coalmine.toml`.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "kafka.bootstrap-servers", kind: Kind::Str, default: "127.0.0.1:9092", doc: "Kafka brokers (librdkafka bootstrap.servers)." },
    Setting { key: "kafka.group-id", kind: Kind::Str, default: "coalmine", doc: "Consumer group: daemons in one group split the partitions." },
    Setting { key: "kafka.topics", kind: Kind::Custom(check_topics), default: "[{ name = \"metrics\", format = \"json\" }]", doc: "Topics to consume, each with its payload format: json | influx | prometheus-json | otlp-proto | otlp-json | prometheus-remote-write." },
    Setting { key: "kafka.dead-letter-topic", kind: Kind::OptStr, default: "", doc: "Undecodable messages are copied here with headers coalmine-source-topic/-partition/-offset/-error (unset: only counted and logged)." },
    Setting { key: "kafka.dead-letter-max-bytes", kind: Kind::Bytes, default: "900KiB", doc: "A dead-lettered payload longer than this is cut to it (the record must fit the producer's and the topic's message limit, 1 MB by default); headers coalmine-original-bytes and coalmine-original-crc32 describe the whole message, coalmine-truncated says it was cut." },
    Setting { key: "kafka.max-message-bytes", kind: Kind::Bytes, default: "1MiB", doc: "Messages larger than this are rejected as undecodable." },
    Setting { key: "kafka.poll-batch", kind: Kind::Int, default: "5000", doc: "Messages handed to the decoder at a time." },
    Setting { key: "kafka.client", kind: Kind::StrMap, default: "{}", doc: "Any other librdkafka consumer property, e.g. { \"session.timeout.ms\" = \"6000\", \"security.protocol\" = \"ssl\" }." },
];

/// A Kafka topic to consume.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub name: String,
    pub format: Format,
}

/// `[kafka]`: the source's brokers, group, topics and client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<TopicConfig>,
    pub dead_letter_topic: Option<String>,
    pub dead_letter_max_bytes: usize,
    pub max_message_bytes: usize,
    pub poll_batch: usize,
    pub client: std::collections::BTreeMap<String, String>,
}

impl KafkaConfig {
    /// The settings as loaded.
    pub fn from_settings(v: &Values) -> KafkaConfig {
        let topics = match v.get("kafka.topics") {
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|t| TopicConfig {
                    name: t
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    format: parse_format(
                        t.get("format").and_then(|f| f.as_str()).unwrap_or("json"),
                    )
                    .unwrap_or(Format::Json),
                })
                .collect(),
            _ => Vec::new(),
        };
        KafkaConfig {
            bootstrap_servers: v.string("kafka.bootstrap-servers").unwrap_or_default(),
            group_id: v.string("kafka.group-id").unwrap_or_default(),
            topics,
            dead_letter_topic: v.string("kafka.dead-letter-topic"),
            dead_letter_max_bytes: v.bytes("kafka.dead-letter-max-bytes").unwrap_or(900 << 10)
                as usize,
            max_message_bytes: v.bytes("kafka.max-message-bytes").unwrap_or(1 << 20) as usize,
            poll_batch: v.int("kafka.poll-batch"),
            client: v.table("kafka.client"),
        }
    }

    /// Problems across settings (each names its setting).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.topics.is_empty() {
            p.push("kafka.topics: at least one topic is needed".into());
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.topics {
            if !seen.insert(&t.name) {
                p.push(format!("kafka.topics: topic {:?} is listed twice", t.name));
            }
            if Some(&t.name) == self.dead_letter_topic.as_ref() {
                p.push(format!(
                    "kafka.dead-letter-topic: {:?} is also a consumed topic (would loop)",
                    t.name
                ));
            }
        }
        if self.poll_batch == 0 {
            p.push("kafka.poll-batch: must be at least 1".into());
        }
        for reserved in [
            "bootstrap.servers",
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
        ] {
            if self.client.contains_key(reserved) {
                p.push(format!("kafka.client: {reserved:?} is set by coalmine (use kafka.bootstrap-servers / kafka.group-id; commits are manual)"));
            }
        }
        p
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "json" => Ok(Format::Json),
        "influx" | "line-protocol" => Ok(Format::Influx),
        "prometheus-json" => Ok(Format::PrometheusJson),
        // the OpenTelemetry Collector's Kafka exporter names them with underscores
        "otlp-proto" | "otlp_proto" => Ok(Format::OtlpProto),
        "otlp-json" | "otlp_json" => Ok(Format::OtlpJson),
        "prometheus-remote-write" => Ok(Format::PrometheusRemoteWrite),
        other => Err(format!(
            "unknown format {other:?} (json | influx | prometheus-json | otlp-proto | otlp-json | prometheus-remote-write)"
        )),
    }
}

/// `kafka.topics`: an array of `{ name, format }` tables.
fn check_topics(v: &toml::Value) -> Result<(), String> {
    let toml::Value::Array(items) = v else {
        return Err(format!(
            "expected an array of {{ name, format }} tables, found {}",
            crate::settings::describe_toml(v)
        ));
    };
    for (i, t) in items.iter().enumerate() {
        let Some(tab) = t.as_table() else {
            return Err(format!("[{i}]: expected a table {{ name, format }}"));
        };
        for k in tab.keys() {
            if k != "name" && k != "format" {
                return Err(format!("[{i}]: unknown key {k:?} (name, format)"));
            }
        }
        match tab.get("name").and_then(|n| n.as_str()) {
            Some(n) if !n.trim().is_empty() => {}
            _ => return Err(format!("[{i}]: `name` (a non-empty string) is required")),
        }
        if let Some(f) = tab.get("format") {
            parse_format(f.as_str().unwrap_or("?")).map_err(|e| format!("[{i}].format: {e}"))?;
        }
    }
    Ok(())
}

/// Counters of the ingest pipeline (exported by `/metrics`).
#[derive(Debug, Default)]
pub struct IngestStats {
    pub messages: AtomicU64,
    pub points: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Dead letters the broker acknowledged.
    pub dead_lettered: AtomicU64,
    /// Dead letters the broker refused (or that could not be sent).
    pub dead_letter_failures: AtomicU64,
    pub duplicates_skipped: AtomicU64,
    /// Messages (and their points) refused by the [`Intake`] rule, by [`Refusal`].
    pub refused_messages: [AtomicU64; 2],
    pub refused_points: [AtomicU64; 2],
    pub commits: AtomicU64,
    pub flushes: AtomicU64,
    /// Partitions are assigned to this member.
    pub assigned: AtomicBool,
    /// Wall-clock time (epoch ms) up to which ingest is caught up: at that moment the
    /// consumer had read every assigned partition to its end and everything before was in
    /// the store. Runs see ingest only through this.
    pub caught_up: crate::store::Watermark,
    /// When the consumer last polled (epoch ms; 0 before it started): `/health` reports
    /// ingest stuck when this stops moving.
    pub heartbeat_ms: std::sync::atomic::AtomicI64,
}

impl IngestStats {
    pub fn snapshot(&self) -> IngestSnapshot {
        IngestSnapshot {
            messages: self.messages.load(Ordering::Relaxed),
            points: self.points.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dead_letter_failures: self.dead_letter_failures.load(Ordering::Relaxed),
            duplicates_skipped: self.duplicates_skipped.load(Ordering::Relaxed),
            refused_messages: self
                .refused_messages
                .each_ref()
                .map(|a| a.load(Ordering::Relaxed)),
            refused_points: self
                .refused_points
                .each_ref()
                .map(|a| a.load(Ordering::Relaxed)),
            commits: self.commits.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`IngestStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestSnapshot {
    pub messages: u64,
    pub points: u64,
    pub decode_errors: u64,
    pub dead_lettered: u64,
    pub dead_letter_failures: u64,
    pub duplicates_skipped: u64,
    /// Indexed by [`Refusal`] (`as usize`).
    pub refused_messages: [u64; 2],
    pub refused_points: [u64; 2],
    pub commits: u64,
    pub flushes: u64,
}

/// Logs the first event of a burst at once and a summary of the rest at most every
/// `every`, so a stream of bad messages does not flood the log.
pub struct BurstLog {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl BurstLog {
    pub fn new(every: Duration) -> Self {
        BurstLog {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Returns `Some(suppressed_since_last)` when this event should be logged.
    pub fn admit(&self) -> Option<u64> {
        let mut s = self.state.lock().expect("burst log lock");
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

/// Why the store would not keep a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Older than `store.retention`: retention would delete it at once.
    OlderThanRetention = 0,
    /// Further ahead of the clock than `store.max-clock-skew`.
    TooFarInFuture = 1,
}

impl Refusal {
    pub const ALL: [Refusal; 2] = [Refusal::OlderThanRetention, Refusal::TooFarInFuture];

    /// The `reason` label of the `/metrics` counters.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::OlderThanRetention => "older_than_retention",
            Refusal::TooFarInFuture => "too_far_in_future",
        }
    }
}

/// The intake rule for timestamps: a message is stored only if every point's timestamp lies
/// in `[now − retention, now + max-clock-skew]`. A point outside would be stored and then
/// deleted by the next retention pass (a back-fill of last month, a replayed topic, epoch
/// seconds taken for milliseconds), or keep its segment alive for years: instead the whole
/// message is refused — dead-lettered with the reason, counted by reason, logged once per
/// burst — and its offset committed like any consumed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intake {
    pub retention_ms: i64,
    pub max_clock_skew_ms: i64,
}

impl Intake {
    pub fn new(store: &crate::store::StoreConfig) -> Intake {
        let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
        Intake {
            retention_ms: ms(store.retention),
            max_clock_skew_ms: ms(store.max_clock_skew),
        }
    }

    /// The first timestamp of `ts` outside the window at `now`: its index, why, and a
    /// message naming both.
    pub fn check(&self, now: i64, ts: &[i64]) -> Option<(usize, Refusal, String)> {
        let oldest = now.saturating_sub(self.retention_ms);
        let newest = now.saturating_add(self.max_clock_skew_ms);
        let (i, &t) = ts
            .iter()
            .enumerate()
            .find(|(_, &t)| t < oldest || t > newest)?;
        let at = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms).map_or_else(
                || format!("{ms} ms"),
                |d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            )
        };
        let of = if ts.len() > 1 {
            format!("point {} of {}: ", i + 1, ts.len())
        } else {
            String::new()
        };
        Some(if t < oldest {
            (
                i,
                Refusal::OlderThanRetention,
                format!(
                    "{of}timestamp {} is older than store.retention ({}): the oldest point kept now is from {}",
                    at(t),
                    humantime::format_duration(Duration::from_millis(self.retention_ms as u64)),
                    at(oldest)
                ),
            )
        } else {
            (
                i,
                Refusal::TooFarInFuture,
                format!(
                    "{of}timestamp {} is more than store.max-clock-skew ({}) ahead of the clock ({})",
                    at(t),
                    humantime::format_duration(Duration::from_millis(self.max_clock_skew_ms as u64)),
                    at(now)
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_window_names_the_first_point_outside() {
        let day = 86_400_000;
        let intake = Intake {
            retention_ms: 7 * day,
            max_clock_skew_ms: 3_600_000,
        };
        let now = 1_795_302_000_000; // 2026-11-21T23:00:00Z
        assert_eq!(
            intake.check(now, &[now, now - 7 * day, now + 3_600_000]),
            None
        );
        let (i, why, msg) = intake.check(now, &[now, now - 8 * day]).unwrap();
        assert_eq!((i, why), (1, Refusal::OlderThanRetention));
        assert_eq!(
            msg,
            "point 2 of 2: timestamp 2026-11-13T23:00:00.000Z is older than store.retention (7days): the oldest point kept now is from 2026-11-14T23:00:00.000Z"
        );
        let (i, why, msg) = intake.check(now, &[now + 3_600_001]).unwrap();
        assert_eq!((i, why), (0, Refusal::TooFarInFuture));
        assert!(
            msg.starts_with(
                "timestamp 2026-11-22T00:00:00.001Z is more than store.max-clock-skew (1h) ahead"
            ),
            "{msg}"
        );
    }
}
