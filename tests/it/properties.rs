//! Property tests of every input path a stranger can reach: the three Kafka decoders, canary
//! config documents, run requests and metric SQL. Inputs are random bytes and random
//! sequences of the tokens each grammar is made of (closer to the grammar, deeper into the
//! parser). Each property: no panic, no hang, and an error that says what was wrong.
//!
//! The runs are seeded (the same cases every time, so a CI failure reproduces) and bounded
//! (`CASES`, fewer for SQL, which plans each query).

use std::time::Duration;

use coalmine::ingest::decode::{Decoder, Format};
use coalmine::runs::spec;
use coalmine::store::segment::PointColumns;
use coalmine::store::SeriesRegistry;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

const CASES: u32 = 512;

fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Random sequences of `tokens`, joined by `sep`.
fn sentences(
    tokens: &'static [&'static str],
    sep: &'static str,
    max: usize,
) -> BoxedStrategy<String> {
    proptest::collection::vec(proptest::sample::select(tokens), 0..max)
        .prop_map(move |t| t.join(sep))
        .boxed()
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"metric\"",
    "\"name\"",
    "\"ts\"",
    "\"timestamp\"",
    "\"value\"",
    "\"tags\"",
    "\"labels\"",
    "\"__name__\"",
    "\"m\"",
    "\"\"",
    "1",
    "-1",
    "0.5",
    "1e308",
    "1e400",
    "-0",
    "18446744073709551616",
    "1700000000",
    "1700000000000",
    "1700000000000000000",
    "\"1700000000\"",
    "\"NaN\"",
    "\"Infinity\"",
    "null",
    "true",
    "{\"a\": \"b\"}",
    "{\"a\": 1}",
    "\"2026-01-01T00:00:00Z\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\\"\"",
    "\\",
    "\u{feff}",
    "\"é\"",
];

const INFLUX_TOKENS: &[&str] = &[
    "cpu",
    "mem",
    ",",
    "=",
    " ",
    "host",
    "a",
    "value",
    "f",
    "1",
    "-1",
    "1.5",
    "1i",
    "-9i",
    "1u",
    "\"s\"",
    "t",
    "true",
    "\\",
    "\\ ",
    "\\,",
    "\n",
    "\r\n",
    "#",
    "1700000000000000000",
    "-9223372036854775808",
    "99999999999999999999",
    "1e400",
    "NaN",
    "inf",
    "é",
];

/// The decoders: any payload is decoded or refused with a reason; a refused message leaves
/// nothing behind; what is accepted is finite.
#[test]
fn decoders_never_panic_and_refusals_leave_nothing() {
    let bytes = proptest::collection::vec(any::<u8>(), 0..600).boxed();
    let json = sentences(JSON_TOKENS, "", 40)
        .prop_map(String::into_bytes)
        .boxed();
    let influx = sentences(INFLUX_TOKENS, "", 40)
        .prop_map(String::into_bytes)
        .boxed();
    let payloads = prop_oneof![bytes, json, influx];
    let formats =
        proptest::sample::select(vec![Format::Json, Format::PrometheusJson, Format::Influx]);
    runner(CASES)
        .run(&(formats, payloads), |(format, payload)| {
            let mut reg = SeriesRegistry::new();
            let mut out = PointColumns::default();
            // a point already there must survive a refusal
            let kept = reg.resolve("kept", &[]);
            out.push(kept, 1, 1.0);
            let mut d = Decoder::new(format, 1 << 20);
            match d.decode(&payload, Some(1_700_000_000_000), &mut reg, &mut out) {
                Ok(n) => {
                    prop_assert_eq!(out.len(), n + 1);
                    prop_assert!(out.value[1..].iter().all(|v| v.is_finite()));
                }
                Err(e) => {
                    prop_assert!(!e.reason.is_empty());
                    prop_assert_eq!(out.len(), 1, "a refused message appended points");
                }
            }
            Ok(())
        })
        .unwrap();
}

const YAML_TOKENS: &[&str] = &[
    "name: x",
    "applications: [a]",
    "metrics:",
    "- name: m",
    "  query:",
    "    type: sql",
    "    sql: SELECT value FROM metrics",
    "  analysisConfigurations: {canary: {direction: up}}",
    "judge: {name: coalmine-v1}",
    "classifier: {groupWeights: {g: 100}}",
    "[",
    "]",
    "{",
    "}",
    "- ",
    "  ",
    ": ",
    "&a",
    "*a",
    "<<: *a",
    "!!binary",
    "!tag",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "---",
    "...",
    "? ",
    "%YAML 1.2",
    "\t",
    "~",
    "1e400",
];

