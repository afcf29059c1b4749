//! Canary runs: a config bound to scopes and a schedule, judged every `interval` over a
//! sliding (or growing) window while the rollout proceeds (DESIGN §5).
//!
//! * A judgment whose score is at or below `marginal` ends the run as failed (Kayenta's
//!   standalone semantics); otherwise the last judgment decides the final verdict: `pass`
//!   when it meets `pass`, `marginal` when it is between the thresholds (a failure for
//!   Kayenta's `didPassThresholds`), `fail` at or below `marginal`.
//! * Runs and their judgments live in `<data-dir>/runs/<id>.json` (replaced atomically after
//!   every judgment), so they survive a restart: a running run resumes at its next tick;
//!   ticks missed by more than an interval are skipped, and a run whose lifetime ended while
//!   the daemon was down gets its final judgment at once.
//! * Ticks run on the async runtime; their queries run on the query threads within the
//!   `[query]` limits (a query stopped by a limit leaves its metric without data, with the
//!   reason, and the run goes on), and the judging on the blocking pool, at most
//!   `judge-threads` at a time: ingest has its own threads and keeps a core. Stopping a run
//!   aborts its tick in flight, queries included.

pub mod spec;
mod tick;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use crate::canary::{non_sql_metrics, ConfigStore};
use crate::error::kind::{ErrorKind, IoError};
use crate::query::Engine;
use crate::settings::{Kind, Setting, Values};
use crate::store::now_ms;
pub use spec::{RunSpec, Scope, ScopeSide, Window};

/// The `[runs]` settings of `coalmine.toml`.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "runs.judge-threads", kind: Kind::Int, default: "0", doc: "Judgments computed at once (0: one less than the cores, at least 1), so ingest keeps a core." },
    Setting { key: "runs.lateness", kind: Kind::Duration, default: "500ms", doc: "A judgment of a window ending at t runs at t + lateness, and only once ingest has caught up past that (points produced up to t are in)." },
    Setting { key: "runs.max-judgments", kind: Kind::Int, default: "10000", doc: "Judgments one run may make (lifetime / interval); a longer schedule is refused when the run is created." },
];

/// `[runs]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunsConfig {
    /// Judgments computed at once (resolved: never 0).
    pub judge_threads: usize,
    pub lateness: Duration,
    /// Bounds checked when a run is created.
    pub limits: spec::Limits,
}

impl RunsConfig {
    /// The settings as loaded (`judge-threads = 0`: one less than the cores, at least 1).
    pub fn from_settings(v: &Values) -> RunsConfig {
        let judge_threads = match v.int("runs.judge-threads") {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
            n => n,
        };
        RunsConfig {
            judge_threads,
            lateness: v.duration("runs.lateness"),
            limits: spec::Limits {
                max_judgments: v.int("runs.max-judgments").max(1) as u64,
            },
        }
    }
}

/// Errors of run handling.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Invalid(String),
    #[error("run '{0}' not found")]
    NotFound(String),
    #[error(transparent)]
    Config(#[from] crate::canary::CanaryError),
    /// A metric's SQL cannot be planned for the run's scopes.
    #[error("metric '{metric}': {source}")]
    Plan {
        metric: String,
        #[source]
        source: crate::query::QueryError,
    },
    /// A metric's query failed at a tick.
    #[error("metric '{metric}' ({side}): {source}")]
    Query {
        metric: String,
        side: &'static str,
        #[source]
        source: crate::query::QueryError,
    },
    #[error(transparent)]
    Judge(#[from] crate::judge::JudgeError),
    #[error("judge task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Io(#[from] IoError),
}

impl RunError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RunError::Invalid(_) => ErrorKind::InvalidInput,
            RunError::NotFound(_) => ErrorKind::NotFound,
            RunError::Config(e) => e.kind(),
            RunError::Plan { source, .. } | RunError::Query { source, .. } => source.kind(),
            RunError::Judge(e) => e.kind(),
            RunError::Task(_) => ErrorKind::Internal,
            RunError::Io(e) => e.kind(),
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Pass,
    Marginal,
    Fail,
    /// Stopped by `DELETE /runs/{id}` before its end.
    Stopped,
    /// A judgment could not be made (a query failed); the message says why.
    Error,
    /// The final score passes, but only because some metrics could not be judged at the
    /// configured level (`coalmine-v2`: too little data or too few events): nobody can say
    /// the canary is no worse. The message names them.
    Inconclusive,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::Pass,
        RunStatus::Marginal,
        RunStatus::Fail,
        RunStatus::Stopped,
        RunStatus::Error,
        RunStatus::Inconclusive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Pass => "pass",
            RunStatus::Marginal => "marginal",
            RunStatus::Fail => "fail",
            RunStatus::Stopped => "stopped",
            RunStatus::Error => "error",
            RunStatus::Inconclusive => "inconclusive",
        }
    }

    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }
}

