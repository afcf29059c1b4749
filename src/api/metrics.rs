//! `GET /metrics`: the daemon's counters in the OpenMetrics text format, encoded by the
//! `prometheus-client` crate from a snapshot taken at each scrape.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::ingest::{IngestSnapshot, Refusal};
use crate::runs::RunStatus;
use crate::store::StoreStats;

/// Everything exported, read once per scrape.
#[derive(Debug)]
struct Snapshot {
    ingest: IngestSnapshot,
    store: StoreStats,
    judgments: u64,
    judgment_errors: u64,
    judgment_seconds: f64,
    judgment_seconds_max: f64,
    verdicts: Vec<(&'static str, u64)>,
    runs_active: u64,
    judge_requests: u64,
    /// `(endpoint, outcome, requests)` and `(endpoint, points)` of the receivers, when on.
    received: Vec<(&'static str, &'static str, u64)>,
    received_points: Vec<(&'static str, u64)>,
    /// Running runs and recently finished ones (`server.run-metrics-ttl`).
    runs: Vec<crate::runs::RunGauges>,
}

/// Runs exported at most (the newest): the per-run families stay bounded whatever the
/// run rate.
const MAX_RUNS: usize = 500;

/// The exposition text and its content type.
pub(super) fn render(st: &AppState) -> (&'static str, String) {
    let r = st.runs.stats();
    let verdicts = r.verdicts.lock().expect("stats lock").clone();
    let snapshot = Snapshot {
        ingest: st.ingest.snapshot(),
        store: st.engine.store().stats(),
        judgments: r.judgments.load(Ordering::Relaxed),
        judgment_errors: r.tick_errors.load(Ordering::Relaxed),
        judgment_seconds: r.tick_micros_total.load(Ordering::Relaxed) as f64 / 1e6,
        judgment_seconds_max: r.tick_micros_max.load(Ordering::Relaxed) as f64 / 1e6,
        verdicts: [
            RunStatus::Pass,
            RunStatus::Marginal,
            RunStatus::Fail,
            RunStatus::Stopped,
            RunStatus::Error,
        ]
        .iter()
        .map(|s| (s.as_str(), verdicts.get(s.as_str()).copied().unwrap_or(0)))
        .collect(),
        runs_active: st.runs.active() as u64,
        judge_requests: st.judge_requests.load(Ordering::Relaxed),
        received: Vec::new(),
        received_points: Vec::new(),
        runs: st
            .runs
            .gauges(st.run_metrics_ttl.as_millis() as i64, MAX_RUNS),
    };
    #[cfg(feature = "kafka")]
    let snapshot = {
        let mut snapshot = snapshot;
        if let Some(r) = &st.receiver {
            use crate::ingest::receive::ReceiveStats;
            for (e, endpoint) in ReceiveStats::ENDPOINTS.iter().enumerate() {
                for (o, outcome) in ReceiveStats::OUTCOMES.iter().enumerate() {
                    let n = r.stats.requests[e][o].load(Ordering::Relaxed);
                    snapshot.received.push((endpoint, outcome, n));
                }
                let n = r.stats.points[e].load(Ordering::Relaxed);
                snapshot.received_points.push((endpoint, n));
            }
        }
        snapshot
    };
    let mut registry = Registry::with_prefix("coalmine");
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String does not fail");
    (
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        out,
    )
}

/// A metric's samples: unlabelled, or one per label value.
type Samples<M> = Vec<(Option<(&'static str, &'static str)>, M)>;

/// Write one metric family.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: Samples<M>,
) -> Result<(), std::fmt::Error> {
    let Some(first) = samples.first() else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, None, first.1.metric_type())?;
    if let [(None, value)] = samples.as_slice() {
        return value.encode(metric);
    }
    for (label, value) in &samples {
        value.encode(metric.encode_family(&label.iter().copied().collect::<Vec<_>>())?)?;
    }
    Ok(())
}

fn counter(v: u64) -> Samples<ConstCounter<u64>> {
    vec![(None, ConstCounter::new(v))]
}

