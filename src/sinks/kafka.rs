//! The Kafka verdict sink: every judgment and final verdict of canary runs as JSON on
//! `verdicts.topic`, keyed by run id (a run's events stay in order on one partition).

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde::Serialize;

use crate::ingest::KafkaConfig;
use crate::runs::{PairData, Run, RunListener};

/// Publishes judgments and verdicts (a [`RunListener`]).
pub struct KafkaVerdicts {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    /// `server.public-url`: events then link to their run's report.
    public_url: Option<String>,
}

/// The event of a judgment: the run, the window, the score and each metric's class.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JudgmentEvent<'a> {
    r#type: &'static str,
    run_id: &'a str,
    config: Option<&'a str>,
    index: u64,
    of: u64,
    tick_ms: i64,
    window_start_ms: i64,
    window_end_ms: i64,
    score: f64,
    classification: &'a str,
    reason: &'a str,
    status: &'static str,
    metrics: Vec<MetricEvent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report_url: Option<String>,
}

#[derive(Serialize)]
struct MetricEvent<'a> {
    name: &'a str,
    tags: &'a std::collections::BTreeMap<String, String>,
    classification: &'a str,
    critical: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerdictEvent<'a> {
    r#type: &'static str,
    run_id: &'a str,
    verdict: crate::runs::Verdict,
}

impl KafkaVerdicts {
    pub fn new(
        cfg: &KafkaConfig,
        topic: &str,
        public_url: Option<String>,
    ) -> Result<KafkaVerdicts, KafkaError> {
        let mut pc = crate::ingest::kafka::producer_config(cfg);
        pc.set("linger.ms", "5");
        Ok(KafkaVerdicts {
            producer: pc.create()?,
            topic: topic.to_string(),
            public_url,
        })
    }

    fn report_url(&self, id: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| crate::runs::report_url(u, id))
    }

    fn send(&self, key: &str, event: &impl Serialize) {
        let payload = serde_json::to_string(event).expect("events serialise");
        let rec: BaseRecord<'_, str, str> = BaseRecord::to(&self.topic).key(key).payload(&payload);
        if let Err((e, _)) = self.producer.send(rec) {
            tracing::warn!(error = %e, topic = %self.topic, "Cannot publish a verdict event");
        }
    }

    /// Wait (up to 10 s) for queued events to be delivered.
    pub fn flush(&self) {
        let _ = self.producer.flush(Duration::from_secs(10));
    }
}

impl RunListener for KafkaVerdicts {
    fn judged(&self, run: &Run, _pairs: &[PairData]) {
        let Some(j) = run.judgments.last() else {
            return;
        };
        let metrics = j
            .result
            .results
            .iter()
            .map(|r| MetricEvent {
                name: &r.name,
                tags: &r.tags,
                classification: &r.classification,
                critical: r.critical,
            })
            .collect();
        self.send(
            &run.id,
            &JudgmentEvent {
                r#type: "judgment",
                run_id: &run.id,
                config: run.config.get("name").and_then(serde_json::Value::as_str),
                index: j.index,
                of: run.spec.judgments(),
                tick_ms: j.tick_ms,
                window_start_ms: j.window_start_ms,
                window_end_ms: j.window_end_ms,
                score: j.score,
                classification: &j.classification,
                reason: &j.reason,
                status: run.status.as_str(),
                metrics,
                report_url: self.report_url(&run.id),
            },
        );
    }

    fn finished(&self, run: &Run) {
        self.send(
            &run.id,
            &VerdictEvent {
                r#type: "verdict",
                run_id: &run.id,
                verdict: crate::runs::Verdict {
                    report_url: self.report_url(&run.id),
                    ..run.verdict()
                },
            },
        );
        self.flush();
    }
}
