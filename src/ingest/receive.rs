//! Receivers: Prometheus remote-write (`POST /api/v1/write`) and OTLP/HTTP
//! (`POST /v1/metrics`) bodies produced to the ingest Kafka topics.
//!
//! Kafka stays the one durable log: a request is checked (decoded in full, as the consumer
//! will decode it, so a payload that could never be stored is refused now with 4xx rather
//! than dead-lettered later), produced with the idempotent producer (`acks=all`), and
//! answered 2xx only once the broker acknowledged it. When Kafka cannot take it within
//! `receive.produce-timeout`, the answer is 503 so that the sender retries (Prometheus and
//! the OpenTelemetry exporters retry 5xx); nothing is acknowledged that is not in the log.
//! Every daemon of a group can receive; the consumers then spread the points as for any
//! other topic.

use std::io::Read;
use std::time::Duration;

#[cfg(feature = "kafka")]
use prost::Message;
#[cfg(feature = "kafka")]
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
#[cfg(feature = "kafka")]
use rdkafka::producer::{FutureProducer, FutureRecord};
#[cfg(feature = "kafka")]
use rdkafka::util::Timeout;

#[cfg(feature = "kafka")]
use super::decode::Decoder;
use super::decode::Format;
use super::KafkaConfig;
use crate::settings::{Kind, Setting, Values};
#[cfg(feature = "kafka")]
use crate::store::segment::PointColumns;
#[cfg(feature = "kafka")]
use crate::store::series::{SeriesLimits, SeriesRegistry};

/// The `[receive]` settings of `coalmine.toml`.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "receive.remote-write-topic", kind: Kind::OptStr, default: "", doc: "Topic that `POST /api/v1/write` (Prometheus remote-write) produces to; one of kafka.topics with format prometheus-remote-write (unset: the endpoint answers 404)." },
    Setting { key: "receive.otlp-topic", kind: Kind::OptStr, default: "", doc: "Topic that `POST /v1/metrics` (OTLP/HTTP, protobuf or JSON) produces to, as protobuf; one of kafka.topics with format otlp-proto (unset: the endpoint answers 404)." },
    Setting { key: "receive.produce-timeout", kind: Kind::Duration, default: "10s", doc: "How long a received request waits for Kafka to acknowledge it before the answer is 503 (the sender retries)." },
];

/// `[receive]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveConfig {
    pub remote_write_topic: Option<String>,
    pub otlp_topic: Option<String>,
    pub produce_timeout: Duration,
}

impl ReceiveConfig {
    pub fn from_settings(v: &Values) -> ReceiveConfig {
        ReceiveConfig {
            remote_write_topic: v.string("receive.remote-write-topic"),
            otlp_topic: v.string("receive.otlp-topic"),
            produce_timeout: v.duration("receive.produce-timeout"),
        }
    }

    /// Each receiver topic must be consumed, in the format the receiver writes.
    pub fn validate(&self, kafka: &KafkaConfig) -> Vec<String> {
        let mut p = Vec::new();
        for (key, topic, format) in [
            (
                "receive.remote-write-topic",
                &self.remote_write_topic,
                Format::PrometheusRemoteWrite,
            ),
            ("receive.otlp-topic", &self.otlp_topic, Format::OtlpProto),
        ] {
            let Some(topic) = topic else { continue };
            match kafka.topics.iter().find(|t| &t.name == topic) {
                None => p.push(format!(
                    "{key}: topic {topic:?} is not in kafka.topics; add {{ name = {topic:?}, format = \"{}\" }} so that what is received is also stored",
                    format.name()
                )),
                Some(t) if t.format != format => p.push(format!(
                    "{key}: topic {topic:?} is consumed as {}, but this receiver writes {}",
                    t.format.name(),
                    format.name()
                )),
                Some(_) => {}
            }
        }
        p
    }
}