/// One judgment of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Judgment {
    pub index: u64,
    pub tick_ms: i64,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub score: f64,
    pub classification: String,
    pub reason: String,
    /// Milliseconds the judgment took (queries + judge).
    pub took_ms: f64,
    /// Wall clock (Unix ms) when the judgment was stored: `judgedMs − tickMs` is how late a
    /// verdict on the window's last values comes (ingest catch-up, `runs.lateness`, judging).
    #[serde(default)]
    pub judged_ms: i64,
    /// The full `CanaryJudgeResult`.
    pub result: crate::judge::CanaryJudgeResult,
}

impl Judgment {
    /// Judgment `index` of the window `[start, end)` at `tick_ms`, scored by `result`.
    pub fn new(
        index: u64,
        tick_ms: i64,
        (window_start_ms, window_end_ms): (i64, i64),
        result: crate::judge::CanaryJudgeResult,
        took_ms: f64,
        judged_ms: i64,
    ) -> Judgment {
        Judgment {
            index,
            tick_ms,
            window_start_ms,
            window_end_ms,
            score: result.score.score,
            classification: result.score.classification.clone(),
            reason: result.score.classification_reason.clone(),
            took_ms,
            judged_ms,
            result,
        }
    }
}

/// A run and everything it has decided so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    pub spec: RunSpec,
    /// The config as it was when the run started.
    pub config: Value,
    pub status: RunStatus,
    pub created_ms: i64,
    pub next_tick: u64,
    pub judgments: Vec<Judgment>,
    pub message: Option<String>,
    /// `coalmine-seq-v1`: each metric-set pair's sequential state, carried tick to tick.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sequential: std::collections::BTreeMap<String, crate::judge::sequential::SequentialState>,
    /// The traffic-split guard's state, carried tick to tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split: Option<crate::judge::split::SplitState>,
}

impl Run {
    /// What a pipeline gate needs.
    pub fn verdict(&self) -> Verdict {
        Verdict {
            id: self.id.clone(),
            status: self.status,
            score: self.judgments.last().map(|j| j.score),
            judgments: self.judgments.len(),
            of: self.spec.judgments(),
            message: self.message.clone(),
            not_judged: self
                .judgments
                .last()
                .map(|j| not_judged(&j.result))
                .unwrap_or_default(),
            report_url: None,
        }
    }

    /// A one-line summary for lists.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            config: self
                .config
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            status: self.status,
            score: self.judgments.last().map(|j| j.score),
            judgments: self.judgments.len(),
            start_ms: self.spec.start_ms,
            end_ms: self.spec.end_ms(),
        }
    }
}

/// `GET /runs/{id}/verdict`: `{"id", "status", "score", "judgments", "of", "message",
/// "notJudged"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub id: String,
    pub status: RunStatus,
    /// The last judgment's score.
    pub score: Option<f64>,
    /// Judgments made, of how many the run makes in all.
    pub judgments: usize,
    pub of: u64,
    pub message: Option<String>,
    /// The metrics of the last judgment that could not be judged at the configured level.
    pub not_judged: Vec<NotJudged>,
    /// Where the run's HTML report is (set by the API and the Kafka verdict sink).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
}

/// A metric that could not be judged, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotJudged {
    pub metric: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub reason: String,
}

/// An entry of `GET /runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    pub config: Option<String>,
    pub status: RunStatus,
    pub score: Option<f64>,
    pub judgments: usize,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A run as `/metrics` exports it ([`RunManager::gauges`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunGauges {
    pub id: String,
    /// The config's name (empty without one).
    pub config: String,
    pub status: RunStatus,
    pub score: Option<f64>,
    pub judgments: usize,
    /// `(pass, marginal)`.
    pub thresholds: (f64, f64),
    /// The last judgment's metric results.
    pub metrics: Vec<MetricGauge>,
}

/// One metric result of a run's last judgment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricGauge {
    pub name: String,
    /// `k=v,k=v`.
    pub tags: String,
    pub classification: String,
    pub critical: bool,
    pub muted: bool,
}

/// A metric-set pair as judged; its `times` hold the timestamps of its values (`None` when
/// the query returned no `ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct PairData {
    pub pair: crate::judge::MetricSetPair,
}

impl PairData {
    /// The timestamps of one arm's values (empty when unknown).
    pub fn times(&self, experiment: bool) -> &[Option<i64>] {
        match &self.pair.times {
            Some(t) if experiment => &t.experiment,
            Some(t) => &t.control,
            None => &[],
        }
    }
}

impl std::borrow::Borrow<crate::judge::MetricSetPair> for PairData {
    fn borrow(&self) -> &crate::judge::MetricSetPair {
        &self.pair
    }
}

