//! `coalmine demo`: the whole pipeline on an embedded default, in one command.
//!
//! An in-process Kafka-protocol broker (librdkafka's mock cluster, or `--kafka HOST:PORT`),
//! a traffic generator (three baseline and three canary instances emitting latency samples,
//! request and error counts and CPU), the daemon with a bundled SQL canary config, and one
//! canary run printed tick by tick. Exits 0 when the canary passes, 1 when it does not —
//! so with the default injected regression (`--regression latency=+15%`) the expected
//! outcome is a detected failure, and `--regression none` passes.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};

use crate::config::{Config, TopicConfig};
use crate::daemon::Daemon;
use crate::error::Error;
use crate::ingest::decode::Format;
use crate::runs::{Run, RunListener, RunStatus};

/// What the canary does wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regression {
    None,
    /// Latency multiplied by `1 + x`.
    Latency(f64),
    /// Error probability multiplied by `x`.
    Errors(f64),
    /// CPU multiplied by `1 + x`.
    Cpu(f64),
}

impl Regression {
    /// `none`, `latency=+15%`, `errors=x3`, `cpu=+20%`.
    pub fn parse(s: &str) -> Result<Regression, String> {
        if s == "none" {
            return Ok(Regression::None);
        }
        let (what, amount) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected none, latency=+15%, errors=x3 or cpu=+20%"))?;
        let pct = |a: &str| -> Result<f64, String> {
            let t = a.trim().trim_end_matches('%');
            t.parse::<f64>()
                .map(|v| v / 100.0)
                .map_err(|_| format!("{a:?} is not a percentage like +15%"))
        };
        let factor = |a: &str| -> Result<f64, String> {
            a.trim()
                .trim_start_matches('x')
                .parse::<f64>()
                .map_err(|_| format!("{a:?} is not a factor like x3"))
        };
        match what {
            "latency" => Ok(Regression::Latency(pct(amount)?)),
            "cpu" => Ok(Regression::Cpu(pct(amount)?)),
            "errors" => Ok(Regression::Errors(factor(amount)?)),
            other => Err(format!(
                "unknown regression {other:?} (latency, errors, cpu, none)"
            )),
        }
    }
}

/// Options of `coalmine demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub kafka: Option<String>,
    pub regression: Regression,
    pub lifetime: Duration,
    pub interval: Duration,
    pub window: Duration,
    pub warmup: Duration,
    /// Latency samples per instance per second.
    pub rate: u32,
    pub judge: Option<String>,
    pub data_dir: Option<std::path::PathBuf>,
    pub seed: u64,
    /// Where to write the run's HTML report when it ends.
    pub report: Option<std::path::PathBuf>,
    /// Keep the API up after the verdict until Ctrl-C.
    pub keep_serving: bool,
}