/// What a receiver answers when it does not take a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The HTTP status: 4xx (the payload can never succeed), 503 (retry).
    pub status: u16,
    pub message: String,
}

impl Refused {
    fn new(status: u16, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
        }
    }
}

/// The kind of body an endpoint received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Remote-write 1.0: snappy-compressed protobuf `WriteRequest`.
    RemoteWrite,
    /// OTLP/HTTP `ExportMetricsServiceRequest` as protobuf.
    OtlpProto,
    /// OTLP/HTTP `ExportMetricsServiceRequest` as JSON.
    OtlpJson,
}

/// What the receivers did, by endpoint (`/metrics`).
#[derive(Debug, Default)]
pub struct ReceiveStats {
    /// Requests by endpoint (remote-write, OTLP) and outcome (see [`ReceiveStats::OUTCOMES`]).
    pub requests: [[std::sync::atomic::AtomicU64; 3]; 2],
    /// Points of the accepted requests, by endpoint.
    pub points: [std::sync::atomic::AtomicU64; 2],
}

impl ReceiveStats {
    pub const ENDPOINTS: [&'static str; 2] = ["remote-write", "otlp"];
    /// Acknowledged by Kafka (2xx), refused (4xx: the payload cannot succeed), to retry (5xx).
    pub const OUTCOMES: [&'static str; 3] = ["accepted", "refused", "retry"];

    /// Count one answer of `payload`'s endpoint: `Ok(points)` or the HTTP status.
    pub fn note(&self, payload: Payload, result: Result<usize, u16>) {
        use std::sync::atomic::Ordering::Relaxed;
        let e = usize::from(payload != Payload::RemoteWrite);
        let o = match result {
            Ok(points) => {
                self.points[e].fetch_add(points as u64, Relaxed);
                0
            }
            Err(status) if status >= 500 => 2,
            Err(_) => 1,
        };
        self.requests[e][o].fetch_add(1, Relaxed);
    }
}

impl Payload {
    /// The 404 of a receiver whose topic is not set, naming the setting.
    pub fn off(self) -> Refused {
        let key = match self {
            Payload::RemoteWrite => "receive.remote-write-topic",
            Payload::OtlpProto | Payload::OtlpJson => "receive.otlp-topic",
        };
        Refused::new(404, format!("this receiver is off: set {key}"))
    }
}

/// The receivers' producer and their topics.
#[cfg(feature = "kafka")]
pub struct Receiver {
    pub stats: ReceiveStats,
    producer: FutureProducer,
    cfg: ReceiveConfig,
    limits: SeriesLimits,
    /// The largest message the consumers take (`kafka.max-message-bytes`).
    max_message_bytes: usize,
}

#[cfg(feature = "kafka")]
impl Receiver {
    /// `None` when no receiver topic is set.
    pub fn new(
        cfg: &ReceiveConfig,
        kafka: &KafkaConfig,
        limits: SeriesLimits,
    ) -> Result<Option<Receiver>, KafkaError> {
        if cfg.remote_write_topic.is_none() && cfg.otlp_topic.is_none() {
            return Ok(None);
        }
        let mut pc = super::kafka::producer_config(kafka);
        pc.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set(
                "message.max.bytes",
                (kafka.max_message_bytes + 4096).to_string(),
            )
            .set(
                "message.timeout.ms",
                cfg.produce_timeout.as_millis().max(1).to_string(),
            );
        Ok(Some(Receiver {
            stats: ReceiveStats::default(),
            producer: pc.create()?,
            cfg: cfg.clone(),
            limits,
            max_message_bytes: kafka.max_message_bytes,
        }))
    }

    /// The topic `payload` goes to, or 404 naming the setting.
    fn topic(&self, payload: Payload) -> Result<&str, Refused> {
        let topic = match payload {
            Payload::RemoteWrite => &self.cfg.remote_write_topic,
            Payload::OtlpProto | Payload::OtlpJson => &self.cfg.otlp_topic,
        };
        topic.as_deref().ok_or_else(|| payload.off())
    }

    /// Check `body`, produce it and wait for Kafka's acknowledgement. Returns the samples
    /// (points) it holds.
    pub async fn accept(&self, payload: Payload, body: &[u8]) -> Result<usize, Refused> {
        let topic = self.topic(payload)?.to_string();
        let (message, points) = self.check(payload, body)?;
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&topic).payload(&message);
        match self
            .producer
            .send(record, Timeout::After(self.cfg.produce_timeout))
            .await
        {
            Ok(_) => Ok(points),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                Err(Refused::new(
                    413,
                    format!(
                        "the broker refused a {}-byte message as too large: send smaller batches",
                        message.len()
                    ),
                ))
            }
            Err((e, _)) => {
                tracing::warn!(error = %e, topic = %topic, "A received request could not be produced to Kafka");
                Err(Refused::new(
                    503,
                    format!("Kafka did not acknowledge the request ({e}); retry"),
                ))
            }
        }
    }