/// Receives judgments and verdicts (the Kafka verdict topic, the archive).
pub trait RunListener: Send + Sync {
    /// After every judgment (`run.judgments.last()`) with the pairs it judged.
    fn judged(&self, run: &Run, pairs: &[PairData]);
    /// Once when the run ends.
    fn finished(&self, run: &Run);
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RunStats {
    pub judgments: AtomicU64,
    pub tick_errors: AtomicU64,
    pub tick_micros_total: AtomicU64,
    pub tick_micros_max: AtomicU64,
    pub verdicts: Mutex<HashMap<&'static str, u64>>,
}

struct Entry {
    run: Run,
    prepared: Option<Arc<tick::Prepared>>,
    in_flight: bool,
    /// The tick in flight, aborted when the run is stopped (its queries end with it).
    ticking: Option<tokio::task::AbortHandle>,
    /// A due tick has waited more than [`DELAY_WARNING_MS`] for ingest (warned once).
    delayed: bool,
}

/// A tick waiting this long for ingest to catch up is logged (once, at WARN).
const DELAY_WARNING_MS: i64 = 30_000;

struct Inner {
    /// When set, a tick at `t` waits until the store's watermark passes `t + lateness`.
    watermark: Option<crate::store::Watermark>,
    lateness_ms: i64,
    limits: spec::Limits,
    engine: Engine,
    configs: Arc<ConfigStore>,
    dir: PathBuf,
    runs: Mutex<HashMap<String, Entry>>,
    /// Held while a run file is written ([`RunManager::persist`]).
    persisting: Mutex<()>,
    cpu: Arc<Semaphore>,
    wake: Notify,
    /// When the scheduler last looked for due ticks (epoch ms; 0 before it started).
    heartbeat_ms: std::sync::atomic::AtomicI64,
    listeners: Vec<Arc<dyn RunListener>>,
    stats: Arc<RunStats>,
}

/// Creates, schedules, stops and reports canary runs.
#[derive(Clone)]
pub struct RunManager {
    inner: Arc<Inner>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| RunError::Io(IoError::new(context, source))
}

impl Inner {
    /// The runs. The lock is held only for plain field updates (never across an await), so
    /// a panic while holding it leaves every entry usable: the lock is recovered rather
    /// than taking every later request down with it.
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RunManager {
    /// Load the runs of `data_dir` and prepare to schedule them.
    pub fn open(
        engine: Engine,
        configs: Arc<ConfigStore>,
        data_dir: &Path,
        settings: &RunsConfig,
        listeners: Vec<Arc<dyn RunListener>>,
        watermark: Option<crate::store::Watermark>,
    ) -> Result<RunManager, RunError> {
        let dir = data_dir.join("runs");
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let mut runs = HashMap::new();
        let now = now_ms();
        for entry in std::fs::read_dir(&dir)
            .map_err(io(format!("cannot list {}", dir.display())))?
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(io(format!("cannot read {}", path.display())))?;
            let mut run: Run = match serde_json::from_str(&text) {
                Ok(run) => run,
                Err(e) => {
                    // One damaged file must not keep the daemon (and every other run) down:
                    // it is moved aside, kept for inspection, and named in the log.
                    let aside = dir.join("unreadable");
                    let to = aside.join(path.file_name().unwrap_or_default());
                    let moved =
                        std::fs::create_dir_all(&aside).and_then(|()| std::fs::rename(&path, &to));
                    tracing::error!(file = %path.display(), moved_to = %to.display(), error = %e, moved_ok = moved.is_ok(),
                        "A run file cannot be read; it is moved aside and its run is not resumed");
                    continue;
                }
            };
            if run.status == RunStatus::Running {
                if let Err(why) = spec::check_bounds(&run.spec, settings.limits) {
                    // A file written before the bounds (or by hand) is not scheduled.
                    run.status = RunStatus::Error;
                    run.message = Some(format!("The run's schedule is out of bounds: {why}"));
                    tracing::error!(run = %run.id, reason = %why, "A run file's schedule is out of bounds; the run is ended");
                } else {
                    resume(&mut run, now);
                    tracing::info!(run = %run.id, next_tick = run.next_tick, "Resuming a canary run");
                }
            }
            runs.insert(
                run.id.clone(),
                Entry {
                    run,
                    prepared: None,
                    in_flight: false,
                    ticking: None,
                    delayed: false,
                },
            );
        }
        Ok(RunManager {
            inner: Arc::new(Inner {
                watermark,
                lateness_ms: settings.lateness.as_millis() as i64,
                limits: settings.limits,
                engine,
                configs,
                dir,
                runs: Mutex::new(runs),
                persisting: Mutex::new(()),
                cpu: Arc::new(Semaphore::new(settings.judge_threads.max(1))),
                wake: Notify::new(),
                heartbeat_ms: std::sync::atomic::AtomicI64::new(0),
                listeners,
                stats: Arc::new(RunStats::default()),
            }),
        })
    }

