//! Metric SQL, pinned with golden files: `tests/data/sql/*.slt` hold queries over a fixed
//! dataset, a binding (scope tags and window), and the expected rows or error. Regenerate
//! after an intended change with `COALMINE_BLESS=1 cargo test --test it query::golden`.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use coalmine::query::{check_statement, Binding, Engine};
use coalmine::store::segment::PointColumns;
use coalmine::store::{message_offsets, Store, StoreConfig};

use crate::kafka::TempDir;

pub const T0: i64 = 1_795_302_000_000; // 2026-11-21T23:00:00Z

/// Latency of 6 instances (v1: i-1..i-3, v2: i-4..i-6), one point per 10 s for 10 minutes,
/// v2 about 10% slower; error counts; one untagged metric.
pub fn dataset(dir: &Path) -> Store {
    let mut cfg = StoreConfig::new(dir.join("data"));
    cfg.retention = std::time::Duration::from_secs(100 * 365 * 86400);
    cfg.hot_window = cfg.retention;
    let store = Store::open(cfg).unwrap();
    let mut pts = PointColumns::default();
    {
        let mut reg = store.registry_mut();
        for inst in 1..=6 {
            let version = if inst <= 3 { "v1" } else { "v2" };
            let instance = format!("i-{inst}");
            let tags = [
                ("app", "checkout"),
                ("instance", instance.as_str()),
                ("version", version),
            ];
            let lat = reg.resolve("http.latency_ms", &tags);
            let err = reg.resolve("http.errors", &tags);
            for k in 0..60 {
                let ts = T0 + k * 10_000;
                let base = 100.0 + (k % 7) as f64 + inst as f64;
                pts.push(lat, ts, if inst <= 3 { base } else { base * 1.1 });
                pts.push(err, ts, ((k + inst) % 5 == 0) as u8 as f64);
            }
        }
        let up = reg.resolve("up", &[]);
        pts.push(up, T0, 1.0);
        // Counters and histograms (docs/metrics.md), sampled every 15 s from T0 + 5 s (k = 0..39),
        // in scopes of their own (`version` c1 and c2).
        // `req_total` on c-1: 10 per sample, restarting at k = 22 (210 at k = 21, then 5, 15, …).
        let req = reg.resolve(
            "req_total",
            &[("app", "checkout"), ("instance", "c-1"), ("version", "c1")],
        );
        // pushed newest first: the functions sort by time themselves
        for k in (0..40).rev() {
            let v = if k < 22 { 10 * k } else { 10 * (k - 22) + 5 };
            pts.push(req, T0 + 5_000 + k * 15_000, v as f64);
        }
        // `lat_bucket{le}` on every instance: per sample, c1 (c-1..c-3) observes 6 requests ≤ 0.1 s, 3 in
        // (0.1, 0.25], 1 in (0.25, 0.5]; c2 4, 4, 1 and 1 above 0.5 s (cumulative counters).
        // `broken_bucket` has no +Inf bucket.
        for inst in 1..=6 {
            let version = if inst <= 3 { "c1" } else { "c2" };
            let instance = format!("c-{inst}");
            let steps: [(&str, i64); 4] = if inst <= 3 {
                [("0.1", 6), ("0.25", 9), ("0.5", 10), ("+Inf", 10)]
            } else {
                [("0.1", 4), ("0.25", 8), ("0.5", 9), ("+Inf", 10)]
            };
            for (le, step) in steps {
                let tags = [
                    ("app", "checkout"),
                    ("instance", instance.as_str()),
                    ("le", le),
                    ("version", version),
                ];
                let bucket = reg.resolve("lat_bucket", &tags);
                let broken = (le != "+Inf").then(|| reg.resolve("broken_bucket", &tags));
                for k in 0..40 {
                    let ts = T0 + 5_000 + k * 15_000;
                    pts.push(bucket, ts, (step * k) as f64);
                    if let Some(b) = broken {
                        pts.push(b, ts, (step * k) as f64);
                    }
                }
            }
        }
    }
    store.append(&pts, &message_offsets("t", 0, 0));
    store.flush().unwrap();
    store
}

fn render(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter<'_>> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
    }
    rows
}

struct Case {
    name: String,
    binding: Binding,
    sql: String,
    expected: Vec<String>,
}

fn parse_binding(line: &str) -> Binding {
    // binding: version=v1 [0m, 5m)
    let mut tags = BTreeMap::new();
    let (tag_part, window) = line.split_once('[').expect("binding has a window");
    for t in tag_part.split_whitespace() {
        let (k, v) = t.split_once('=').unwrap();
        tags.insert(k.to_string(), v.to_string());
    }
    let (a, b) = window.trim_end_matches(')').split_once(',').unwrap();
    let minutes = |s: &str| match s.trim().strip_suffix('s') {
        Some(secs) => secs.parse::<i64>().unwrap() * 1_000,
        None => s.trim().trim_end_matches('m').parse::<i64>().unwrap() * 60_000,
    };
    Binding::new(tags, T0 + minutes(a), T0 + minutes(b))
}

