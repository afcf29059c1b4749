//! Ingest against a real broker with the real daemon: formats round-trip, dead letters,
//! consumer groups, and the crash test (no loss, no duplicates after `kill -9`).

use std::collections::BTreeMap;
use std::time::Duration;

use coalmine::store::{ScanFilter, Store};

use crate::kafka::{
    broker, create_topic, new_topic, produce_all, producer, recent_ms, rfc3339, unique, Daemon,
    TempDir,
};

/// The stored `(ts, value)` samples of `metric` with `tags`, sorted.
pub fn values_of(store: &Store, metric: &str, tags: &[(&str, &str)]) -> Vec<(i64, f64)> {
    let filter = ScanFilter {
        metric: Some(metric.to_string()),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ScanFilter::all()
    };
    let mut out = Vec::new();
    for b in store.scan(&filter).unwrap() {
        let (_, ts, v) = coalmine::store::segment::columns(&b);
        out.extend(ts.values().iter().copied().zip(v.values().iter().copied()));
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn three_formats_round_trip() {
    let addr = broker();
    let dir = TempDir::new("formats");
    let (tj, ti, tp) = (unique("json"), unique("influx"), unique("prom"));
    for t in [&tj, &ti, &tp] {
        create_topic(&addr, t, 2);
    }
    let p = producer(&addr);
    // JSON timestamps in every unit coalmine recognises: ms, RFC 3339, s, µs, ns
    let t = recent_ms();
    let json = vec![
        (Some("a".into()), format!(r#"{{"metric": "http.latency_ms", "ts": {}, "value": 12.5, "tags": {{"app": "checkout", "version": "v42"}}}}"#, t + 123).into_bytes()),
        (Some("b".into()), format!(r#"[{{"metric": "http.latency_ms", "ts": "{}", "value": 13, "tags": {{"app": "checkout", "version": "v42"}}}}, {{"metric": "errors", "ts": {}, "value": "NaN"}}]"#, rfc3339(t + 1000), t / 1000).into_bytes()),
        (Some("c".into()), format!("{{\"metric\": \"errors\", \"ts\": {}, \"value\": 2}}\n{{\"metric\": \"errors\", \"ts\": {}, \"value\": 3}}\n", (t + 1000) * 1000, (t + 2000) * 1_000_000).into_bytes()),
    ];
    let ns = |ms: i64| ms * 1_000_000;
    let influx = vec![
        (Some("a".into()), format!("http,app=checkout,version=v42 latency_ms=12.5,count=3i {}", ns(t + 123)).into_bytes()),
        (Some("b".into()), format!("cpu\\ load,host=h\\ 1 user=0.25,idle=75u,ok=true {}\ncpu\\ load,host=h\\ 1 user=0.5 {}", ns(t), ns(t + 1000)).into_bytes()),
    ];
    let prom = vec![(
        None,
        format!(r#"{{"timestamp": "{}", "value": "12.5", "name": "http_latency", "labels": {{"__name__": "http_latency", "app": "checkout"}}}}"#, rfc3339(t)).into_bytes(),
    )];
    produce_all(&p, &tj, &json);
    produce_all(&p, &ti, &influx);
    produce_all(&p, &tp, &prom);
    let mut d = Daemon::start(
        &dir.0,
        "d",
        &addr,
        &unique("g"),
        &[(&tj, "json"), (&ti, "influx"), (&tp, "prometheus-json")],
        "",
    );
    d.wait_for_points(5 + 6 + 1, Duration::from_secs(60));
    let st = d.terminate();
    assert!(
        st.success(),
        "graceful stop exits 0: {st}\n{}",
        d.log_text()
    );
    let store = Store::open_read_only(&d.data_dir).unwrap();
    assert_eq!(store.count_and_sum().unwrap().0, 12);
    // JSON and line protocol name the same series: http + latency_ms field = http.latency_ms
    assert_eq!(
        values_of(&store, "http.latency_ms", &[("app", "checkout")]),
        vec![(t + 123, 12.5), (t + 123, 12.5), (t + 1000, 13.0)]
    );
    let errors = values_of(&store, "errors", &[]);
    assert_eq!(errors.len(), 3);
    assert!(
        errors[0].1.is_nan()
            && errors[0].0 == t
            && errors[1] == (t + 1000, 2.0)
            && errors[2] == (t + 2000, 3.0),
        "{errors:?}"
    );
    assert_eq!(
        values_of(&store, "http.count", &[("version", "v42")]),
        vec![(t + 123, 3.0)]
    );
    assert_eq!(
        values_of(&store, "cpu load.user", &[("host", "h 1")]),
        vec![(t, 0.25), (t + 1000, 0.5)]
    );
    assert_eq!(values_of(&store, "cpu load.idle", &[]), vec![(t, 75.0)]);
    assert_eq!(values_of(&store, "cpu load.ok", &[]), vec![(t, 1.0)]);
    assert_eq!(
        values_of(&store, "http_latency", &[("app", "checkout")]),
        vec![(t, 12.5)]
    );
    // tags are part of the series: the same metric with another tag is another series
    assert!(values_of(&store, "http.latency_ms", &[("app", "other")]).is_empty());
}

#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn malformed_messages_are_dead_lettered_and_the_rest_stored() {
    let addr = broker();
    let dir = TempDir::new("dlq");
    let (topic, dlq) = (new_topic(&addr, "in", 1), new_topic(&addr, "dlq", 1));
    let t0 = recent_ms();
    let good = |i: u32| {
        format!(
            r#"{{"metric": "m", "ts": {}, "value": {i}}}"#,
            t0 + i as i64
        )
        .into_bytes()
    };
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("bad JSON", b"{\"metric\": \"m\", ".to_vec()),
        ("bad UTF-8", vec![b'{', 0xff, 0xfe, b'}']),
        ("missing field", br#"{"metric": "m", "value": 1}"#.to_vec()),
        (
            "bad timestamp",
            br#"{"metric": "m", "ts": "soon", "value": 1}"#.to_vec(),
        ),
        (
            "infinite value",
            br#"{"metric": "m", "ts": 1, "value": "Infinity"}"#.to_vec(),
        ),
        (
            "huge message",
            format!(
                r#"{{"metric": "m", "ts": 1, "value": 1, "pad": "{}"}}"#,
                "x".repeat(3000)
            )
            .into_bytes(),
        ),
    ];
    let mut messages = Vec::new();
    let mut want_sum = 0.0;
    for i in 0..10u32 {
        messages.push((None, good(i)));
        want_sum += i as f64;
        if let Some((_, b)) = bad.get(i as usize) {
            messages.push((None, b.clone()));
        }
    }
    produce_all(&producer(&addr), &topic, &messages);
    let extra = format!("dead-letter-topic = \"{dlq}\"\nmax-message-bytes = \"2KiB\"\n");
    let mut d = Daemon::on_topic(&dir.0, &addr, &topic, &extra);
    let (n, sum) = d.wait_for_points(10, Duration::from_secs(60));
    assert_eq!((n, sum), (10, want_sum));
    assert!(d.terminate().success());
    // every bad message is in the dead-letter topic, with where it came from and why
    let seen: Vec<(Vec<u8>, String, String)> = dead_letters(&addr, &dlq, bad.len())
        .into_iter()
        .map(|(payload, h)| {
            assert_eq!(h["coalmine-source-topic"], topic);
            assert_eq!(h["coalmine-error-kind"], "undecodable");
            (
                payload,
                h["coalmine-source-offset"].clone(),
                h["coalmine-error"].clone(),
            )
        })
        .collect();
    assert_eq!(seen.len(), bad.len(), "all bad messages dead-lettered");
    for (i, (what, payload)) in bad.iter().enumerate() {
        let (got, offset, reason) = &seen[i];
        assert_eq!(got, payload, "{what}: payload kept byte for byte");
        assert_eq!(offset, &(2 * i + 1).to_string(), "{what}: source offset");
        assert!(!reason.is_empty(), "{what}: reason");
    }
    assert!(
        seen[5].2.contains("exceeds max-message-bytes"),
        "{}",
        seen[5].2
    );
    assert!(
        seen[1].2.contains("invalid UTF-8 at byte 1"),
        "{}",
        seen[1].2
    );
    assert!(seen[0].2.contains("invalid JSON"), "{}", seen[0].2);
    let log = d.log_text();
    assert!(
        log.contains("Undecodable message sent to the dead-letter topic")
            && log.contains(&format!("topic=\"{topic}\"")),
        "{log}"
    );
}

/// Up to `n` messages of a dead-letter topic (waiting up to a minute), with their headers.
fn dead_letters(addr: &str, dlq: &str, n: usize) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
    crate::kafka::consume(addr, dlq, n)
        .into_iter()
        .map(|m| (m.payload, m.headers))
        .collect()
}

/// The intake rule, pinned on both sides: points older than the retention (a month ago,
/// 1970 from epoch seconds of a tiny number, one old point in an otherwise fresh message) or
/// further ahead than the clock skew are refused with their message — dead-lettered with the
/// reason, counted by reason on /metrics, nothing else of theirs stored — instead of being
/// stored and then deleted by the next retention pass. A daemon whose retention and skew
/// cover them keeps every one of the same points.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn points_outside_retention_or_clock_skew_are_refused_not_stored_then_deleted() {
    let addr = broker();
    let dir = TempDir::new("intake");
    let (topic, dlq) = (
        new_topic(&addr, "intake", 1),
        new_topic(&addr, "intake-dlq", 1),
    );
    let now = recent_ms() + 3_600_000;
    let (hour, day) = (3_600_000i64, 86_400_000i64);
    let point = |ts: String, v: f64| format!(r#"{{"metric": "m", "ts": {ts}, "value": {v}}}"#);
    let kept = [
        point((now - hour).to_string(), 1.0),
        point((now - 6 * day).to_string(), 2.0),
    ];
    // (message, refusal kind)
    let refused = [
        (
            point((now - 30 * day).to_string(), 100.0),
            "older_than_retention",
        ),
        (point("5".into(), 100.0), "older_than_retention"),
        (
            format!(
                "[{}, {}]",
                point((now - hour).to_string(), 100.0),
                point((now - 8 * day).to_string(), 100.0)
            ),
            "older_than_retention",
        ),
        (
            point((now + 2 * hour).to_string(), 100.0),
            "too_far_in_future",
        ),
        (
            point(((now + 365 * day) * 1_000_000).to_string(), 100.0),
            "too_far_in_future",
        ),
    ];
    let mut messages: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    for (i, (m, _)) in refused.iter().enumerate() {
        messages.push((None, m.clone().into_bytes()));
        if let Some(k) = kept.get(i) {
            messages.push((None, k.clone().into_bytes()));
        }
    }
    produce_all(&producer(&addr), &topic, &messages);

    let mut d = Daemon::on_topic(
        &dir.0,
        &addr,
        &topic,
        &format!("dead-letter-topic = \"{dlq}\"\n"),
    );
    let api = d.api();
    d.wait_for_points(2, Duration::from_secs(60));
    let metrics = |api: &str| crate::http::get(api, "/metrics").body;
    let start = std::time::Instant::now();
    while !metrics(&api).contains("coalmine_messages_refused_total{reason=\"too_far_in_future\"} 2")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            metrics(&api)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = metrics(&api);
    for want in [
        "coalmine_messages_refused_total{reason=\"older_than_retention\"} 3",
        "coalmine_points_refused_total{reason=\"older_than_retention\"} 4",
        "coalmine_points_refused_total{reason=\"too_far_in_future\"} 2",
        "coalmine_points_ingested_total 2",
    ] {
        assert!(m.contains(want), "{want}:\n{m}");
    }
    // every flush runs a retention pass before it returns: once the daemon has exited, the
    // passes after the flushes of the kept points are done, and the points are still there
    assert!(d.terminate().success());
    assert_eq!(d.durable(), (2, 3.0), "{}", d.log_text());
    assert!(
        !d.log_text().contains("Retention removed"),
        "{}",
        d.log_text()
    );
    assert!(d
        .log_text()
        .contains("Message refused: the store would not keep its points"));
    let letters = dead_letters(&addr, &dlq, refused.len());
    assert_eq!(letters.len(), refused.len());
    for ((payload, h), (message, kind)) in letters.iter().zip(&refused) {
        assert_eq!(
            payload,
            message.as_bytes(),
            "the message is dead-lettered byte for byte"
        );
        assert_eq!(&h["coalmine-error-kind"], kind, "{h:?}");
    }
    assert!(
        letters[1].1["coalmine-error"]
            .contains("timestamp 1970-01-01T00:00:05.000Z is older than store.retention (7days)"),
        "{:?}",
        letters[1].1
    );
    assert!(
        letters[2].1["coalmine-error"].starts_with("metric 'm': point 2 of 2: timestamp"),
        "{:?}",
        letters[2].1
    );

    // the same points with a retention and a skew that cover them: all kept
    let mut wide = Daemon::start_with_store(
        &dir.0,
        "wide",
        &addr,
        &unique("g"),
        &[(&topic, "json")],
        "retention = \"36500d\"\nmax-clock-skew = \"400d\"",
        "",
    );
    let (n, sum) = wide.wait_for_points(8, Duration::from_secs(60));
    assert_eq!((n, sum), (8, 3.0 + 6.0 * 100.0));
    assert!(wide.terminate().success());
    assert_eq!(wide.durable(), (8, 603.0), "kept after retention passes");
}

#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn two_daemons_in_one_group_split_partitions() {
    let addr = broker();
    let dir = TempDir::new("group");
    let topic = new_topic(&addr, "split", 4);
    let group = unique("g");
    let mut a = Daemon::start(&dir.0, "a", &addr, &group, &[(&topic, "json")], "");
    a.wait_for_log("Partitions assigned", Duration::from_secs(30));
    let mut b = Daemon::start(&dir.0, "b", &addr, &group, &[(&topic, "json")], "");
    b.wait_for_log("Partitions assigned", Duration::from_secs(60));
    // the rebalance settles: a gave its partitions up and was assigned its share again
    a.wait_for_log("Partitions revoked", Duration::from_secs(60));
    a.wait_for_log_count("Partitions assigned", 2, Duration::from_secs(60));
    let t0 = recent_ms();
    let messages: Vec<(Option<String>, Vec<u8>)> = (0..4000i64)
        .map(|i| {
            (
                Some(format!("k{i}")),
                format!(r#"{{"metric": "m", "ts": {}, "value": {i}}}"#, t0 + i).into_bytes(),
            )
        })
        .collect();
    produce_all(&producer(&addr), &topic, &messages);
    let start = std::time::Instant::now();
    let (na, nb) = loop {
        let (na, nb) = (a.durable().0, b.durable().0);
        if na + nb >= 4000 || start.elapsed() > Duration::from_secs(90) {
            break (na, nb);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(a.terminate().success() && b.terminate().success());
    let (ca, sa) = a.durable();
    let (cb, sb) = b.durable();
    assert_eq!(
        ca + cb,
        4000,
        "a {na}, b {nb}:\n{}\n{}",
        a.log_text(),
        b.log_text()
    );
    assert_eq!(sa + sb, (0..4000).sum::<u64>() as f64);
    assert!(ca > 0 && cb > 0, "both members consumed: a {ca}, b {cb}");
    let pa: Vec<i32> = a
        .durable_offsets()
        .get(&topic)
        .map(|m| m.keys().copied().collect())
        .unwrap_or_default();
    let pb: Vec<i32> = b
        .durable_offsets()
        .get(&topic)
        .map(|m| m.keys().copied().collect())
        .unwrap_or_default();
    assert!(
        pa.iter().all(|p| !pb.contains(p)),
        "partitions split: a {pa:?}, b {pb:?}"
    );
}

/// Produce 2M points while the daemon runs, `kill -9` it twice mid-stream, and check the
/// stored count and sum equal what was produced, exactly.
#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn crash_kill9_twice_loses_and_duplicates_nothing() {
    let addr = broker();
    let dir = TempDir::new("crash");
    let topic = new_topic(&addr, "crash", 4);
    const MESSAGES: u64 = 20_000;
    const PER: u64 = 100;
    let total = MESSAGES * PER;
    // values are multiples of 0.5 below 2^20: every partial sum is exact in f64
    let value = |m: u64, j: u64| ((m * PER + j) % 1_000_003) as f64 * 0.5;
    let want_sum: f64 = (0..MESSAGES)
        .flat_map(|m| (0..PER).map(move |j| value(m, j)))
        .sum();
    let t0 = recent_ms() as u64;
    let producer_addr = addr.clone();
    let producer_topic = topic.clone();
    let producing = std::thread::spawn(move || {
        let p = producer(&producer_addr);
        for chunk in 0..10u64 {
            let msgs: Vec<(Option<String>, Vec<u8>)> = (chunk * MESSAGES / 10
                ..(chunk + 1) * MESSAGES / 10)
                .map(|m| {
                    let pts: Vec<String> = (0..PER)
                        .map(|j| {
                            format!(
                                r#"{{"metric":"m{}","ts":{},"value":{},"tags":{{"i":"{}"}}}}"#,
                                j % 5,
                                t0 + m,
                                value(m, j),
                                m % 50
                            )
                        })
                        .collect();
                    (
                        Some(format!("{m}")),
                        format!("[{}]", pts.join(",")).into_bytes(),
                    )
                })
                .collect();
            produce_all(&p, &producer_topic, &msgs);
        }
    });
    let mut d = Daemon::on_topic(&dir.0, &addr, &topic, "");
    d.wait_for_points(300_000, Duration::from_secs(180));
    d.kill9();
    let after_first = d.durable().0;
    d.restart();
    d.wait_for_points(after_first + 400_000, Duration::from_secs(180));
    d.kill9();
    let after_second = d.durable().0;
    assert!(
        after_second < total,
        "the second kill happened mid-stream ({after_second} of {total})"
    );
    producing.join().unwrap();
    d.restart();
    let (n, _) = d.wait_for_points(total, Duration::from_secs(300));
    // every message consumed (a replayed duplicate would be stored by then)
    let start = std::time::Instant::now();
    while d
        .durable_offsets()
        .get(&topic)
        .map_or(0, |o| o.values().sum::<i64>())
        < MESSAGES as i64
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{:?}",
            d.durable_offsets()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = d.terminate();
    assert!(st.success(), "{st}");
    let (n2, sum) = d.durable();
    assert_eq!(n2, total, "stored == produced (first check {n})");
    assert_eq!(
        sum, want_sum,
        "sum of values equal: nothing lost, nothing doubled"
    );
    let offsets: BTreeMap<i32, i64> = d.durable_offsets()[&topic].clone();
    assert_eq!(
        offsets.values().sum::<i64>() as u64,
        MESSAGES,
        "every message durable exactly once: {offsets:?}"
    );
    let log = d.log_text();
    assert!(
        log.matches("coalmine is running").count() == 3,
        "three lives"
    );
}