    pub fn stats(&self) -> &Arc<RunStats> {
        &self.inner.stats
    }

    /// Start a run from a `POST /runs` body.
    pub async fn create(&self, body: &Value) -> Result<Run, RunError> {
        let now = now_ms();
        let (spec, config_ref) =
            spec::parse_with(body, now, self.inner.limits).map_err(RunError::Invalid)?;
        let config = match &config_ref {
            Value::String(id_or_name) => self.inner.configs.resolve(id_or_name)?,
            inline => {
                crate::canary::validate(inline, &self.inner.engine).await?;
                inline.clone()
            }
        };
        let bad = non_sql_metrics(&config);
        if !bad.is_empty() {
            return Err(RunError::Invalid(format!(
                "config: metrics {} are not SQL queries (query.type = \"sql\"): coalmine runs only SQL metrics",
                bad.iter().map(|b| format!("'{b}'")).collect::<Vec<_>>().join(", ")
            )));
        }
        let parsed = crate::judge::CanaryConfig::from_value(
            &config,
            &crate::judge::json::JsonPath::root().key("config"),
        )
        .map_err(|e| RunError::Invalid(e.to_string()))?;
        for m in &parsed.metrics {
            let scope = m.scope_name.clone().unwrap_or_else(|| "default".into());
            if !spec.scopes.contains_key(&scope) {
                return Err(RunError::Invalid(format!(
                    "scopes: metric '{}' uses scope '{scope}', which the request does not define",
                    m.name
                )));
            }
        }
        let prepared = tick::Prepared::new(&self.inner.engine, &parsed, &config, &spec).await?;
        let run = Run {
            id: uuid::Uuid::new_v4().to_string(),
            spec,
            config,
            status: RunStatus::Running,
            created_ms: now,
            next_tick: 1,
            judgments: Vec::new(),
            message: None,
            sequential: Default::default(),
            traffic_split: None,
        };
        let run = self.persist(run).await?;
        tracing::info!(run = %run.id, config = run.config.get("name").and_then(serde_json::Value::as_str).unwrap_or_default(), judgments = run.spec.judgments(), "Canary run started");
        self.inner.runs().insert(
            run.id.clone(),
            Entry {
                run: run.clone(),
                prepared: Some(Arc::new(prepared)),
                in_flight: false,
                ticking: None,
                delayed: false,
            },
        );
        self.inner.wake.notify_one();
        Ok(run)
    }

    pub fn get(&self, id: &str) -> Result<Run, RunError> {
        self.inner
            .runs()
            .get(id)
            .map(|e| e.run.clone())
            .ok_or_else(|| RunError::NotFound(id.into()))
    }

