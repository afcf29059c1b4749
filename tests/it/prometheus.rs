//! `increase`, `rate` and `histogram_quantile` against Prometheus itself: a real Prometheus
//! (Debian's `prometheus`, installed by `scripts/test.sh`) scrapes its own `/metrics` every
//! second; its raw samples of a counter and a histogram over a 20 s range are copied into a
//! coalmine store, and coalmine's SQL over them must give what PromQL gives for the same
//! range, to 1e-9 relative (the same float operations in the same order; only the last bit
//! may differ).
//!
//! The second test feeds coalmine the way a user would: the Prometheus remote-writes to a
//! daemon's `POST /api/v1/write` (bearer token; the receiver produces to Kafka, the consumer
//! stores), and the stored samples of the range must be Prometheus's own, sample for
//! sample, before the same comparison.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coalmine::query::{Binding, Engine};
use coalmine::store::segment::PointColumns;
use coalmine::store::{message_offsets, Store, StoreConfig};
use serde_json::Value;

use crate::http::get;
use crate::kafka::TempDir;

struct Prometheus {
    child: Child,
    addr: String,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus scraping itself every second, or `None` when it is not installed (allowed
/// only outside the full test command, which sets `COALMINE_REQUIRE_KAFKA`).
fn start(remote_write: Option<(&str, &str)>) -> Option<Prometheus> {
    let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        assert!(
            std::env::var_os("COALMINE_REQUIRE_KAFKA").is_none(),
            "prometheus is not installed (scripts/test.sh installs Debian's package)"
        );
        eprintln!("prometheus not installed: skipped");
        return None;
    };
    let dir = TempDir::new("prometheus");
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['{addr}']\n{}",
            remote_write.map_or(String::new(), |(url, token)| format!(
                "remote_write:\n  - url: {url}\n    authorization:\n      credentials: {token}\n    queue_config:\n      batch_send_deadline: 1s\n      max_samples_per_send: 2000\n"
            ))
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    Some(Prometheus {
        child,
        addr,
        _dir: dir,
    })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PromQL query at `time_ms`: the `result` array.
fn query(p: &Prometheus, q: &str, time_ms: i64) -> Vec<Value> {
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        encode(q),
        time_ms / 1000,
        time_ms % 1000
    );
    let r = get(&p.addr, &path).json();
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn number(v: &Value) -> f64 {
    match v.as_str().unwrap() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap(),
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

const COUNTER: &str = r#"prometheus_http_requests_total{handler="/metrics"}"#;
const BUCKETS: &str = r#"prometheus_http_request_duration_seconds_bucket{handler="/metrics"}"#;

#[tokio::test(flavor = "current_thread")]
async fn counter_and_histogram_functions_match_promql() {
    let Some(p) = start(None) else {
        return;
    };
    wait_for_scrapes(&p);
    let t = range_end();
    // the raw samples, into a coalmine store
    let dir = TempDir::new("promstore");
    let mut cfg = StoreConfig::new(dir.0.join("data"));
    cfg.retention = Duration::from_secs(100 * 365 * 86400);
    cfg.hot_window = cfg.retention;
    let store = Store::open(cfg).unwrap();
    let mut pts = PointColumns::default();
    let mut loaded = 0;
    for selector in [COUNTER, BUCKETS] {
        for series in query(&p, &format!("{selector}[{RANGE}]"), t) {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(series["metric"].clone()).unwrap();
            let name = labels["__name__"].clone();
            let tags: Vec<(&str, &str)> = labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let id = store.registry_mut().resolve(&name, &tags);
            for sample in series["values"].as_array().unwrap() {
                let ts = (sample[0].as_f64().unwrap() * 1000.0).round() as i64;
                pts.push(id, ts, number(&sample[1]));
                loaded += 1;
            }
        }
    }
    assert!(loaded > 100, "{loaded} samples");
    store.append(&pts, &message_offsets("t", 0, 0));
    store.flush().unwrap();
    compare(&p, Engine::new(store), t).await;
}

/// Prometheus remote-writes into a coalmine daemon (`POST /api/v1/write` → Kafka → the
/// store): the stored samples of the range are Prometheus's own, sample for sample, and the
/// functions over them match PromQL.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn prometheus_remote_write_feeds_coalmine() {
    let addr = crate::kafka::broker();
    let dir = TempDir::new("promrw");
    let topic = crate::kafka::new_topic(&addr, "promrw", 2);
    let mut d = crate::kafka::Daemon::start(
        &dir.0,
        "d",
        &addr,
        &crate::kafka::unique("g"),
        &[(&topic, "prometheus-remote-write")],
        &format!("\n[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"rw-secret\"\n\n[receive]\nremote-write-topic = \"{topic}\"\n"),
    );
    let api = d.api();
    let url = format!("http://{api}/api/v1/write");
    let Some(p) = start(Some((&url, "rw-secret"))) else {
        return;
    };
    wait_for_scrapes(&p);
    let t = range_end();
    // wait (with a deadline) until Prometheus has had every sample up to the range's end
    // acknowledged by coalmine (its own account of what the remote end took)
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sent = query(
            &p,
            "max(prometheus_remote_storage_queue_highest_sent_timestamp_seconds)",
            coalmine::store::now_ms(),
        );
        if sent
            .first()
            .is_some_and(|s| number(&s["value"][1]) * 1000.0 > (t + 2_000) as f64)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not remote-write past {t}: {sent:?}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let failed = query(
        &p,
        "sum(prometheus_remote_storage_samples_failed_total)",
        coalmine::store::now_ms(),
    );
    assert!(
        failed.first().is_none_or(|s| number(&s["value"][1]) == 0.0),
        "{failed:?}"
    );
    // the consumer stores what the receiver produced: wait (with a deadline) until the
    // durable store holds the counter past the range's end
    let deadline = Instant::now() + Duration::from_secs(60);
    let counter = coalmine::store::ScanFilter {
        metric: Some("prometheus_http_requests_total".into()),
        ..coalmine::store::ScanFilter::all()
    };
    loop {
        let past = Store::open_read_only(&d.data_dir).ok().is_some_and(|s| {
            s.scan(&counter).unwrap().iter().any(|b| {
                let (_, ts, _) = coalmine::store::segment::columns(b);
                ts.values().iter().any(|v| *v > t)
            })
        });
        if past {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not get past {t}:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(d.terminate().success(), "{}", d.log_text());
    let store = Store::open_read_only(&d.data_dir).unwrap();
    // sample for sample: what Prometheus stored for the range is what coalmine stored
    let mut compared = 0;
    for selector in [COUNTER, BUCKETS] {
        for series in query(&p, &format!("{selector}[{RANGE}]"), t) {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(series["metric"].clone()).unwrap();
            let tags: Vec<(&str, &str)> = labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut ours = crate::ingest::values_of(&store, &labels["__name__"], &tags);
            let theirs: Vec<(i64, f64)> = series["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        (s[0].as_f64().unwrap() * 1000.0).round() as i64,
                        number(&s[1]),
                    )
                })
                .collect();
            let (lo, hi) = (theirs[0].0, theirs[theirs.len() - 1].0);
            ours.retain(|(ts, _)| (lo..=hi).contains(ts));
            ours.dedup();
            assert_eq!(ours, theirs, "{labels:?}");
            compared += theirs.len();
        }
    }
    assert!(compared > 100, "{compared} samples compared");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(compare(&p, Engine::new(store), t));
}

const RANGE: &str = "20s";

/// Wait (with a deadline) until 50 scrapes of the counter are stored (the 20 s range
/// compared ends 10-30 s ago).
fn wait_for_scrapes(p: &Prometheus) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let up = std::net::TcpStream::connect(&p.addr).is_ok();
        if up {
            let now = coalmine::store::now_ms();
            let n = query(p, &format!("count_over_time({COUNTER}[60s])"), now);
            if n.first().is_some_and(|s| number(&s["value"][1]) >= 50.0) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape itself"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A range end on a multiple of 20 s, so that it is the interval the SQL's
/// INTERVAL '20 seconds' extrapolates to; at least 10 s in the past, so that no scrape of
/// the range is still being appended between the two queries (a loaded machine).
fn range_end() -> i64 {
    (coalmine::store::now_ms() - 10_000).div_euclid(20_000) * 20_000
}

/// coalmine's SQL over `engine`'s store against PromQL at `t`, for the counter and the
/// histogram.
async fn compare(p: &Prometheus, engine: Engine, t: i64) {
    let range = RANGE;
    // the series of the selectors, over PromQL's range (t − 20 s, t]
    let within = format!(
        "handler = '/metrics' AND ts > to_timestamp_millis({}) AND ts <= to_timestamp_millis({t})",
        t - 20_000
    );
    let sql = |q: String| {
        let engine = engine.clone();
        async move {
            let b = engine.query(&q, Binding::all()).await.unwrap();
            let col = b[0]
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .unwrap()
                .value(0);
            col
        }
    };
    let prom = |q: String| number(&query(p, &q, t)[0]["value"][1]);
    let cases = [
        (
            format!("increase({COUNTER}[{range}])"),
            format!("SELECT increase(value, ts, INTERVAL '20 seconds') AS value FROM metrics WHERE metric = 'prometheus_http_requests_total' AND {within}"),
        ),
        (
            format!("rate({COUNTER}[{range}])"),
            format!("SELECT rate(value, ts, INTERVAL '20 seconds') AS value FROM metrics WHERE metric = 'prometheus_http_requests_total' AND {within}"),
        ),
        (
            format!("histogram_quantile(0.9, sum by (le) (increase({BUCKETS}[{range}])))"),
            format!("SELECT histogram_quantile(0.9, le, inc) AS value FROM (SELECT le, increase(value, ts, INTERVAL '20 seconds') AS inc FROM metrics WHERE metric = 'prometheus_http_request_duration_seconds_bucket' AND {within} GROUP BY le)"),
        ),
        (
            format!("histogram_quantile(0.5, sum by (le) (rate({BUCKETS}[{range}])))"),
            format!("SELECT histogram_quantile(0.5, le, r) AS value FROM (SELECT le, rate(value, ts, INTERVAL '20 seconds') AS r FROM metrics WHERE metric = 'prometheus_http_request_duration_seconds_bucket' AND {within} GROUP BY le)"),
        ),
    ];
    for (promql, q) in cases {
        let (want, got) = (prom(promql.clone()), sql(q).await);
        eprintln!("{promql}: Prometheus {want}, coalmine {got}");
        assert!(
            close(want, got),
            "{promql} at {t}: Prometheus {want}, coalmine {got}"
        );
    }
}