fn parse_cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for block in text.split("\n=== ").filter(|b| !b.trim().is_empty()) {
        let block = block.trim_start_matches("=== ");
        let mut lines = block.lines();
        let name = lines.next().unwrap().trim().to_string();
        let binding = parse_binding(lines.next().unwrap().trim_start_matches("binding:").trim());
        let rest: Vec<&str> = lines.collect();
        let sep = rest
            .iter()
            .position(|l| *l == "----")
            .expect("---- separator");
        cases.push(Case {
            name,
            binding,
            sql: rest[..sep].join("\n").trim().to_string(),
            expected: rest[sep + 1..]
                .iter()
                .map(|l| l.to_string())
                .filter(|l| !l.is_empty())
                .collect(),
        });
    }
    cases
}

fn write_cases(cases: &[Case], tag_text: &[String]) -> String {
    let mut out = String::new();
    for (c, binding) in cases.iter().zip(tag_text) {
        out.push_str(&format!(
            "=== {}\nbinding: {binding}\n{}\n----\n",
            c.name, c.sql
        ));
        for e in &c.expected {
            out.push_str(e);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn golden() {
    let dir = TempDir::new("sql");
    let store = dataset(&dir.0);
    let engine = Engine::new(store);
    let bless = std::env::var("COALMINE_BLESS").is_ok();
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sql");
    let mut files: Vec<_> = std::fs::read_dir(&sql_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut checked = 0;
    for file in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        let mut cases = parse_cases(&text);
        let bindings: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("binding: ").map(str::to_string))
            .collect();
        let mut failures = Vec::new();
        for c in cases.iter_mut() {
            let got = match engine.query(&c.sql, c.binding.clone()).await {
                Ok(b) => {
                    let mut rows = render(&b);
                    rows.sort();
                    rows
                }
                Err(e) => vec![format!("error: {e}")],
            };
            if got != c.expected {
                failures.push(format!(
                    "{}: {}\n  expected: {:?}\n  got:      {:?}",
                    file.display(),
                    c.name,
                    c.expected,
                    got
                ));
                c.expected = got;
            }
            checked += 1;
        }
        if bless && !failures.is_empty() {
            std::fs::write(file, write_cases(&cases, &bindings)).unwrap();
        } else {
            assert!(failures.is_empty(), "{}", failures.join("\n"));
        }
    }
    assert!(checked >= 10, "golden cases run: {checked}");
}

#[test]
fn only_one_read_only_select_is_accepted() {
    for (sql, want) in [
        ("INSERT INTO metrics VALUES (1)", "found INSERT at 1:1"),
        ("  CREATE TABLE x AS SELECT 1", "found CREATE TABLE at 1:3"),
        ("DROP TABLE metrics", "found DROP TABLE"),
        ("COPY metrics TO '/tmp/x.csv'", "found COPY"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "found CREATE EXTERNAL TABLE",
        ),
        ("SELECT 1 AS value; SELECT 2 AS value", "found 2 statements"),
        ("SET datafusion.execution.batch_size = 1", "found SET"),
        ("SELEC value FROM metrics", "Expected"),
    ] {
        let e = check_statement(sql).unwrap_err().to_string();
        assert!(e.contains(want), "{sql}: {e}");
    }
    check_statement("SELECT avg(value) AS value FROM metrics WHERE metric = 'x'").unwrap();
    check_statement("WITH m AS (SELECT value FROM metrics) SELECT max(value) AS value FROM m")
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn files_and_urls_are_not_tables() {
    let dir = TempDir::new("sqlsec");
    let engine = Engine::new(dataset(&dir.0));
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT value FROM 'file:///etc/passwd'",
        "SELECT count(*) AS value FROM information_schema.tables",
        "SELECT value FROM other_table",
    ] {
        let e = engine
            .query(sql, Binding::all())
            .await
            .err()
            .unwrap_or_else(|| panic!("{sql} must fail"));
        assert!(
            e.to_string().contains("not found") || e.to_string().contains("table"),
            "{sql}: {e}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn pushdown_reads_only_the_bound_series() {
    let dir = TempDir::new("sqlpush");
    let engine = Engine::new(dataset(&dir.0));
    let b = Binding::new(
        [("version".to_string(), "v2".to_string())].into(),
        T0,
        T0 + 60_000,
    );
    let q = engine
        .plan(
            "SELECT metric, count(*) AS value FROM metrics GROUP BY metric",
            b,
        )
        .await
        .unwrap();
    let series = q.series().await.unwrap();
    // only v2's two metrics, 6 points each per instance in one minute
    assert_eq!(series.len(), 2);
    assert!(series.iter().all(|s| s.values == vec![18.0]));
    // the same prepared query, rebound to another scope and window
    q.rebind(Binding::new(
        [("instance".to_string(), "i-1".to_string())].into(),
        T0,
        T0 + 30_000,
    ));
    let series = q.series().await.unwrap();
    assert!(series.iter().all(|s| s.values == vec![3.0]), "{series:?}");
    let col = q.collect().await.unwrap();
    assert_eq!(col[0].column(0).len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_prepared_query_sees_new_data_and_a_moving_clock() {
    let dir = TempDir::new("sqlclock");
    let store = dataset(&dir.0);
    let engine = Engine::new(store.clone());
    // optimised once: every run still scans the store as it is at that moment
    let q = engine
        .plan(
            "SELECT count(*) AS value FROM metrics WHERE metric = 'late.metric'",
            Binding::all(),
        )
        .await
        .unwrap();
    assert_eq!(q.series().await.unwrap()[0].values, vec![0.0]);
    let mut pts = PointColumns::default();
    {
        let mut reg = store.registry_mut();
        let id = reg.resolve("late.metric", &[("app", "late")]);
        for k in 0..5 {
            pts.push(id, T0 + k * 1000, k as f64);
        }
    }
    store.append(&pts, &message_offsets("late", 0, 0));
    assert_eq!(q.series().await.unwrap()[0].values, vec![5.0]);
    // `now()` is folded to a constant by the optimiser: such a plan is optimised at each run
    let clock = engine
        .plan_any("SELECT CAST(now() AS BIGINT) AS t", Binding::all())
        .await
        .unwrap();
    let read = |b: &[RecordBatch]| {
        b[0].column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0)
    };
    let first = read(&clock.collect().await.unwrap());
    // now() in nanoseconds: wait until the clock has moved on
    while coalmine::store::now_ms() * 1_000_000 <= first {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let second = read(&clock.collect().await.unwrap());
    assert!(second > first, "now() moved: {first} then {second}");
}

/// A config is written before its data: on an empty store a query naming a tag no point has
/// yet plans (the tag is a nullable column, NULL until points carry it) and, once such
/// points arrive, the same prepared query sees them. Misspelt fixed columns are still
/// refused, with a suggestion.
#[tokio::test(flavor = "current_thread")]
async fn configs_plan_before_their_data_exists() {
    let dir = TempDir::new("before-data");
    let mut cfg = StoreConfig::new(dir.0.join("data"));
    cfg.retention = std::time::Duration::from_secs(100 * 365 * 86400);
    let store = Store::open(cfg).unwrap();
    let engine = Engine::new(store.clone());
    let sql = "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, avg(CASE WHEN status >= '500' THEN 1.0 ELSE 0.0 END) AS value, region FROM metrics m WHERE metric = 'nginx.requests' AND m.app = 'web' GROUP BY 1, 3";
    let q = engine
        .plan(sql, Binding::new(BTreeMap::new(), T0, T0 + 600_000))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut assumed = q.assumed_tags().to_vec();
    assumed.sort();
    assert_eq!(assumed, ["app", "region", "status"]);
    assert!(q.series().await.unwrap().is_empty());
    let mut missing = q.missing_tags(&store);
    missing.sort();
    assert_eq!(missing, assumed);

    let mut pts = PointColumns::default();
    {
        let mut reg = store.registry_mut();
        for (status, region) in [("200", "eu"), ("503", "eu"), ("200", "us")] {
            let id = reg.resolve(
                "nginx.requests",
                &[("app", "web"), ("region", region), ("status", status)],
            );
            pts.push(id, T0 + 1000, 1.0);
        }
    }
    store.append(&pts, &message_offsets("t", 0, 0));
    assert!(q.missing_tags(&store).is_empty());
    let series = q.series().await.unwrap();
    let by_region: BTreeMap<String, Vec<f64>> = series
        .into_iter()
        .map(|s| (s.tags["region"].clone(), s.values))
        .collect();
    assert_eq!(by_region["eu"], [0.5]);
    assert_eq!(by_region["us"], [0.0]);

    for (bad, want) in [
        ("SELECT valeu AS value FROM metrics", "no column named `valeu`: did you mean `value`?"),
        ("SELECT value FROM metrics WHERE timestamp > now()", "no column named `timestamp`: did you mean `ts`?"),
        ("SELECT value FROM metrics WHERE metirc = 'a'", "no column named `metirc`: did you mean `metric`?"),
        ("WITH a AS (SELECT value FROM metrics) SELECT value, status FROM a", "No field named status"),
        ("SELECT latency AS value FROM metrics", "column `value` must be numeric, it is Dictionary(Int32, Utf8) (note: `latency` is not a column of `metrics`: it was taken as a tag key; its values are text, NULL until points carry the tag. A metric named latency is selected with WHERE metric = 'latency', its samples are in `value`)"),
    ] {
        let e = engine
            .plan(bad, Binding::all())
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad} planned"))
            .to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
}