    /// When the scheduler last looked for due ticks (epoch ms; 0 before it started). It
    /// looks at least every 500 ms, so an old value means it is stuck.
    pub fn heartbeat_ms(&self) -> i64 {
        self.inner
            .heartbeat_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn list(&self) -> Vec<RunSummary> {
        let runs = self.inner.runs();
        let mut v: Vec<&Run> = runs.values().map(|e| &e.run).collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        v.iter().map(|r| r.summary()).collect()
    }

    /// Runs in progress.
    pub fn active(&self) -> usize {
        let runs = self.inner.runs();
        runs.values()
            .filter(|e| e.run.status == RunStatus::Running)
            .count()
    }

    /// What `/metrics` shows of each run: running runs, and finished ones until `ttl_ms`
    /// after their last judgment; the newest `max` of them.
    pub fn gauges(&self, ttl_ms: i64, max: usize) -> Vec<RunGauges> {
        let now = now_ms();
        let runs = self.inner.runs();
        let mut v: Vec<&Run> = runs
            .values()
            .map(|e| &e.run)
            .filter(|r| {
                let last = r
                    .judgments
                    .last()
                    .map_or(r.created_ms, |j| j.judged_ms.max(r.created_ms));
                r.status == RunStatus::Running || now.saturating_sub(last) <= ttl_ms
            })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        v.truncate(max);
        v.into_iter()
            .map(|r| RunGauges {
                id: r.id.clone(),
                config: r
                    .config
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                status: r.status,
                score: r.judgments.last().map(|j| j.score),
                judgments: r.judgments.len(),
                thresholds: (r.spec.pass, r.spec.marginal),
                metrics: r
                    .judgments
                    .last()
                    .map(|j| {
                        j.result
                            .results
                            .iter()
                            .map(|m| MetricGauge {
                                name: m.name.clone(),
                                tags: m
                                    .tags
                                    .iter()
                                    .map(|(k, v)| format!("{k}={v}"))
                                    .collect::<Vec<_>>()
                                    .join(","),
                                classification: m.classification.clone(),
                                critical: m.critical,
                                muted: m.muted,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Stop a running run (its judgments are kept).
    pub async fn stop(&self, id: &str) -> Result<Run, RunError> {
        let run = {
            let mut runs = self.inner.runs();
            let e = runs
                .get_mut(id)
                .ok_or_else(|| RunError::NotFound(id.into()))?;
            if e.run.status == RunStatus::Running {
                e.run.status = RunStatus::Stopped;
                e.run.message = Some("stopped by request".into());
                if let Some(tick) = e.ticking.take() {
                    tick.abort();
                }
            }
            e.run.clone()
        };
        let run = self.persist(run).await?;
        for l in &self.inner.listeners {
            l.finished(&run);
        }
        Ok(run)
    }

    /// A run and its series for the report: the last judgment's window for a fixed-horizon
    /// judge, everything since the first judged value for a sequential one (each of its
    /// judgments saw only new values). The series are queried again from the store, so
    /// values that arrived late show too, and data past retention is gone.
    pub async fn report_data(&self, id: &str) -> Result<(Run, Vec<PairData>, String), RunError> {
        let (run, prepared) = {
            let runs = self.inner.runs();
            let e = runs.get(id).ok_or_else(|| RunError::NotFound(id.into()))?;
            (e.run.clone(), e.prepared.clone())
        };
        let (Some(first), Some(last)) = (run.judgments.first(), run.judgments.last()) else {
            return Ok((run, Vec::new(), String::new()));
        };
        let prepared = match prepared {
            Some(p) => p,
            None => self.prepare(&run).await?,
        };
        let (window, what) = if prepared.kind.sequential().is_some() {
            (
                (first.window_start_ms, last.window_end_ms),
                "every value judged so far",
            )
        } else {
            (
                (last.window_start_ms, last.window_end_ms),
                "the last judgment's window",
            )
        };
        let pairs = tick::series(&prepared, &run, window).await?;
        let note = format!(
            "{what}, {} to {}, queried again from the store",
            utc_text(window.0),
            utc_text(window.1)
        );
        Ok((run, pairs, note))
    }

    /// Write `<data-dir>/runs/<id>.json` atomically, off the async runtime (it fsyncs).
    /// Writes are serialised and each writes the run as it is then, so a slower write of
    /// an older state never lands last.
    async fn persist(&self, run: Run) -> Result<Run, RunError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _one_writer = me
                .inner
                .persisting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let run = me.inner.runs().get(&run.id).map_or(run, |e| e.run.clone());
            let path = me.inner.dir.join(format!("{}.json", run.id));
            let bytes = serde_json::to_vec(&run).expect("runs serialise");
            crate::store::write_atomically(&path, &bytes)
                .map_err(io(format!("cannot write {}", path.display())))?;
            Ok(run)
        })
        .await
        .map_err(|e| RunError::Invalid(format!("saving the run: {e}")))?
    }

    /// Tick runs as they become due until `shutdown` resolves.
    pub async fn schedule(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.inner
                .heartbeat_ms
                .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
            let next = self.dispatch_due();
            let sleep = next.map_or(Duration::from_millis(500), |t| {
                Duration::from_millis((t - now_ms()).clamp(5, 500) as u64)
            });
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        // let ticks in flight finish (each is bounded by the query and judging limits)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.inner.runs().values().any(|e| e.in_flight)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Start every due tick; returns when the next one is due. A tick at `t` is due at
    /// `t + lateness`, once ingest is caught up past that (after a restart the consumer
    /// first re-reads what it missed: judging before would see a hole in the data).
    fn dispatch_due(&self) -> Option<i64> {
        let now = now_ms();
        let caught_up = self
            .inner
            .watermark
            .as_ref()
            .map_or(i64::MAX, crate::store::Watermark::get);
        let late = self.inner.lateness_ms;
        let mut next: Option<i64> = None;
        let mut due = Vec::new();
        {
            let mut runs = self.inner.runs();
            for e in runs.values_mut() {
                if e.run.status != RunStatus::Running || e.in_flight {
                    continue;
                }
                let t = e.run.spec.tick_ms(e.run.next_tick) + late;
                if t <= now && t <= caught_up {
                    e.in_flight = true;
                    if std::mem::take(&mut e.delayed) {
                        tracing::info!(run = %e.run.id, waited_ms = now - t, "Judgment resumed: ingest caught up");
                    }
                    due.push(e.run.id.clone());
                } else if t <= now {
                    // waiting for ingest to catch up: look again soon
                    next = Some(now + 50);
                    if now - t > DELAY_WARNING_MS && !e.delayed {
                        e.delayed = true;
                        tracing::warn!(run = %e.run.id, behind_ms = now - caught_up, "Judgment delayed: ingest is behind (logged once until it catches up)");
                    }
                } else {
                    next = Some(next.map_or(t, |n: i64| n.min(t)));
                }
            }
        }
        for id in due {
            let (me, tick_id) = (self.clone(), id.clone());
            let tick = tokio::spawn(async move { me.tick(&tick_id).await });
            if let Some(e) = self.inner.runs().get_mut(&id) {
                e.ticking = Some(tick.abort_handle());
            }
            let me = self.clone();
            tokio::spawn(async move {
                // A tick that panics (a bug: input errors are results) ends its run with the
                // panic as the reason instead of leaving it in flight; an aborted tick (the
                // run was stopped) only clears its flight.
                if let Err(e) = tick.await {
                    if let Some((run, _)) = me.record(&id, Err(RunError::Task(e)), Duration::ZERO) {
                        if let Err(err) = me.persist(run).await {
                            tracing::error!(run = %id, error = %err, "Cannot save the run");
                        }
                    }
                }
            });
        }
        next
    }

    async fn tick(&self, id: &str) {
        let started = std::time::Instant::now();
        let (run, prepared) = {
            let runs = self.inner.runs();
            let Some(e) = runs.get(id) else { return };
            (e.run.clone(), e.prepared.clone())
        };
        let prepared = match prepared {
            Some(p) => Ok(p),
            None => self.prepare(&run).await,
        };
        let index = run.next_tick;
        let tick_ms = run.spec.tick_ms(index);
        let outcome = match prepared {
            Ok(p) => tick::judge_tick(&p, &run, tick_ms, &self.inner.cpu)
                .await
                .map(|r| (r, p)),
            Err(e) => Err(e),
        };
        let took = started.elapsed();
        let stats = &self.inner.stats;
        let Some((run, pairs)) = self.record(id, outcome, took) else {
            return;
        };
        let run = match self.persist(run.clone()).await {
            Ok(run) => run,
            Err(err) => {
                tracing::error!(run = %id, error = %err, "Cannot save the run");
                run
            }
        };
        if !pairs.is_empty() {
            for l in &self.inner.listeners {
                l.judged(&run, &pairs);
            }
        }
        if run.status.is_final() {
            *stats
                .verdicts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(run.status.as_str())
                .or_default() += 1;
            tracing::info!(run = %id, status = run.status.as_str(), message = run.message.as_deref().unwrap_or_default(), "Canary run finished");
            for l in &self.inner.listeners {
                l.finished(&run);
            }
        }
        self.inner.wake.notify_one();
    }

    /// Record a tick's outcome in the run (under the runs lock): the judgment and the
    /// decision, or the error that ends the run. `None` when the run is gone or was stopped
    /// meanwhile; else the run as it is now and the pairs judged.
    fn record(
        &self,
        id: &str,
        outcome: Result<(tick::TickOutcome, Arc<tick::Prepared>), RunError>,
        took: std::time::Duration,
    ) -> Option<(Run, Vec<PairData>)> {
        let stats = &self.inner.stats;
        let mut runs = self.inner.runs();
        let e = runs.get_mut(id)?;
        e.in_flight = false;
        e.ticking = None;
        if e.run.status != RunStatus::Running {
            return None; // stopped meanwhile
        }
        let index = e.run.next_tick;
        let tick_ms = e.run.spec.tick_ms(index);
        let pairs = match outcome {
            Ok((out, prepared)) => {
                e.prepared = Some(prepared);
                let tick::TickOutcome {
                    result,
                    pairs,
                    states,
                    split,
                } = out;
                if split.is_some() {
                    e.run.traffic_split = split;
                }
                let sequential = states.is_some();
                if let Some(st) = states {
                    e.run.sequential = st;
                }
                let (start, end) = if sequential {
                    e.run
                        .spec
                        .new_data_window(e.run.judgments.last().map(|j| j.window_end_ms), tick_ms)
                } else {
                    e.run.spec.window_at(tick_ms)
                };
                let score = result.score.score;
                e.run.judgments.push(Judgment::new(
                    index,
                    tick_ms,
                    (start, end),
                    result,
                    took.as_secs_f64() * 1e3,
                    crate::store::now_ms(),
                ));
                stats.judgments.fetch_add(1, Ordering::Relaxed);
                let micros = took.as_micros() as u64;
                stats.tick_micros_total.fetch_add(micros, Ordering::Relaxed);
                stats.tick_micros_max.fetch_max(micros, Ordering::Relaxed);
                decide(&mut e.run, score, index);
                if sequential && e.run.status == RunStatus::Running {
                    early_pass(&mut e.run, tick_ms);
                }
                split_mismatch(&mut e.run, index);
                pairs
            }
            Err(msg) => {
                stats.tick_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(run = %id, tick = index, error = %msg, "Judgment failed; the run stops");
                e.run.status = RunStatus::Error;
                e.run.message = Some(format!("judgment {index} failed: {msg}"));
                Vec::new()
            }
        };
        Some((e.run.clone(), pairs))
    }

    async fn prepare(&self, run: &Run) -> Result<Arc<tick::Prepared>, RunError> {
        let parsed = crate::judge::CanaryConfig::from_value(
            &run.config,
            &crate::judge::json::JsonPath::root(),
        )
        .map_err(crate::judge::JudgeError::from)?;
        Ok(Arc::new(
            tick::Prepared::new(&self.inner.engine, &parsed, &run.config, &run.spec).await?,
        ))
    }
}

/// A run's queries planned once and judged on demand, outside the scheduler (benchmarks,
/// replays, tools).
pub struct PreparedRun {
    prepared: tick::Prepared,
    run: Run,
}

impl PreparedRun {
    /// Plan every metric's SQL for both scopes of `spec` (a parsed `POST /runs` body).
    pub async fn prepare(
        engine: &Engine,
        config: &Value,
        spec: RunSpec,
    ) -> Result<PreparedRun, RunError> {
        let parsed = crate::judge::CanaryConfig::from_value(
            config,
            &crate::judge::json::JsonPath::root().key("config"),
        )
        .map_err(|e| RunError::Invalid(e.to_string()))?;
        let prepared = tick::Prepared::new(engine, &parsed, config, &spec).await?;
        let run = Run {
            id: "prepared".into(),
            spec,
            config: config.clone(),
            status: RunStatus::Running,
            created_ms: now_ms(),
            next_tick: 1,
            judgments: Vec::new(),
            message: None,
            sequential: Default::default(),
            traffic_split: None,
        };
        Ok(PreparedRun { prepared, run })
    }

    /// Query, pair and judge the window of a tick at `tick_ms`: the `CanaryJudgeResult` and
    /// the metric-set pairs judged.
    pub async fn judge(
        &self,
        tick_ms: i64,
    ) -> Result<(crate::judge::CanaryJudgeResult, Vec<PairData>), RunError> {
        let cpu = tokio::sync::Semaphore::new(1);
        let out = tick::judge_tick(&self.prepared, &self.run, tick_ms, &cpu).await?;
        Ok((out.result, out.pairs))
    }
}

/// The address of run `id`'s HTML report under the API at `base` (`reportUrl`).
pub fn report_url(base: &str, id: &str) -> String {
    format!("{base}/runs/{id}/report")
}

/// `ms` (Unix) as `2026-12-01 10:00:00 UTC`.
pub(crate) fn utc_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// [`decide`] for generated archives (`archive::fixture`).
pub fn decide_for_fixture(run: &mut Run, score: f64, index: u64) {
    decide(run, score, index);
}

/// The metrics of a `CanaryJudgeResult` that could not be judged.
fn not_judged(result: &crate::judge::CanaryJudgeResult) -> Vec<NotJudged> {
    result
        .results
        .iter()
        .filter_map(|r| {
            Some(NotJudged {
                metric: r.name.clone(),
                tags: r.tags.clone(),
                reason: r.not_judged.clone()?,
            })
        })
        .collect()
}

/// " 2 of the metrics could not be judged: a (why); b (why)." for a final message.
fn not_judged_note(run: &Run) -> String {
    let list = run
        .judgments
        .last()
        .map(|j| not_judged(&j.result))
        .unwrap_or_default();
    if list.is_empty() {
        return String::new();
    }
    let items: Vec<String> = list
        .iter()
        .map(|m| format!("{} ({})", m.metric, m.reason))
        .collect();
    format!(
        " {} could not be judged: {}.",
        if items.len() == 1 {
            "1 metric".to_string()
        } else {
            format!("{} metrics", items.len())
        },
        items.join("; ")
    )
}

/// After judgment `index` scored `score`: stop early, finish, or go on.
fn decide(run: &mut Run, score: f64, index: u64) {
    let (pass, marginal) = (run.spec.pass, run.spec.marginal);
    let last = index >= run.spec.judgments();
    if score <= marginal {
        run.status = RunStatus::Fail;
        run.message = Some(if last {
            format!("Final canary score {score} is not above the marginal score threshold ({marginal}).")
        } else {
            format!("Judgment {index} scored {score}, at or below the marginal threshold ({marginal}): the run stopped early.")
        });
    } else if last {
        let inconclusive: Vec<String> = run
            .judgments
            .last()
            .map(|j| j.result.results.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|r| r.inconclusive && !r.muted)
            .map(|r| r.name.clone())
            .collect();
        let passed = crate::judge::score::standalone_passed(score, Some(pass), Some(marginal));
        if passed && !inconclusive.is_empty() {
            run.status = RunStatus::Inconclusive;
            run.message = Some(format!(
                "Final canary score {score} met the pass score threshold ({pass}), but it does not count {} that could not be judged: the canary is not shown to be no worse.",
                inconclusive.join(", ")
            ));
        } else if passed {
            run.status = RunStatus::Pass;
            run.message = Some(format!(
                "Final canary score {score} met or exceeded the pass score threshold ({pass})."
            ));
        } else {
            run.status = RunStatus::Marginal;
            run.message = Some(format!(
                "Final canary score {score} is below the pass score threshold ({pass})."
            ));
        }
    } else {
        run.next_tick = index + 1;
        return;
    }
    let note = not_judged_note(run);
    if let Some(m) = &mut run.message {
        m.push_str(&note);
    }
}

/// A traffic split found off ends the run `inconclusive` at once, whatever the judgment
/// said: its comparisons rest on a biased sample, so neither a pass nor a fail holds.
fn split_mismatch(run: &mut Run, index: u64) {
    let Some(state) = run.traffic_split.as_ref().filter(|s| s.mismatched()) else {
        return;
    };
    let report = state.report();
    let was = match run.status {
        RunStatus::Running => String::new(),
        other => format!(" (it would have ended {})", other.as_str()),
    };
    run.status = RunStatus::Inconclusive;
    run.message = Some(format!(
        "{}. The run stopped at judgment {index}{was}: fix the traffic split and start a new run.",
        report.reason
    ));
}

/// `coalmine-seq-v1` with `minDuration`: pass before the end once the run has lasted that
/// long and every metric's confidence sequence excludes a regression beyond its margin.
fn early_pass(run: &mut Run, tick_ms: i64) {
    let Some(min) = run.spec.min_duration_ms else {
        return;
    };
    let elapsed = (tick_ms - run.spec.start_ms) as f64 / 1000.0;
    let muted: std::collections::HashSet<&str> = run
        .judgments
        .last()
        .map(|j| j.result.results.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.muted)
        .map(|r| r.name.as_str())
        .collect();
    let counted: Vec<&crate::judge::sequential::SequentialState> = run
        .sequential
        .iter()
        .filter(|(k, _)| !muted.contains(k.split('\u{1f}').next().unwrap_or("")))
        .map(|(_, s)| s)
        .collect();
    if !counted.is_empty()
        && counted
            .iter()
            .all(|s| s.early_pass(elapsed, min as f64 / 1000.0))
    {
        run.status = RunStatus::Pass;
        run.message = Some(format!(
            "Passed early after {}: every metric's confidence sequence excludes a regression beyond its margin.",
            humantime::format_duration(std::time::Duration::from_millis((tick_ms - run.spec.start_ms).max(0) as u64))
        ));
    }
}

/// After a restart: skip ticks missed by more than an interval; a run whose end has passed
/// goes straight to its final judgment.
fn resume(run: &mut Run, now: i64) {
    let due = run
        .spec
        .first_tick_from(now.saturating_sub(run.spec.interval_ms));
    run.next_tick = run.next_tick.max(due);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> Run {
        let body = json!({"config": "c", "scopes": {"default": {"control": {"tags": {"v": "1"}}, "experiment": {"tags": {"v": "2"}}}},
                          "lifetime": "10m", "interval": "1m"});
        let (spec, _) = spec::parse(&body, 0).unwrap();
        Run {
            id: "r".into(),
            spec,
            config: json!({}),
            status: RunStatus::Running,
            created_ms: 0,
            next_tick: 1,
            judgments: vec![],
            message: None,
            sequential: Default::default(),
            traffic_split: None,
        }
    }

    #[test]
    fn decisions_follow_kayenta_standalone_semantics() {
        let mut r = run();
        decide(&mut r, 80.0, 1);
        assert_eq!((r.status, r.next_tick), (RunStatus::Running, 2));
        decide(&mut r, 75.0, 2);
        assert_eq!(r.status, RunStatus::Fail, "≤ marginal stops the run");
        let mut r = run();
        decide(&mut r, 96.0, 10);
        assert_eq!(r.status, RunStatus::Pass);
        let mut r = run();
        decide(&mut r, 90.0, 10);
        assert_eq!(r.status, RunStatus::Marginal);
    }

    #[test]
    fn resume_skips_stale_ticks_and_finishes_ended_runs() {
        let mut r = run();
        resume(&mut r, 5 * 60_000 + 30_000);
        assert_eq!(
            r.next_tick, 5,
            "the 5-minute tick is within an interval: judged now"
        );
        let mut r = run();
        resume(&mut r, 3_600_000);
        assert_eq!(r.next_tick, 10, "the lifetime ended: final judgment");
    }
}
