//! Hostile and clumsy input, one test per finding of the hardening review (the row number
//! of its table leads each test's name). Each input once crashed, stalled or lost data;
//! each test asserts the clear refusal or bounded failure that replaced it, and that the
//! rest keeps working. Rows tested elsewhere: 7 (`store::a_missing_manifest_…`), 12
//! (`ingest::points_outside_retention_or_clock_skew_…`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use coalmine::query::{Binding, Engine, QueryError, QueryLimits};
use serde_json::{json, Value};

use crate::kafka::TempDir;
use crate::query::dataset;

fn sql_config(sql: &str) -> Value {
    json!({"name": "hostile", "applications": ["a"],
           "metrics": [{"name": "m", "query": {"type": "sql", "sql": sql}}]})
}

/// Save `config` on the daemon at `api` and start a run of it comparing the points tagged
/// `v=2` (canary) with those tagged `v=1`, scheduled by `timing` (`start`, `lifetime`, …).
/// Returns the run's id.
fn start_run(api: &str, config: &Value, timing: Value) -> String {
    use crate::http::request;
    let id = request(api, "POST", "/canaryConfig", Some(&config.to_string()), &[]).json()
        ["canaryConfigId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut spec = json!({"config": id, "scopes": {"default": {
        "control": {"tags": {"v": "1"}}, "experiment": {"tags": {"v": "2"}}}}});
    for (k, v) in timing.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let run = request(api, "POST", "/runs", Some(&spec.to_string()), &[]).json();
    run["id"].as_str().unwrap().to_string()
}

fn engine_with(dir: &Path, limits: QueryLimits) -> Engine {
    Engine::with_limits(dataset(dir), limits).unwrap()
}