/// The bundled canary config: latency, errors and saturation as SQL over `metrics`: the p50
/// from raw samples, the p99 from a Prometheus-style histogram (`histogram_quantile` over the
/// `increase` of its buckets), the error rate from a request counter by status code.
pub fn demo_config() -> Value {
    json!({
        "name": "checkout-demo",
        "description": "Golden signals of the demo's checkout service",
        "applications": ["checkout"],
        "metrics": [
            {"name": "latency p50", "groups": ["latency"], "scopeName": "default",
             "query": {"type": "sql", "sql": "SELECT date_bin(INTERVAL '1 second', ts) AS ts, approx_percentile_cont(value, 0.5) AS value FROM metrics WHERE metric = 'http.latency_ms' GROUP BY 1"},
             "analysisConfigurations": {"canary": {"direction": "increase", "critical": true, "effectSize": {"allowedIncrease": 1.05, "criticalIncrease": 1.1}}}},
            {"name": "latency p99", "groups": ["latency"], "scopeName": "default",
             "query": {"type": "sql", "sql": "SELECT t AS ts, histogram_quantile(0.99, le, inc) AS value FROM (SELECT date_bin(INTERVAL '2 seconds', ts) AS t, le, instance, increase(value, ts) AS inc FROM metrics WHERE metric = 'http_request_duration_seconds_bucket' GROUP BY 1, 2, 3) GROUP BY t"},
             "analysisConfigurations": {"canary": {"direction": "increase", "effectSize": {"allowedIncrease": 1.05}}}},
            {"name": "error rate", "groups": ["errors"], "scopeName": "default",
             "query": {"type": "sql", "sql": "SELECT t AS ts, sum(CASE WHEN code = '500' THEN inc ELSE 0 END) / sum(inc) AS value FROM (SELECT date_bin(INTERVAL '2 seconds', ts) AS t, code, instance, increase(value, ts) AS inc FROM metrics WHERE metric = 'http_requests_total' GROUP BY 1, 2, 3) GROUP BY t"},
             "analysisConfigurations": {"canary": {"direction": "increase", "nanStrategy": "replace"}}},
            {"name": "cpu", "groups": ["saturation"], "scopeName": "default",
             "query": {"type": "sql", "sql": "SELECT date_bin(INTERVAL '1 second', ts) AS ts, avg(value) AS value FROM metrics WHERE metric = 'process.cpu' GROUP BY 1"},
             "analysisConfigurations": {"canary": {"direction": "increase", "effectSize": {"allowedIncrease": 1.1}}}}
        ],
        "classifier": {"groupWeights": {"latency": 50, "errors": 30, "saturation": 20}}
    })
}

/// The demo's latency histogram bounds (seconds), finer than Prometheus's defaults around
/// its 100 ms median and its 180 ms p99.
const BUCKETS: [f64; 11] = [
    0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.5,
];

/// Emit traffic until `stop`: every 100 ms, one JSON message per instance. Besides raw
/// latency samples and per-tick counts, each instance keeps Prometheus-style cumulative
/// counters: `http_requests_total{code}` and `http_request_duration_seconds_bucket{le}`.
fn generate(
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    opts: DemoOptions,
    stop: Arc<AtomicBool>,
) {
    let mut rng = crate::synthetic::Synth::new(opts.seed);
    let per_tick = (opts.rate as f64 / 10.0).max(1.0) as usize;
    // per instance: requests by code (200, 500) and cumulative bucket counts (+Inf last)
    let mut requests = [[0u64; 2]; 6];
    let mut buckets = [[0u64; BUCKETS.len() + 1]; 6];
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let now = crate::store::now_ms();
        for inst in 1..=6 {
            let canary = inst > 3;
            let version = if canary { "canary" } else { "baseline" };
            let (mut lat_mult, mut err_mult, mut cpu_mult) = (1.0, 1.0, 1.0);
            if canary {
                match opts.regression {
                    Regression::Latency(x) => lat_mult = 1.0 + x,
                    Regression::Errors(x) => err_mult = x,
                    Regression::Cpu(x) => cpu_mult = 1.0 + x,
                    Regression::None => {}
                }
            }
            let tags =
                json!({"app": "checkout", "version": version, "instance": format!("i-{inst}")});
            let mut points = Vec::with_capacity(per_tick + BUCKETS.len() + 6);
            let mut errors = 0;
            for k in 0..per_tick {
                // log-normal latency around 100 ms
                let ms = 100.0 * (0.25 * rng.normal(0.0, 1.0)).exp() * lat_mult;
                points.push(json!({"metric": "http.latency_ms", "ts": now + k as i64, "value": (ms * 100.0).round() / 100.0, "tags": tags}));
                let error = rng.uniform() < 0.01 * err_mult;
                if error {
                    errors += 1;
                }
                requests[inst - 1][usize::from(error)] += 1;
                for (count, le) in buckets[inst - 1].iter_mut().zip(BUCKETS) {
                    if ms / 1000.0 <= le {
                        *count += 1;
                    }
                }
                buckets[inst - 1][BUCKETS.len()] += 1;
            }
            let series_tags = |key: &str, value: &str| {
                let mut t = tags.clone();
                t[key] = json!(value);
                t
            };
            for (code, n) in ["200", "500"].iter().zip(requests[inst - 1]) {
                points.push(json!({"metric": "http_requests_total", "ts": now, "value": n, "tags": series_tags("code", code)}));
            }
            for (i, n) in buckets[inst - 1].iter().enumerate() {
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                points.push(json!({"metric": "http_request_duration_seconds_bucket", "ts": now, "value": n, "tags": series_tags("le", &le)}));
            }
            points.push(
                json!({"metric": "http.requests", "ts": now, "value": per_tick, "tags": tags}),
            );
            points.push(json!({"metric": "http.errors", "ts": now, "value": errors, "tags": tags}));
            let cpu = (0.45 + 0.03 * rng.normal(0.0, 1.0)) * cpu_mult;
            points.push(json!({"metric": "process.cpu", "ts": now, "value": (cpu * 1000.0).round() / 1000.0, "tags": tags}));
            let payload = Value::Array(points).to_string();
            let key = format!("i-{inst}");
            let _ = producer.send(
                BaseRecord::<str, str>::to(&topic)
                    .key(&key)
                    .payload(&payload),
            );
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(t0.elapsed()));
    }
    let _ = producer.flush(Duration::from_secs(5));
}