    /// Decode `body` in full, as the consumer will; the message to produce (OTLP/JSON
    /// becomes protobuf) and its point count.
    fn check<'b>(
        &self,
        payload: Payload,
        body: &'b [u8],
    ) -> Result<(std::borrow::Cow<'b, [u8]>, usize), Refused> {
        let bad = |e: super::decode::DecodeError| Refused::new(400, e.reason);
        if payload == Payload::RemoteWrite {
            // checked without a registry: building one for each request's series was most
            // of the receiver's time (`cargo bench --bench receive`)
            if body.len() > self.max_message_bytes {
                return Err(too_large(body.len(), self.max_message_bytes));
            }
            let req = super::remote_write::parse(body, self.max_message_bytes.saturating_mul(8))
                .map_err(bad)?;
            let n = super::remote_write::check(&req, &self.limits).map_err(bad)?;
            return Ok((body.into(), n));
        }
        let (format, message): (Format, std::borrow::Cow<'b, [u8]>) = match payload {
            Payload::RemoteWrite => unreachable!("checked above"),
            Payload::OtlpProto => (Format::OtlpProto, body.into()),
            Payload::OtlpJson => {
                let req = super::otlp::parse_json(body).map_err(bad)?;
                (Format::OtlpProto, req.encode_to_vec().into())
            }
        };
        if message.len() > self.max_message_bytes {
            return Err(too_large(message.len(), self.max_message_bytes));
        }
        let mut registry = SeriesRegistry::new();
        let mut out = PointColumns::default();
        let points = Decoder::new(format, self.max_message_bytes)
            .with_limits(self.limits)
            .decode(&message, None, &mut registry, &mut out)
            .map_err(bad)?;
        Ok((message, points))
    }
}

#[cfg(feature = "kafka")]
fn too_large(len: usize, max: usize) -> Refused {
    Refused::new(
        413,
        format!(
            "a {len}-byte message is over kafka.max-message-bytes ({max}): send smaller batches (Prometheus: queue_config.max_samples_per_send; the Collector: the batch processor's send_batch_max_size)"
        ),
    )
}

/// A body as sent with `Content-Encoding` (`identity` or `gzip` for OTLP/HTTP; remote-write
/// bodies are snappy by definition), inflated up to `max` bytes.
pub fn content_decoded(
    encoding: Option<&str>,
    body: &[u8],
    max: usize,
) -> Result<Vec<u8>, Refused> {
    match encoding.map(str::trim) {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Refused::new(400, format!("the gzip body cannot be inflated: {e}")))?;
            if out.len() > max {
                return Err(Refused::new(
                    413,
                    format!("the gzip body inflates to more than {max} bytes (server.max-body)"),
                ));
            }
            Ok(out)
        }
        Some(other) => Err(Refused::new(
            415,
            format!("Content-Encoding {other:?} is not supported (identity or gzip)"),
        )),
    }
}