fn limits(timeout: Duration, memory_bytes: usize) -> QueryLimits {
    QueryLimits {
        timeout,
        memory_bytes,
        ..QueryLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row01_thousands_of_union_branches_are_refused_before_planning() {
    let dir = TempDir::new("row01");
    let engine = Engine::new(dataset(&dir.0));
    // the error saving `sql` gives
    let refusal = |sql: String| {
        let engine = &engine;
        async move {
            coalmine::canary::validate(&sql_config(&sql), engine)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let nested = |depth: usize| {
        (0..depth).fold("SELECT value FROM metrics".to_string(), |q, _| {
            format!("SELECT value FROM ({q})")
        })
    };
    let union = vec!["SELECT value FROM metrics"; 1000].join(" UNION ALL ");
    let e = refusal(union).await;
    assert!(e.contains("more than 64 SELECT blocks"), "{e}");
    // deep nesting and wide joins too; the engine still plans an ordinary query
    let e = refusal(nested(500)).await;
    assert!(e.contains("query nests too deeply"), "{e}");
    let e = refusal(nested(10)).await;
    assert!(e.contains("nests subqueries more than 8 deep"), "{e}");
    let joins: Vec<String> = (0..40).map(|i| format!("metrics m{i}")).collect();
    let e = refusal(format!(
        "SELECT m0.value AS value FROM {}",
        joins.join(", ")
    ))
    .await;
    assert!(e.contains("a SELECT joins 40 tables"), "{e}");
    coalmine::canary::validate(
        &sql_config("SELECT ts, avg(value) AS value FROM metrics WHERE metric = 'http.latency_ms' GROUP BY ts"),
        &engine,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row03_a_cross_join_hits_the_memory_limit_not_the_machine() {
    let dir = TempDir::new("row03");
    let engine = engine_with(&dir.0, limits(Duration::from_secs(120), 16 << 20));
    let sql = "SELECT a.value AS value FROM metrics a, metrics b, metrics c, metrics d ORDER BY 1";
    // it is a valid query: saving it is fine (planning reads no data) …
    coalmine::canary::validate(&sql_config(sql), &engine)
        .await
        .unwrap();
    // … running it stops at the memory limit with a reason naming it
    let e = engine.query(sql, Binding::all()).await.unwrap_err();
    assert!(matches!(e, QueryError::Limit(_)), "{e:?}");
    assert!(e.to_string().contains("query.memory"), "{e}");
    // a result too large to hold counts too (no operator of its own holds it)
    let e = engine
        .query(
            "SELECT a.value AS value FROM metrics a, metrics b, metrics c",
            Binding::all(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("query.memory"), "{e}");
    // and the engine goes on
    let ok = engine
        .query("SELECT count(*) AS value FROM metrics", Binding::all())
        .await
        .unwrap();
    assert_eq!(ok[0].num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row06_a_runaway_query_is_cancelled_at_its_time_limit_and_others_run_meanwhile() {
    let dir = TempDir::new("row06");
    let engine = engine_with(&dir.0, limits(Duration::from_secs(5), 64 << 20));
    let runaway = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .query(
                    "SELECT count(*) AS value FROM generate_series(1, 1000000000000)",
                    Binding::all(),
                )
                .await
        })
    };
    // an ordinary query is not held up behind it
    for _ in 0..3 {
        let r = engine
            .query(
                "SELECT avg(value) AS value FROM metrics WHERE metric = 'http.latency_ms'",
                Binding::all(),
            )
            .await
            .unwrap();
        assert_eq!(r[0].num_rows(), 1);
    }
    assert!(
        !runaway.is_finished(),
        "the runaway query is still running meanwhile"
    );
    let e = runaway.await.unwrap().unwrap_err();
    assert!(matches!(e, QueryError::Limit(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("ran longer than 5s (query.timeout) and was cancelled"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row10_constants_that_would_build_huge_values_are_never_built() {
    let dir = TempDir::new("row10");
    let engine = Engine::new(dataset(&dir.0));
    for (sql, what) in [
        (
            "SELECT length(repeat('x', 1000000000)) AS value FROM metrics",
            "repeat()",
        ),
        (
            "SELECT length(lpad('x', 1000000000)) AS value FROM metrics",
            "lpad()",
        ),
        (
            "SELECT length(rpad('x', 2000000000, 'yz')) AS value FROM metrics",
            "rpad()",
        ),
        (
            "SELECT cardinality(range(1, 1000000000)) AS value FROM metrics",
            "range()",
        ),
        (
            "SELECT cardinality(array_repeat(1, 1000000000)) AS value FROM metrics",
            "array_repeat()",
        ),
    ] {
        // saving folds no huge constant (the planner keeps what it cannot fold) …
        coalmine::canary::validate(&sql_config(sql), &engine)
            .await
            .unwrap();
        // … and running it is a limit, with the function and the size
        let e = engine.query(sql, Binding::all()).await.unwrap_err();
        assert!(matches!(e, QueryError::Limit(_)), "{sql}: {e:?}");
        assert!(
            e.to_string()
                .contains(&format!("{what} would build a value of")),
            "{sql}: {e}"
        );
    }
    // small values are fine, in constants and over columns
    let r = engine
        .query(
            "SELECT length(repeat(metric, 3)) AS value FROM metrics WHERE metric = 'up'",
            Binding::all(),
        )
        .await
        .unwrap();
    assert_eq!(r[0].num_rows(), 1);
}

/// A fixture archive of two runs and an export of the first.
fn exported_run(dir: &Path) -> (std::path::PathBuf, String) {
    let archive = dir.join("archive");
    coalmine::archive::fixture::generate(
        &archive,
        &coalmine::archive::fixture::FixtureOptions {
            runs: 2,
            judgments: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let a = coalmine::archive::Archive::open(&archive).unwrap();
    let id = a.runs.keys().next().unwrap().clone();
    let file = dir.join("run.arrow");
    a.export_run(&id, &file).unwrap();
    (file, id)
}

#[test]
fn row08_archive_import_stays_inside_the_archive_and_never_overwrites_silently() {
    let dir = TempDir::new("row08");
    let (file, id) = exported_run(&dir.0);
    // an export whose run id is a path: forged by editing a run's id before exporting
    for forged in ["../../escaped", "/tmp/escaped", "a/b", "..", ""] {
        let src = dir.0.join(format!("forge-{}", forged.len()));
        let archive = dir.0.join("archive");
        let _ = std::fs::remove_dir_all(&src);
        copy_dir(&archive, &src);
        let run_json = src.join("runs").join(&id).join("run.json");
        let mut run: Value = serde_json::from_slice(&std::fs::read(&run_json).unwrap()).unwrap();
        run["id"] = json!(forged);
        std::fs::write(&run_json, run.to_string()).unwrap();
        let forged_file = dir.0.join("forged.arrow");
        coalmine::archive::Archive::open(&src)
            .unwrap()
            .export_run(forged, &forged_file)
            .unwrap();
        let target = dir.0.join("target").join("archive");
        let e = coalmine::archive::import_run(&forged_file, &target, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a run id"), "{forged:?}: {e}");
        assert!(!dir.0.join("escaped").exists() && !Path::new("/tmp/escaped").exists());
        assert!(!target.join("runs").exists() || listing(&target.join("runs")).is_empty());
    }
    // the same run twice: refused without force, replaced whole with it
    let target = dir.0.join("other");
    assert_eq!(
        coalmine::archive::import_run(&file, &target, false).unwrap(),
        id
    );
    let before = listing(&target.join("runs").join(&id));
    let e = coalmine::archive::import_run(&file, &target, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already in") && e.contains("--force"), "{e}");
    assert_eq!(
        coalmine::archive::import_run(&file, &target, true).unwrap(),
        id
    );
    assert_eq!(listing(&target.join("runs").join(&id)), before);
    assert_eq!(
        listing(&target.join("runs")),
        vec![id.clone()],
        "no staging left behind"
    );
    // a file that is not an export leaves nothing behind either
    std::fs::write(dir.0.join("junk.arrow"), b"not arrow").unwrap();
    let fresh = dir.0.join("fresh");
    assert!(coalmine::archive::import_run(&dir.0.join("junk.arrow"), &fresh, false).is_err());
    assert!(!fresh.join("runs").exists() || listing(&fresh.join("runs")).is_empty());
}

#[test]
fn row16_export_to_a_bare_file_name_succeeds() {
    let dir = TempDir::new("row16");
    let (_, id) = exported_run(&dir.0);
    let out = Command::new(env!("CARGO_BIN_EXE_coalmine"))
        .args([
            "archive",
            "export",
            "--archive",
            "archive",
            &id,
            "-o",
            "incident.arrow",
        ])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = dir.0.join("back");
    let out = Command::new(env!("CARGO_BIN_EXE_coalmine"))
        .args(["archive", "import", "incident.arrow", "--archive"])
        .arg(&back)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = coalmine::archive::Archive::open(&back).unwrap();
    assert_eq!(back.runs.keys().collect::<Vec<_>>(), vec![&id]);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A remote-judge request of `metrics` metrics with `n` values a side.
fn judge_body(metrics: usize, n: usize) -> String {
    let names: Vec<String> = (0..metrics).map(|i| format!("m{i}")).collect();
    let config = json!({"metrics": names.iter().map(|m| json!({"name": m, "analysisConfigurations": {"canary": {"direction": "either"}}})).collect::<Vec<_>>()});
    let values: Vec<f64> = (0..n).map(|i| (i % 97) as f64).collect();
    let pairs: Vec<Value> = names
        .iter()
        .map(|m| json!({"name": m, "values": {"control": values, "experiment": values}}))
        .collect();
    json!({"canaryConfig": config, "metricSetPairList": pairs,
           "scoreThresholds": {"pass": 95.0, "marginal": 75.0}})
    .to_string()
}

const TOKEN: &str = "hostile-secret";

/// Rows 2, 4, 5, 10 (YAML), 15 and 17 against a real daemon: each refusal is a clear 4xx or
/// a 503 with `Retry-After`, and the API (and `/health`) keeps answering.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one (COALMINE_TEST_KAFKA)"]
fn rows02_04_05_10_15_17_requests_beyond_the_bounds_are_refused_and_the_api_stays_up() {
    use crate::http::{get, request};
    let extra = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\nmax-body = \"1MiB\"\njudge-concurrency = 1\njudge-queue-wait = \"0s\"\njudge-memory = \"12MiB\"\njudge-max-values = 100000\n"
    );
    let (mut d, _addr, _topic) = crate::kafka::Daemon::on_new_topic("hostile-http", 1, &extra);
    let api = d.api();
    let auth = format!("Bearer {TOKEN}");
    let post = |path: &str, body: &str| {
        request(&api, "POST", path, Some(body), &[("Authorization", &auth)])
    };
    let refused = |r: &crate::http::Resp, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        let m = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(m.contains(needle), "{needle:?} not in {m:?}");
    };

    // Row 2: a body over server.max-body, a request over judge-max-values, one whose
    // judging alone would exceed judge-memory: 413s naming the setting.
    // A declared length over the limit is answered before the body is sent (curl's
    // `Expect: 100-continue`).
    let expect = |path: &str, len: usize| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&api).unwrap();
        write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n").unwrap();
        let mut head = [0u8; 4096];
        let n = s.read(&mut head).unwrap();
        String::from_utf8_lossy(&head[..n]).into_owned()
    };
    let r = expect("/judge", 84 << 20);
    assert!(
        r.starts_with("HTTP/1.1 413") && r.contains("server.max-body (1.0 MiB)"),
        "{r}"
    );
    let r = expect("/canaryConfig", 2 << 20);
    assert!(
        r.starts_with("HTTP/1.1 413") && r.contains("server.max-body"),
        "{r}"
    );
    refused(
        &post("/judge", &judge_body(2, 30_000)),
        413,
        "carries 120000 values; server.judge-max-values allows 100000",
    );
    let big = judge_body(1, 90_000);
    assert!(big.len() * 16 > 12 << 20 && big.len() < 1 << 20);
    refused(
        &post("/judge", &big),
        413,
        "more than server.judge-memory (12.0 MiB)",
    );
    // One judging at a time: while a request is judged, the next is told to retry.
    let fits = judge_body(1, 20_000);
    assert!(post("/judge", &fits).status == 200);
    let mut busy = None;
    for _ in 0..5 {
        let (api2, fits2) = (api.clone(), fits.clone());
        let slow =
            std::thread::spawn(move || request(&api2, "POST", "/judge", Some(&fits2), &[]).status);
        while !slow.is_finished() {
            let r = request(&api, "POST", "/judge", Some(&judge_body(1, 10)), &[]);
            if r.status == 503 {
                busy = Some(r);
                break;
            }
            assert_eq!(r.status, 200, "{}", r.body);
        }
        assert_eq!(slow.join().unwrap(), 200);
        if busy.is_some() {
            break;
        }
    }
    let busy = busy.expect("a request arriving while another is judged is refused with 503");
    refused(&busy, 503, "server.judge-concurrency");
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Memory is reserved from the declared length before the body is read: a request still
    // uploading 700 kB (about 10.7 MiB to judge) leaves no room in 12 MiB for a 100 kB one.
    let slow = {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&api).unwrap();
        write!(s, "POST /judge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 700000\r\n\r\n{{").unwrap();
        s
    };
    let small = judge_body(1, 10_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let held = loop {
        let r = post("/judge", &small);
        if r.status == 503 || std::time::Instant::now() > deadline {
            break r;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        std::thread::sleep(Duration::from_millis(20));
    };
    refused(&held, 503, "server.judge-memory");
    assert_eq!(held.header("retry-after"), Some("1"));
    drop(slow); // the upload ends: its reservation is returned
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while post("/judge", &small).status != 200 {
        assert!(std::time::Instant::now() < deadline, "the memory came back");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Row 17: infinite values and duplicate metric names are refused with their path.
    let mut inf: Value = serde_json::from_str(&judge_body(1, 3)).unwrap();
    inf["metricSetPairList"][0]["values"]["experiment"][1] = json!("Infinity");
    refused(
        &post("/judge", &inf.to_string()),
        400,
        "metricSetPairList[0].values.experiment[1]: Infinity is not a measurement",
    );
    let mut dup: Value = serde_json::from_str(&judge_body(2, 3)).unwrap();
    dup["canaryConfig"]["metrics"][1]["name"] = json!("m0");
    refused(
        &post("/judge", &dup.to_string()),
        400,
        "canaryConfig.metrics[1].name: duplicate metric name 'm0'",
    );
    let version = sql_config("SELECT ts, length(version()) AS value FROM metrics");
    refused(&post("/canaryConfig", &version.to_string()), 400, "version");

    // Row 10: YAML nested 100 k deep is refused before the YAML parser, quickly.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let t = std::time::Instant::now();
    let r = request(
        &api,
        "POST",
        "/canaryConfig",
        Some(&deep),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/yaml"),
        ],
    );
    refused(&r, 400, "nests deeper than 64 levels at line 1, column 64");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    // Rows 4, 5, 15: run specs beyond their bounds are refused; nothing is scheduled.
    let config = sql_config("SELECT ts, value FROM metrics");
    let id = post("/canaryConfig", &config.to_string()).json()["canaryConfigId"]
        .as_str()
        .unwrap()
        .to_string();
    let run = |extra: Value| {
        let mut spec = json!({"config": id, "scopes": {"default": {"control": {"tags": {"v": "1"}}, "experiment": {"tags": {"v": "2"}}}},
                              "lifetime": "1h", "interval": "1m"});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        post("/runs", &spec.to_string())
    };
    refused(&run(json!({"start": 9223372036854775000i64})), 400, "start");
    refused(
        &run(json!({"interval": "1ms", "lifetime": "1000years", "start": 0})),
        400,
        "is longer than 366 days",
    );
    refused(
        &run(json!({"interval": "1ms"})),
        400,
        "interval: must be at least 1s",
    );
    refused(&run(json!({"lifetime": "600000000years"})), 400, "lifetime");
    refused(
        &run(json!({"interval": "1s", "lifetime": "1year"})),
        400,
        "runs.max-judgments",
    );

    // Through all of it the API answered and nothing was scheduled.
    assert_eq!(get(&api, "/health").status, 200);
    assert_eq!(get(&api, "/runs").json(), json!([]));
    assert_eq!(get(&api, "/metrics").status, 200);
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
}

/// `/health` turns 503, naming the subsystem, when a loop stops turning (here the Kafka
/// consumer's heartbeat goes stale, as when its thread has ended), and 200 again after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_stuck_subsystem() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let dir = TempDir::new("health");
    let engine = Engine::new(dataset(&dir.0));
    let configs = Arc::new(coalmine::canary::ConfigStore::open(&dir.0).unwrap());
    let settings = coalmine::runs::RunsConfig {
        judge_threads: 1,
        lateness: Duration::from_millis(500),
        limits: Default::default(),
    };
    let runs = coalmine::runs::RunManager::open(
        engine.clone(),
        configs.clone(),
        &dir.0,
        &settings,
        vec![],
        None,
    )
    .unwrap();
    let ingest = Arc::new(coalmine::ingest::IngestStats::default());
    let state = coalmine::api::AppState {
        engine,
        configs,
        runs: runs.clone(),
        ingest: ingest.clone(),
        token: None,
        judge_requests: Default::default(),
        limits: Arc::new(coalmine::api::JudgeLimits::new(Default::default())),
        public_url: None,
        run_metrics_ttl: std::time::Duration::from_secs(3600),
        receiver: None,
    };
    let (listener, addr) = coalmine::api::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coalmine::api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let scheduler = tokio::spawn(runs.schedule(std::future::pending()));
    let addr = addr.to_string();
    let health = move || {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || crate::http::get(&addr, "/health"))
                .await
                .unwrap()
        }
    };
    let now = coalmine::store::now_ms();
    ingest.heartbeat_ms.store(now, Ordering::Relaxed);
    let r = health().await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("ok")),
        "{}",
        r.body
    );
    ingest.heartbeat_ms.store(now - 20_000, Ordering::Relaxed);
    let r = health().await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["status"], "unhealthy");
    let problems = r.json()["problems"].to_string();
    assert!(
        problems.contains("the Kafka consumer has not turned for 20 s"),
        "{problems}"
    );
    assert!(
        !problems.contains("scheduler"),
        "the scheduler turns: {problems}"
    );
    ingest
        .heartbeat_ms
        .store(coalmine::store::now_ms(), Ordering::Relaxed);
    assert_eq!(health().await.status, 200);
    scheduler.abort();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Row 9: after a restart, partitions that hold messages but receive nothing new count as
/// caught up (the store holds everything before their ends), so runs are judged.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one (COALMINE_TEST_KAFKA)"]
fn row09_idle_partitions_after_a_restart_do_not_hold_judgments_back() {
    let (mut d, addr, topic) = crate::kafka::Daemon::on_new_topic("row09", 3, "");
    let ts = crate::kafka::recent_ms();
    let messages: Vec<(Option<String>, Vec<u8>)> = (0..30)
        .map(|i| {
            let v = if i % 2 == 0 { "1" } else { "2" };
            let body = json!({"metric": "m", "ts": ts + i, "value": i, "tags": {"v": v}});
            (Some(format!("k{i}")), body.to_string().into_bytes())
        })
        .collect();
    crate::kafka::produce_all(&crate::kafka::producer(&addr), &topic, &messages);
    d.wait_for_points(30, Duration::from_secs(30));
    assert!(d.terminate().success());
    let offsets = d.durable_offsets();
    assert_eq!(
        offsets[&topic].len(),
        3,
        "every partition holds messages: {offsets:?}"
    );
    d.restart();
    let api = d.api();
    let config = sql_config("SELECT ts, value FROM metrics");
    let run_id = start_run(
        &api,
        &config,
        json!({"start": "now", "lifetime": "2s", "interval": "1s", "window": "1h"}),
    );
    let v = crate::e2e::wait_final(&api, &run_id, Duration::from_secs(30));
    assert_ne!(v["status"], "error", "{v}");
    let run = crate::http::get(&api, &format!("/runs/{run_id}")).json();
    assert!(
        !run["judgments"].as_array().unwrap().is_empty(),
        "judged: {run}"
    );
    assert!(d.log_text().contains("Ingest caught up"));
}

/// Row 13: messages of 1.1 and 10 MB are dead-lettered (cut to the dead-letter limit, their
/// size and CRC-32 in headers), not lost to `MessageSizeTooLarge`.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one (COALMINE_TEST_KAFKA)"]
fn row13_oversized_messages_are_dead_lettered_cut_to_size_with_their_hash() {
    use rdkafka::config::ClientConfig;
    let addr = crate::kafka::broker();
    let dlq = crate::kafka::new_topic(&addr, "row13-dlq", 1);
    let extra = format!("dead-letter-topic = \"{dlq}\"\n");
    let (mut d, addr, topic) = crate::kafka::Daemon::on_new_topic("row13", 1, &extra);
    let big = |n: usize| {
        let pad = "x".repeat(n - 60);
        format!(
            r#"{{"metric": "m", "ts": {}, "value": 1, "pad": "{pad}"}}"#,
            crate::kafka::recent_ms()
        )
        .into_bytes()
    };
    let (a, b) = (big(1_150_000), big(10 << 20));
    let good = json!({"metric": "m", "ts": crate::kafka::recent_ms(), "value": 7}).to_string();
    let p: rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("message.max.bytes", "20000000")
            .create()
            .unwrap();
    crate::kafka::produce_all(
        &p,
        &topic,
        &[
            (None, a.clone()),
            (None, b.clone()),
            (None, good.into_bytes()),
        ],
    );
    d.wait_for_points(1, Duration::from_secs(60));
    let letters = crate::kafka::consume(&addr, &dlq, 2);
    assert_eq!(
        letters.len(),
        2,
        "both oversized messages are dead-lettered"
    );
    for (l, original) in letters.iter().zip([&a, &b]) {
        let h = &l.headers;
        assert_eq!(h["coalmine-error-kind"], "undecodable");
        assert!(
            h["coalmine-error"].contains("exceeds max-message-bytes"),
            "{h:?}"
        );
        assert_eq!(h["coalmine-original-bytes"], original.len().to_string());
        assert_eq!(
            h["coalmine-original-crc32"],
            format!("{:08x}", crc32fast::hash(original))
        );
        assert_eq!(h["coalmine-truncated"], "true");
        assert_eq!(l.payload.len(), 900 << 10);
        assert_eq!(l.payload[..], original[..900 << 10]);
    }
    let metrics = crate::http::get(&d.api(), "/metrics").body;
    assert!(
        metrics.contains("coalmine_dead_letter_failures_total 0"),
        "{metrics}"
    );
}

/// Row 11: a line-protocol line with 100 k distinct tag keys is dead-lettered with its
/// reason (no column per key); points within the limits are stored.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one (COALMINE_TEST_KAFKA)"]
fn row11_a_point_with_100k_tag_keys_is_dead_lettered_not_made_into_columns() {
    let addr = crate::kafka::broker();
    let dir = TempDir::new("row11");
    let topic = crate::kafka::new_topic(&addr, "row11", 1);
    let dlq = crate::kafka::new_topic(&addr, "row11-dlq", 1);
    let extra = format!("dead-letter-topic = \"{dlq}\"\n");
    let mut d = crate::kafka::Daemon::start(
        &dir.0,
        "d",
        &addr,
        &crate::kafka::unique("g"),
        &[(&topic, "influx")],
        &extra,
    );
    let ns = crate::kafka::recent_ms() as i128 * 1_000_000;
    let tags: String = (0..100_000).map(|i| format!(",k{i}=v")).collect();
    let wide = format!("cpu{tags} value=1 {ns}");
    let long_value = format!("cpu,host={} value=1 {ns}", "h".repeat(2000));
    let fine = format!("cpu,host=a value=7 {ns}");
    crate::kafka::produce_all(
        &crate::kafka::producer(&addr),
        &topic,
        &[
            (None, wide.into_bytes()),
            (None, long_value.into_bytes()),
            (None, fine.into_bytes()),
        ],
    );
    assert_eq!(d.wait_for_points(1, Duration::from_secs(60)), (1, 7.0));
    let letters = crate::kafka::consume(&addr, &dlq, 2);
    assert_eq!(letters.len(), 2);
    let reason = |i: usize| letters[i].headers["coalmine-error"].clone();
    assert!(reason(0).contains("line 1: metric 'cpu.value': 100000 tags; a point may carry at most 64 (store.max-tags-per-point)"), "{}", reason(0));
    assert!(
        reason(1).contains("tag 'host': value \"hhhh"),
        "{}",
        reason(1)
    );
    assert!(
        reason(1).contains("is 2000 bytes, longer than store.max-tag-value-bytes (1024)"),
        "{}",
        reason(1)
    );
    // The metrics table has the one tag key that was accepted.
    let api = d.api();
    let config = sql_config("SELECT ts, value FROM metrics");
    let r = crate::http::request(
        &api,
        "POST",
        "/canaryConfig",
        Some(&config.to_string()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let store = coalmine::store::Store::open_read_only(&d.data_dir).unwrap();
    let keys = coalmine::query::provider::stored_tag_keys(&store);
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        vec!["host".to_string()]
    );
}

/// Flip one bit of the f64 `value` (its first occurrence) in `file`.
fn flip_value(file: &Path, value: f64) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == value.to_le_bytes())
        .expect("the value is in the file");
    bytes[at] ^= 1;
    std::fs::write(file, bytes).unwrap();
}

/// Row 14: one f64 flipped in a segment or in an archive file is a clear error naming the
/// file, never a silently different value.
#[test]
fn row14_a_flipped_value_in_a_segment_or_an_archive_file_is_caught() {
    let dir = TempDir::new("row14");
    drop(dataset(&dir.0));
    let segments: Vec<_> = std::fs::read_dir(dir.0.join("data/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(segments.len(), 1);
    // instance 1's first latency: 100 + 0 + 1
    flip_value(&segments[0], 101.0);
    let mut cfg = coalmine::store::StoreConfig::new(dir.0.join("data"));
    cfg.retention = Duration::from_secs(100 * 365 * 86400);
    let e = coalmine::store::Store::open(cfg)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains(&segments[0].display().to_string()), "{e}");
    assert!(e.contains("checksum mismatch"), "{e}");

    let (file, _) = exported_run(&dir.0);
    let archive = coalmine::archive::Archive::open(&dir.0.join("archive")).unwrap();
    let first = &archive.judgments[0];
    let (id, value) = (first.run_id.clone(), first.pairs[0].pair.control[0]);
    drop(archive);
    let judgment = std::fs::read_dir(dir.0.join("archive/runs").join(&id))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "arrow"))
        .unwrap();
    flip_value(&judgment, value);
    let e = coalmine::archive::Archive::open(&dir.0.join("archive"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains(&judgment.display().to_string()) && e.contains("checksum mismatch"),
        "{e}"
    );
    flip_value(&file, value);
    let out = Command::new(env!("CARGO_BIN_EXE_coalmine"))
        .args(["archive", "import"])
        .arg(&file)
        .arg("--archive")
        .arg(dir.0.join("other"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(err.contains(&file.display().to_string()), "{err}");
}

/// A broker of this test's own (the shared one must not restart under other tests): the
/// Tansu binary `scripts/test.sh` installs, on a port of its own, memory storage.
struct OwnBroker {
    child: std::process::Child,
    port: u16,
}

impl OwnBroker {
    fn start(port: u16) -> OwnBroker {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/tansu");
        assert!(
            bin.exists(),
            "{} is missing: scripts/test.sh installs it",
            bin.display()
        );
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not open port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnBroker { child, port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The chaos test: the broker is killed and restarted (losing its log: Tansu's memory
/// storage) while the daemon ingests and a run is judging. The daemon keeps serving, reads
/// the new log from its start (not skipping it as replays of what it stored), every
/// acknowledged point is stored exactly once, and the run finishes.
#[test]
#[ignore = "needs the Tansu binary: scripts/test.sh installs it"]
fn chaos_broker_restarted_mid_ingest_and_mid_run() {
    use crate::http::get;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut broker = OwnBroker::start(port);
    let addr = broker.addr();
    let topic = crate::kafka::unique("chaos");
    crate::kafka::create_topic(&addr, &topic, 2);
    let dir = TempDir::new("chaos");
    let mut d = crate::kafka::Daemon::start(
        &dir.0,
        "d",
        &addr,
        &crate::kafka::unique("g"),
        &[(&topic, "json")],
        "",
    );
    let mut api = d.api();
    // windows without points (the points span one second) pass instead of failing the run
    // early: it must still be running when the broker goes down
    let mut config = sql_config("SELECT ts, value FROM metrics");
    config["metrics"][0]["analysisConfigurations"] = json!({"canary": {"nanStrategy": "replace"}});
    config["metrics"][0]["groups"] = json!(["g"]);
    config["classifier"] = json!({"groupWeights": {"g": 100}});
    let run_id = start_run(
        &api,
        &config,
        json!({"start": "now", "lifetime": "40s", "interval": "2s"}),
    );
    let points = |from: i64, n: i64| -> Vec<(Option<String>, Vec<u8>)> {
        let now = coalmine::store::now_ms();
        (from..from + n)
            .map(|i| {
                let v = if i % 2 == 0 { "1" } else { "2" };
                // both arms get the same values (i / 2), so the run is not failed (and
                // stopped) early while the broker is still up
                let body = json!({"metric": "m", "ts": now - 1000 + i % 1000, "value": i / 2, "tags": {"v": v}});
                (Some(format!("k{i}")), body.to_string().into_bytes())
            })
            .collect()
    };
    let sum = |from: i64, n: i64| (from..from + n).map(|i| i / 2).sum::<i64>() as f64;
    crate::kafka::produce_all(&crate::kafka::producer(&addr), &topic, &points(0, 300));
    assert_eq!(
        d.wait_for_points(300, Duration::from_secs(60)),
        (300, sum(0, 300))
    );

    broker.kill();
    // While the broker is down the daemon serves, and the run waits for ingest.
    assert_eq!(get(&api, "/health").status, 200);
    let v = get(&api, &format!("/runs/{run_id}/verdict")).json();
    assert_eq!(
        v["status"],
        "running",
        "{v} {}",
        get(&api, &format!("/runs/{run_id}")).json()
    );
    let mut broker = OwnBroker::start(port);
    crate::kafka::create_topic(&addr, &topic, 2);
    crate::kafka::produce_all(&crate::kafka::producer(&addr), &topic, &points(300, 100));
    // librdkafka 2.12.1 can crash the daemon here (SIGSEGV: strcmp on a NULL topic name in
    // rd_kafka_metadata_cache_find, reached from rd_kafka_metadata_update_op when a fetch
    // response's KIP-951 leader-change tags name a topic without an id, as Tansu's recreated
    // in-memory topics are; real Kafka always sends topic ids). A crashed daemon is
    // restarted, as its supervisor would: what it stored must all be there, nothing twice.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut crashes = 0;
    loop {
        let got = d.durable();
        if got.0 >= 400 {
            assert_eq!(got, (400, sum(0, 400)));
            break;
        }
        if let Some(status) = d.exited() {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(libc::SIGSEGV),
                "the daemon exited ({status}):\n{}",
                d.log_text()
            );
            crashes += 1;
            eprintln!(
                "chaos: the daemon crashed ({status}) after the broker restart; restarting it"
            );
            assert!(crashes <= 3, "crashed {crashes} times:\n{}", d.log_text());
            d.restart();
            api = d.api();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got:?} of 400 points:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d
        .log_text()
        .contains("log starts again below what the store holds"));

    let v = crate::e2e::wait_final(&api, &run_id, Duration::from_secs(120));
    assert!(matches!(v["status"].as_str(), Some("pass" | "fail")), "{v}");
    let run = get(&api, &format!("/runs/{run_id}")).json();
    assert!(!run["judgments"].as_array().unwrap().is_empty(), "{run}");
    // Nothing stored twice, nothing more than was produced.
    assert!(d.terminate().success());
    assert_eq!(d.durable(), (400, sum(0, 400)));
    broker.kill();
}

/// Rows 4 and 5 after a restart: a run file with a schedule beyond the bounds (written by an
/// older version, or by hand) and a damaged run file never keep the daemon down: the first
/// run is ended with the reason, the second file is moved aside; HTTP comes up.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one (COALMINE_TEST_KAFKA)"]
fn rows04_05_run_files_beyond_the_bounds_or_damaged_do_not_stop_a_restart() {
    use crate::http::get;
    let (mut d, _addr, _topic) = crate::kafka::Daemon::on_new_topic("row05", 1, "");
    let api = d.api();
    let config = sql_config("SELECT ts, value FROM metrics");
    let run_id = start_run(
        &api,
        &config,
        json!({"start": "now", "lifetime": "1h", "interval": "1m"}),
    );
    assert!(d.terminate().success());
    let runs = d.data_dir.join("runs");
    let file = runs.join(format!("{run_id}.json"));
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    v["spec"]["interval_ms"] = json!(1);
    v["spec"]["lifetime_ms"] = json!(31_557_600_000_000_000i64);
    v["spec"]["start_ms"] = json!(0);
    std::fs::write(&file, v.to_string()).unwrap();
    std::fs::write(runs.join("damaged.json"), "{\"id\": \"x\", \"spec\": ").unwrap();
    d.restart();
    let api = d.api();
    assert_eq!(get(&api, "/health").status, 200);
    let r = get(&api, &format!("/runs/{run_id}")).json();
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("out of bounds: interval: must be at least 1s"),
        "{r}"
    );
    assert!(runs.join("unreadable/damaged.json").exists());
    assert!(d
        .log_text()
        .contains("A run file cannot be read; it is moved aside"));
    assert_eq!(get(&api, "/runs").json().as_array().unwrap().len(), 1);
}