fn gauge(v: f64) -> Samples<ConstGauge<f64>> {
    vec![(None, ConstGauge::new(v))]
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let i = &self.ingest;
        family(
            &mut e,
            "messages",
            "Kafka messages consumed.",
            counter(i.messages),
        )?;
        family(
            &mut e,
            "points_ingested",
            "Metric points decoded and stored.",
            counter(i.points),
        )?;
        if !self.received.is_empty() {
            let mut enc = e.encode_descriptor(
                "received_requests",
                "Requests to the remote-write and OTLP receivers, by endpoint and outcome (accepted: Kafka acknowledged; refused: 4xx; retry: 5xx).",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (endpoint, outcome, n) in &self.received {
                let labels = vec![("endpoint", *endpoint), ("outcome", *outcome)];
                ConstCounter::new(*n).encode(enc.encode_family(&labels)?)?;
            }
            family(
                &mut e,
                "received_points",
                "Points of the requests the receivers had acknowledged by Kafka, by endpoint.",
                self.received_points
                    .iter()
                    .map(|(endpoint, n)| (Some(("endpoint", *endpoint)), ConstCounter::new(*n)))
                    .collect(),
            )?;
        }
        family(
            &mut e,
            "decode_errors",
            "Messages that could not be decoded.",
            counter(i.decode_errors),
        )?;
        family(
            &mut e,
            "dead_lettered",
            "Messages copied to the dead-letter topic (acknowledged by the broker).",
            counter(i.dead_lettered),
        )?;
        family(
            &mut e,
            "dead_letter_failures",
            "Messages the dead-letter topic did not take (they stay in their source topic).",
            counter(i.dead_letter_failures),
        )?;
        let by_reason = |counts: [u64; 2]| {
            Refusal::ALL
                .iter()
                .map(|r| {
                    (
                        Some(("reason", r.label())),
                        ConstCounter::new(counts[*r as usize]),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            &mut e,
            "messages_refused",
            "Messages refused at intake because the store would not keep a point of theirs, by reason.",
            by_reason(i.refused_messages),
        )?;
        family(
            &mut e,
            "points_refused",
            "Points of refused messages, by reason.",
            by_reason(i.refused_points),
        )?;
        family(
            &mut e,
            "duplicates_skipped",
            "Replayed messages already durable, skipped.",
            counter(i.duplicates_skipped),
        )?;
        family(
            &mut e,
            "offset_commits",
            "Kafka offset commits.",
            counter(i.commits),
        )?;
        let s = &self.store;
        family(
            &mut e,
            "store_points",
            "Points in segments.",
            gauge(s.segment_points as f64),
        )?;
        family(
            &mut e,
            "store_buffered_points",
            "Points not yet in a segment.",
            gauge(s.active_points as f64),
        )?;
        family(
            &mut e,
            "store_series",
            "Series known.",
            gauge(s.series as f64),
        )?;
        family(
            &mut e,
            "store_segments",
            "Segments.",
            gauge(s.segments as f64),
        )?;
        family(
            &mut e,
            "store_disk_bytes",
            "Bytes of segments on disk.",
            gauge(s.disk_bytes as f64),
        )?;
        family(
            &mut e,
            "store_memory_bytes",
            "Bytes of point data in memory.",
            gauge(s.memory_bytes as f64),
        )?;
        family(
            &mut e,
            "judgments",
            "Judgments made by canary runs.",
            counter(self.judgments),
        )?;
        family(
            &mut e,
            "judgment_errors",
            "Judgments that failed (query errors).",
            counter(self.judgment_errors),
        )?;
        family(
            &mut e,
            "judgment_seconds",
            "Time spent judging (queries + judge), in all: divided by judgments, the mean.",
            vec![(None, ConstCounter::new(self.judgment_seconds))],
        )?;
        family(
            &mut e,
            "judgment_seconds_max",
            "Longest judgment.",
            gauge(self.judgment_seconds_max),
        )?;
        family(
            &mut e,
            "verdicts",
            "Final verdicts of canary runs, by status.",
            self.verdicts
                .iter()
                .map(|(status, n)| (Some(("status", *status)), ConstCounter::new(*n)))
                .collect(),
        )?;
        family(
            &mut e,
            "runs_active",
            "Canary runs in progress.",
            gauge(self.runs_active as f64),
        )?;
        family(
            &mut e,
            "judge_requests",
            "POST /judge requests.",
            counter(self.judge_requests),
        )?;
        self.encode_runs(&mut e)
    }
}

impl Snapshot {
    /// The per-run families: one sample set per run in progress or recently finished.
    fn encode_runs(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        self.run_family(
            e,
            "run_score",
            "The score of a canary run's last judgment (0-100).",
            |r| r.score.map(|s| (vec![], s)).into_iter().collect(),
        )?;
        self.run_family(
            e,
            "run_status",
            "A canary run's status: 1 for the status it is in, 0 for the others.",
            |r| {
                RunStatus::ALL
                    .iter()
                    .map(|&s| {
                        (
                            vec![pair("status", s.as_str())],
                            f64::from(u8::from(r.status == s)),
                        )
                    })
                    .collect()
            },
        )?;
        self.run_family(
            e,
            "run_judgments",
            "Judgments a canary run has made.",
            |r| vec![(vec![], r.judgments as f64)],
        )?;
        self.run_family(
            e,
            "run_threshold",
            "A canary run's score thresholds: a judgment passes at or above pass, is marginal at or above marginal.",
            |r| {
                vec![
                    (vec![pair("threshold", "pass")], r.thresholds.0),
                    (vec![pair("threshold", "marginal")], r.thresholds.1),
                ]
            },
        )?;
        self.run_family(
            e,
            "run_metric_classification",
            "Each metric result of a canary run's last judgment: 1, with its classification (Pass, High, Low, Nodata, ...) as a label.",
            |r| {
                r.metrics
                    .iter()
                    .map(|m| {
                        let labels = vec![
                            pair("metric", &m.name),
                            pair("tags", &m.tags),
                            pair("classification", &m.classification),
                            pair("critical", &m.critical.to_string()),
                            pair("muted", &m.muted.to_string()),
                        ];
                        (labels, 1.0)
                    })
                    .collect()
            },
        )
    }

    /// One per-run gauge family (none without runs): `samples(run)` gives each sample's
    /// labels after `run` and `config`, and its value.
    fn run_family(
        &self,
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        samples: impl Fn(&crate::runs::RunGauges) -> Vec<(Vec<(String, String)>, f64)>,
    ) -> Result<(), std::fmt::Error> {
        if self.runs.is_empty() {
            return Ok(());
        }
        let mut enc = e.encode_descriptor(
            name,
            help,
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for r in &self.runs {
            for (extra, value) in samples(r) {
                let mut labels = vec![
                    ("run".to_string(), r.id.clone()),
                    ("config".to_string(), r.config.clone()),
                ];
                labels.extend(extra);
                ConstGauge::new(value).encode(enc.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