/// Prints each judgment as a table row and reports the end.
struct LiveTable {
    done: mpsc::Sender<Run>,
    run_id: std::sync::Mutex<Option<String>>,
}

impl RunListener for LiveTable {
    fn judged(&self, run: &Run, _pairs: &[crate::runs::PairData]) {
        if self.run_id.lock().expect("lock").as_deref() != Some(run.id.as_str()) {
            return;
        }
        let Some(j) = run.judgments.last() else {
            return;
        };
        let metrics: Vec<String> = j
            .result
            .results
            .iter()
            .map(|r| {
                let mut c = r.classification.clone();
                if r.critical {
                    c.push('!');
                }
                if r.not_judged.is_some() {
                    c.push_str(" (n/j)");
                }
                format!("{:<14}", c)
            })
            .collect();
        let window = (j.window_end_ms - j.window_start_ms) / 1000;
        println!(
            "{:>2}/{:<2}  {:>5.1}s  {:>6.2}  {:<8}  {}",
            j.index,
            run.spec.judgments(),
            window as f64,
            j.score,
            j.classification,
            metrics.join("")
        );
        let _ = std::io::stdout().flush();
    }

    fn finished(&self, run: &Run) {
        if self.run_id.lock().expect("lock").as_deref() == Some(run.id.as_str()) {
            let _ = self.done.send(run.clone());
        }
    }
}