/// Canary config documents (YAML or JSON): parsed and read into a config, or refused with a
/// message; never a panic, and nesting beyond the bound is refused before the parser.
#[test]
fn config_documents_never_panic() {
    let yaml = sentences(YAML_TOKENS, "\n", 30).boxed();
    let inline = sentences(YAML_TOKENS, "", 30).boxed();
    let json = sentences(JSON_TOKENS, "", 40).boxed();
    let deep = (1usize..2000)
        .prop_map(|n| format!("a: {}{}", "[".repeat(n), "]".repeat(n)))
        .boxed();
    runner(CASES)
        .run(&prop_oneof![yaml, inline, json, deep], |text| {
            for ct in [None, Some("application/yaml"), Some("application/json")] {
                match coalmine::canary::parse_document(text.as_bytes(), ct) {
                    Ok(v) => {
                        let root = coalmine::judge::json::JsonPath::root();
                        if let Err(e) = coalmine::judge::CanaryConfig::from_value(&v, &root) {
                            prop_assert!(!e.message.is_empty());
                        }
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
            Ok(())
        })
        .unwrap();
}

fn durations() -> BoxedStrategy<Value> {
    let units = proptest::sample::select(vec![
        "ms", "s", "m", "h", "d", "days", "years", "us", "ns", "",
    ]);
    prop_oneof![
        (any::<u64>(), units.clone()).prop_map(|(n, u)| json!(format!("{n}{u}"))),
        (0u64..100_000, units).prop_map(|(n, u)| json!(format!("{n}{u}"))),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!("growing")),
        Just(json!(null)),
        Just(json!("-5m")),
    ]
    .boxed()
}

/// Run requests: parsed into a schedule whose arithmetic stays in bounds, or refused with
/// a message naming the field.
#[test]
fn run_requests_never_panic_and_name_the_field() {
    let start = prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!("now")),
        Just(json!("2026-11-22T10:00:00Z")),
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!("soon")),
        any::<f64>().prop_map(|f| json!(f)),
    ];
    let fields = (
        proptest::option::of(start),
        proptest::option::of(durations()),
        proptest::option::of(durations()),
        proptest::option::of(durations()),
        proptest::option::of(durations()),
    );
    let now = coalmine::store::now_ms();
    runner(CASES)
        .run(&fields, |(start, lifetime, interval, window, warmup)| {
            let mut body = json!({"config": "c", "scopes": {"default": {"control": {"tags": {"v": "1"}}, "experiment": {"tags": {"v": "2"}}}}});
            for (k, v) in [("start", start), ("lifetime", lifetime), ("interval", interval), ("window", window), ("warmup", warmup)] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let limits = spec::Limits::default();
            match spec::parse_with(&body, now, limits) {
                Ok((s, _)) => {
                    prop_assert!(s.judgments() <= limits.max_judgments);
                    prop_assert!(s.interval_ms >= spec::MIN_INTERVAL_MS);
                    prop_assert!((s.start_ms - now).abs() <= spec::MAX_START_OFFSET_MS + 86_400_000);
                    for i in [1, s.judgments() / 2, s.judgments(), s.judgments() + 1] {
                        let t = s.tick_ms(i);
                        let (a, b) = s.window_at(t);
                        prop_assert!(a <= b);
                        prop_assert!(s.first_tick_from(t) <= s.judgments());
                    }
                }
                Err(e) => {
                    let field = e.split(':').next().unwrap_or_default();
                    prop_assert!(
                        ["start", "lifetime", "interval", "window", "warmup", "config", "scopes"].contains(&field),
                        "the error names no field: {}", e
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

const SQL_TOKENS: &[&str] = &[
    "SELECT",
    "ts",
    ",",
    "value",
    "FROM",
    "metrics",
    "m",
    "WHERE",
    "=",
    "1",
    "'x'",
    "(",
    ")",
    "UNION ALL",
    "JOIN",
    "ON",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "count(*)",
    "avg(value)",
    "*",
    "repeat('x', 1000000000)",
    "generate_series(1, 1000000000000)",
    "range(1, 9223372036854775807)",
    "version()",
    "CASE WHEN",
    "THEN",
    "ELSE",
    "END",
    "9223372036854775807",
    "/",
    "0",
    "-",
    "INTERVAL '1 day'",
    "date_bin(INTERVAL '1 second', ts)",
    "AS",
    "WITH t AS",
    "DROP TABLE metrics",
    "COPY",
    "SET",
    ";",
    "--",
    "/*",
    "'",
    "\"",
    "read_csv('/etc/passwd')",
    "unnest(make_array(1, 2))",
    "OVER (ORDER BY ts)",
    "row_number()",
];

/// Metric SQL: planned or refused with a message, within the query time limit; never a
/// panic, never a hang, whatever the tokens.
#[test]
fn metric_sql_never_panics_or_hangs() {
    let dir = crate::kafka::TempDir::new("prop-sql");
    let limits = coalmine::query::QueryLimits {
        timeout: Duration::from_secs(5),
        memory_bytes: 64 << 20,
        ..Default::default()
    };
    let engine =
        coalmine::query::Engine::with_limits(crate::query::dataset(&dir.0), limits).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let prefixed = sentences(SQL_TOKENS, " ", 24)
        .prop_map(|s| format!("SELECT ts, value FROM metrics {s}"))
        .boxed();
    runner(96)
        .run(&prop_oneof![sentences(SQL_TOKENS, " ", 24), prefixed], |sql| {
            let doc = json!({"name": "p", "applications": ["a"], "metrics": [{"name": "m", "query": {"type": "sql", "sql": sql}}]});
            let r = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), coalmine::canary::validate(&doc, &engine)).await
            });
            match r {
                Err(_) => prop_assert!(false, "validation of {:?} did not end in 30 s", sql),
                Ok(Err(e)) => prop_assert!(!e.to_string().is_empty()),
                Ok(Ok(_)) => {}
            }
            Ok(())
        })
        .unwrap();
}