/// Run the demo; returns the final run.
pub async fn run(opts: DemoOptions) -> Result<Run, Error> {
    let topic = "coalmine-demo-metrics".to_string();
    // The broker: the caller's, or librdkafka's in-process mock cluster.
    let mock = match &opts.kafka {
        Some(_) => None,
        None => Some(
            rdkafka::mocking::MockCluster::new(1).map_err(|source| Error::Kafka {
                context: "cannot start the mock broker".into(),
                source,
            })?,
        ),
    };
    let brokers = match (&opts.kafka, &mock) {
        (Some(k), _) => k.clone(),
        (None, Some(m)) => {
            m.create_topic(&topic, 3, 1)
                .map_err(|source| Error::Kafka {
                    context: "cannot create the demo topic".into(),
                    source,
                })?;
            m.bootstrap_servers()
        }
        (None, None) => unreachable!(),
    };
    if opts.kafka.is_some() {
        ensure_topic(&brokers, &topic).await;
    }
    let tmp;
    let data_dir = match &opts.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("coalmine-demo-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            tmp.clone()
        }
    };
    let mut cfg = Config::defaults();
    cfg.store.data_dir = data_dir.clone();
    cfg.sinks.archive_dir = Some(data_dir.join("archive"));
    cfg.store.flush_interval = Duration::from_millis(250);
    cfg.kafka.bootstrap_servers = brokers.clone();
    cfg.kafka.group_id = format!("coalmine-demo-{}", std::process::id());
    cfg.kafka.topics = vec![TopicConfig {
        name: topic.clone(),
        format: Format::Json,
    }];
    cfg.server.listen = "127.0.0.1:0".into();
    let (done_tx, done_rx) = mpsc::channel();
    let live = Arc::new(LiveTable {
        done: done_tx,
        run_id: std::sync::Mutex::new(None),
    });
    let daemon = Daemon::start(cfg, vec![live.clone()]).await?;
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .map_err(|source| Error::Kafka {
            context: "cannot create the demo's producer".into(),
            source,
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let (stop, opts, topic) = (stop.clone(), opts.clone(), topic.clone());
        std::thread::spawn(move || generate(producer, topic, opts, stop))
    };
    let config = demo_config();
    crate::canary::validate(&config, &crate::query::Engine::new(daemon.store.clone())).await?;
    let config_id = daemon.configs.create(config)?;
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    let mut body = json!({
        "config": config_id,
        "scopes": {"default": {"control": {"tags": {"app": "checkout", "version": "baseline"}},
                               "experiment": {"tags": {"app": "checkout", "version": "canary"}}}},
        "start": "now", "lifetime": secs(opts.lifetime), "interval": secs(opts.interval),
        "window": secs(opts.window), "warmup": secs(opts.warmup),
        "thresholds": {"pass": 95, "marginal": 75},
    });
    if let Some(j) = &opts.judge {
        body["judge"] = json!(j);
    }
    let run = daemon.runs.create(&body).await?;
    *live.run_id.lock().expect("lock") = Some(run.id.clone());
    let api = daemon
        .addr
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    println!(
        "coalmine demo: 3 baseline + 3 canary instances of `checkout`, injected regression: {:?}",
        opts.regression
    );
    println!(
        "broker {brokers} · data {} · API {api}\n(while it runs: curl {api}/runs/{id}/verdict, or open {api}/runs/{id}/report)",
        data_dir.display(),
        id = run.id
    );
    println!(
        "run {} · {} judgments every {} over a {} sliding window after a {} warm-up\n",
        run.id,
        run.spec.judgments(),
        humantime::format_duration(opts.interval),
        humantime::format_duration(opts.window),
        humantime::format_duration(opts.warmup)
    );
    let names: Vec<String> = demo_config()["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| format!("{:<14}", m["name"].as_str().unwrap_or("")))
        .collect();
    println!("tick   window  score   verdict   {}", names.join(""));
    let final_run = tokio::task::spawn_blocking(move || done_rx.recv())
        .await?
        .map_err(|_| Error::Internal("the run ended without a verdict".into()))?;
    stop.store(true, Ordering::Relaxed);
    let _ = generator.join();
    println!(
        "\nverdict: {} — {}",
        final_run.status.as_str().to_uppercase(),
        final_run.message.clone().unwrap_or_default()
    );
    let (points, _) = daemon.store.count_and_sum().unwrap_or((0, 0.0));
    println!("({} points ingested and judged)", points);
    let report_url = crate::runs::report_url(&api, &final_run.id);
    if let Some(path) = &opts.report {
        let (run, pairs, note) = daemon.runs.report_data(&final_run.id).await?;
        let pairs: Vec<_> = pairs.into_iter().map(|p| p.pair).collect();
        let page = crate::report::run_html(&run, &pairs, &note, crate::report::Form::Page);
        std::fs::write(path, page)
            .map_err(|e| Error::io(format!("cannot write the report to {}", path.display()), e))?;
        println!("report: {} (open it in a browser)", path.display());
    }
    if opts.keep_serving {
        println!(
            "the API stays up: {report_url} · {api}/runs/{} — Ctrl-C to stop",
            final_run.id
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    daemon.shutdown().await?;
    drop(mock);
    if opts.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(final_run)
}

async fn ensure_topic(brokers: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let Ok(admin) = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create::<AdminClient<rdkafka::client::DefaultClientContext>>()
    else {
        return;
    };
    let t = NewTopic::new(topic, 3, TopicReplication::Fixed(1));
    let _ = admin.create_topics([&t], &AdminOptions::new()).await;
}

/// Exit status for a final run: 0 pass, 1 anything else.
pub fn exit_code(run: &Run) -> u8 {
    if run.status == RunStatus::Pass {
        0
    } else {
        1
    }
}
