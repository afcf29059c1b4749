//! OTLP metrics and Prometheus remote-write: the decoders on the OpenTelemetry project's
//! example request, and (with a broker) the daemon's receivers.

use coalmine::ingest::decode::{Decoder, Format};
use coalmine::store::segment::PointColumns;
use coalmine::store::series::SeriesRegistry;

/// `examples/metrics.json` of open-telemetry/opentelemetry-proto, with its histogram made
/// valid (the example has 3 bucket counts for 1 bound; OTLP wants one count more than
/// bounds), service version and instance attributes, and an exponential histogram, a
/// summary and a point flagged "no recorded value" added.
const EXAMPLE: &str = include_str!("../data/otlp/metrics.json");
const T: i64 = 1_544_712_660_300;

fn decode(format: Format, payload: &[u8]) -> Result<Vec<(String, i64, f64)>, String> {
    let mut reg = SeriesRegistry::new();
    let mut out = PointColumns::default();
    Decoder::new(format, 1 << 20)
        .decode(payload, Some(1_000), &mut reg, &mut out)
        .map_err(|e| e.reason)?;
    let mut got: Vec<_> = (0..out.len())
        .map(|i| {
            (
                reg.key(out.series[i]).unwrap().display(),
                out.ts[i],
                out.value[i],
            )
        })
        .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(got)
}

#[test]
fn the_otlp_example_maps_every_point_kind() {
    let got = decode(Format::OtlpJson, EXAMPLE.as_bytes()).unwrap();
    let names: Vec<String> = got
        .iter()
        .map(|(s, _, v)| format!("{} {v}", s.split('{').next().unwrap()))
        .collect();
    // every series of every kind, with its value
    let want = [
        "my_counter 5",
        "my_exponential_bucket 1",
        "my_exponential_bucket 1",
        "my_exponential_bucket 3",
        "my_exponential_bucket 6",
        "my_exponential_bucket 6",
        "my_exponential_count 6",
        "my_exponential_sum 19",
        "my_gauge 10",
        "my_histogram_bucket 1",
        "my_histogram_bucket 2",
        "my_histogram_bucket 3",
        "my_histogram_count 3",
        "my_histogram_max 2.5",
        "my_histogram_min 0.5",
        "my_histogram_sum 3",
        "my_summary 2",
        "my_summary 4",
        "my_summary_count 4",
        "my_summary_sum 10",
    ];
    let mut sorted = names.clone();
    sorted.sort();
    let mut want_sorted: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "{got:#?}");
    assert!(got.iter().all(|(_, t, _)| *t == T), "timeUnixNano → ms");
    let series = |prefix: &str| -> Vec<&(String, i64, f64)> {
        got.iter()
            .filter(|(s, _, _)| s.starts_with(prefix))
            .collect()
    };
    // resource, scope and point attributes are tags, keys escaped; job and instance derived
    let counter = &series("my_counter{")[0].0;
    for tag in [
        "service_name=my.service",
        "service_version=2.1.0",
        "job=my.service",
        "instance=pod-7",
        "otel_scope_name=my.library",
        "otel_scope_version=1.0.0",
        "otel_scope_my_scope_attribute=some scope attribute",
        "my_counter_attr=some value",
    ] {
        assert!(counter.contains(tag), "{tag} in {counter}");
    }
    assert!(
        series("my_gauge{")[0].0.contains("my_gauge_attr=3"),
        "an int attribute as text"
    );
    // explicit buckets: cumulative per bound, then +Inf = count
    let le = |s: &str| {
        s.split("le=")
            .nth(1)
            .unwrap()
            .split([',', '}'])
            .next()
            .unwrap()
            .to_string()
    };
    let mut hist: Vec<(String, f64)> = series("my_histogram_bucket{")
        .iter()
        .map(|(s, _, v)| (le(s), *v))
        .collect();
    hist.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
    assert_eq!(
        hist,
        vec![("1".into(), 1.0), ("2".into(), 2.0), ("+Inf".into(), 3.0)]
    );
    // exponential, scale 0 (base 2): zero bucket 1 at le=0, (2,4] 2, (4,8] 3; the lowest
    // positive bucket's lower edge (2) starts its interpolation
    let mut exp: Vec<(String, f64)> = series("my_exponential_bucket{")
        .iter()
        .map(|(s, _, v)| (le(s), *v))
        .collect();
    exp.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap()
            .then(a.0.len().cmp(&b.0.len()))
    });
    assert_eq!(
        exp,
        vec![
            ("0".into(), 1.0),
            ("2".into(), 1.0),
            ("4".into(), 3.0),
            ("8".into(), 6.0),
            ("+Inf".into(), 6.0)
        ]
    );
    let q: Vec<&str> = series("my_summary{")
        .iter()
        .map(|(s, _, _)| s.split("quantile=").nth(1).unwrap())
        .collect();
    assert_eq!(q.len(), 2);
    assert!(q[0].starts_with("0.5") && q[1].starts_with("0.99"), "{q:?}");
    assert!(
        series("my_gone").is_empty(),
        "a point with no recorded value is not a sample"
    );
}

#[test]
fn otlp_protobuf_gives_what_otlp_json_gives() {
    use prost::Message;
    let req: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest =
        serde_json::from_str(EXAMPLE).unwrap();
    let bytes = req.encode_to_vec();
    assert_eq!(
        decode(Format::OtlpProto, &bytes).unwrap(),
        decode(Format::OtlpJson, EXAMPLE.as_bytes()).unwrap()
    );
    // truncated, garbage and the wrong format: refused with the reason, nothing decoded
    let cut = decode(Format::OtlpProto, &bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        cut.starts_with("not an OTLP ExportMetricsServiceRequest protobuf"),
        "{cut}"
    );
    let json_as_proto = decode(Format::OtlpProto, EXAMPLE.as_bytes()).unwrap_err();
    assert!(json_as_proto.contains("protobuf"), "{json_as_proto}");
    let proto_as_json = decode(Format::OtlpJson, &bytes).unwrap_err();
    assert!(
        proto_as_json.starts_with("invalid OTLP/JSON"),
        "{proto_as_json}"
    );
}

#[test]
fn bad_otlp_points_are_refused_with_their_path() {
    let bad_hist = EXAMPLE.replace(r#""explicitBounds": [1, 2]"#, r#""explicitBounds": [1]"#);
    let e = decode(Format::OtlpJson, bad_hist.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        "resourceMetrics[0].scopeMetrics[0].metrics[2] (\"my.histogram\"): dataPoints[0]: 3 bucket counts for 1 explicit bounds (one more count than bounds expected)"
    );
    let no_value = EXAMPLE.replace(r#""asInt": "10","#, "");
    let e = decode(Format::OtlpJson, no_value.as_bytes()).unwrap_err();
    assert!(
        e.ends_with("metrics[1] (\"my.gauge\"): dataPoints[0]: no value (asDouble or asInt)"),
        "{e}"
    );
    let soon = EXAMPLE.replace(
        "\"timeUnixNano\": 1544712660300000000",
        "\"timeUnixNano\": \"soon\"",
    );
    let e = decode(Format::OtlpJson, soon.as_bytes()).unwrap_err();
    // (the crate's serde mapping reads a metric's data as a whole: a bad field in it leaves none)
    assert!(e.ends_with("metrics[1] (\"my.gauge\"): no data (gauge, sum, histogram, exponentialHistogram or summary), or data that could not be read"), "{e}");
    let e = decode(
        Format::OtlpJson,
        b"{\"resourceMetrics\": [{\"scopeMetrics\": 3}]}",
    )
    .unwrap_err();
    assert!(
        e.starts_with("invalid OTLP/JSON") && e.contains("column"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// The receivers, with a broker

use coalmine::ingest::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};

use crate::http::{get, request_bytes};
use crate::kafka::{broker, new_topic, recent_ms, unique, Daemon, TempDir};

const TOKEN: &str = "recv-secret";

fn series(name: &str, tags: &[(&str, &str)], t0: i64, n: usize) -> TimeSeries {
    let mut labels = vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    labels.extend(tags.iter().map(|(k, v)| Label {
        name: (*k).into(),
        value: (*v).into(),
    }));
    TimeSeries {
        labels,
        samples: (0..n)
            .map(|i| Sample {
                value: i as f64 * 1.5,
                timestamp: t0 + i as i64 * 1000,
            })
            .collect(),
        histograms: vec![],
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn receivers_store_what_kafka_acknowledged_and_refuse_bad_input() {
    use prost::Message;
    let addr = broker();
    let dir = TempDir::new("recv");
    let (rw, otlp) = (new_topic(&addr, "rw", 2), new_topic(&addr, "otlp", 2));
    let mut d = Daemon::start(
        &dir.0,
        "d",
        &addr,
        &unique("g"),
        &[(&rw, "prometheus-remote-write"), (&otlp, "otlp-proto")],
        &format!("\n[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n[receive]\nremote-write-topic = \"{rw}\"\notlp-topic = \"{otlp}\"\n"),
    );
    let api = d.api();
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("Authorization", bearer.as_str());
    let rw_headers = [
        auth,
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let post = |path: &str, body: &[u8], headers: &[(&str, &str)]| {
        request_bytes(&api, "POST", path, body, headers)
    };
    let t0 = recent_ms();
    let req = WriteRequest {
        timeseries: vec![
            series(
                "http_requests_total",
                &[("code", "200"), ("instance", "a:9100"), ("job", "shop")],
                t0,
                100,
            ),
            series(
                "http_requests_total",
                &[("code", "500"), ("instance", "a:9100"), ("job", "shop")],
                t0,
                100,
            ),
            series("up", &[("instance", "a:9100"), ("job", "shop")], t0, 100),
        ],
    };
    let body = remote_write::encode(&req);

    // writes need the token, like every other write
    let r = post("/api/v1/write", &body, &rw_headers[1..]);
    assert_eq!(r.status, 401, "{}", r.body);
    let r = post("/api/v1/write", &body, &rw_headers);
    assert_eq!(r.status, 204, "{}", r.body);

    // OTLP/HTTP: protobuf, JSON, gzip'd JSON (the example, moved to the recent past)
    let recent_ns = format!("{}", t0 as u64 * 1_000_000);
    let example = EXAMPLE.replace("1544712660300000000", &recent_ns);
    let proto = {
        let req: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest =
            serde_json::from_str(&example).unwrap();
        req.encode_to_vec()
    };
    let r = post(
        "/v1/metrics",
        &proto,
        &[auth, ("Content-Type", "application/x-protobuf")],
    );
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/x-protobuf")),
        "{}",
        r.body
    );
    let r = post(
        "/v1/metrics",
        example.as_bytes(),
        &[auth, ("Content-Type", "application/json")],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    let r = post(
        "/v1/metrics",
        &gzip(example.as_bytes()),
        &[
            auth,
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // bad input: a clear 4xx, nothing produced
    let msg = |r: &crate::http::Resp| r.json()["message"].as_str().unwrap().to_string();
    let r = post(
        "/v1/metrics",
        &proto[..proto.len() / 2],
        &[auth, ("Content-Type", "application/x-protobuf")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        msg(&r).starts_with("not an OTLP ExportMetricsServiceRequest protobuf"),
        "{}",
        r.body
    );
    let r = post(
        "/v1/metrics",
        example.as_bytes(),
        &[auth, ("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(msg(&r).contains("application/x-protobuf or application/json"));
    let r = post(
        "/v1/metrics",
        b"\x1f\x8b\x08garbage",
        &[
            auth,
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        msg(&r).starts_with("the gzip body cannot be inflated"),
        "{}",
        r.body
    );
    let r = post(
        "/v1/metrics",
        example.as_bytes(),
        &[
            auth,
            ("Content-Type", "application/json"),
            ("Content-Encoding", "br"),
        ],
    );
    assert_eq!(r.status, 415, "{}", r.body);
    let r = post("/api/v1/write", b"this is not snappy at all", &rw_headers);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(msg(&r).contains("snappy"), "{}", r.body);
    let r = post(
        "/api/v1/write",
        &body,
        &[
            auth,
            (
                "Content-Type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            ),
            ("Content-Encoding", "snappy"),
        ],
    );
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(
        msg(&r).contains("remote-write 2.0 is not supported"),
        "{}",
        r.body
    );
    let r = post(
        "/api/v1/write",
        &body,
        &[auth, ("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 415, "{}", r.body);
    // 100 MB: refused from the declared length (server.max-body), before it is read
    let huge = vec![0u8; 100 << 20];
    let r = post("/api/v1/write", &huge, &rw_headers);
    assert_eq!(r.status, 413, "{}", r.body);
    drop(huge);
    // a label value of 1 MB: the store's tag limit, named
    let mb = "v".repeat(1 << 20);
    let big = WriteRequest {
        timeseries: vec![series("up", &[("instance", &mb)], t0, 1)],
    };
    let r = post("/api/v1/write", &remote_write::encode(&big), &rw_headers);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(msg(&r).contains("store.max-tag-value-bytes"), "{}", r.body);
    // no __name__, and a native histogram
    let mut nameless = series("x", &[("job", "shop")], t0, 1);
    nameless.labels.remove(0);
    let r = post(
        "/api/v1/write",
        &remote_write::encode(&WriteRequest {
            timeseries: vec![nameless],
        }),
        &rw_headers,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        msg(&r),
        "timeseries[0]: no __name__ label (labels [\"job\"])"
    );
    let mut native = series("latency", &[], t0, 0);
    native.histograms.push(vec![8, 1]);
    let r = post(
        "/api/v1/write",
        &remote_write::encode(&WriteRequest {
            timeseries: vec![native],
        }),
        &rw_headers,
    );
    assert_eq!(r.status, 400);
    assert!(
        msg(&r).starts_with("timeseries[0]: latency: native histograms are not supported"),
        "{}",
        r.body
    );

    // the daemon is unharmed, and stores exactly what was acknowledged: 300 samples, and
    // the example's 20 points three times
    assert_eq!(get(&api, "/health").status, 200);
    // every answer of the receivers is counted (the 401s are the API's, before them)
    let m = get(&api, "/metrics").body;
    for line in [
        r#"coalmine_received_requests_total{endpoint="remote-write",outcome="accepted"} 1"#,
        r#"coalmine_received_requests_total{endpoint="remote-write",outcome="refused"} 7"#,
        r#"coalmine_received_requests_total{endpoint="otlp",outcome="accepted"} 3"#,
        r#"coalmine_received_requests_total{endpoint="otlp",outcome="refused"} 4"#,
        r#"coalmine_received_requests_total{endpoint="otlp",outcome="retry"} 0"#,
        r#"coalmine_received_points_total{endpoint="remote-write"} 300"#,
        r#"coalmine_received_points_total{endpoint="otlp"} 60"#,
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    d.wait_for_points(360, std::time::Duration::from_secs(60));
    assert!(d.terminate().success(), "{}", d.log_text());
    let store = coalmine::store::Store::open_read_only(&d.data_dir).unwrap();
    assert_eq!(store.count_and_sum().unwrap().0, 360);
    let got = crate::ingest::values_of(&store, "http_requests_total", &[("code", "500")]);
    let want: Vec<(i64, f64)> = (0..100).map(|i| (t0 + i * 1000, i as f64 * 1.5)).collect();
    assert_eq!(got, want);
}

#[test]
#[ignore = "needs a Kafka broker: scripts/test.sh starts one and runs these"]
fn a_receiver_answers_503_while_kafka_is_down_and_404_when_off() {
    // a daemon whose brokers are unreachable: nothing can be acknowledged, so the sender is
    // told to retry (Prometheus and the OTLP exporters retry 5xx)
    let dir = TempDir::new("recv-down");
    let topic = unique("rw-down");
    let mut d = Daemon::start(
        &dir.0,
        "d",
        "127.0.0.1:9",
        &unique("g"),
        &[(&topic, "prometheus-remote-write")],
        &format!("\n[server]\nlisten = \"127.0.0.1:0\"\n\n[receive]\nremote-write-topic = \"{topic}\"\nproduce-timeout = \"1s\"\n"),
    );
    let api = d.api();
    let body = remote_write::encode(&WriteRequest {
        timeseries: vec![series("up", &[], recent_ms(), 3)],
    });
    let r = request_bytes(
        &api,
        "POST",
        "/api/v1/write",
        &body,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
        ],
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Kafka did not acknowledge the request"),
        "{}",
        r.body
    );
    let r = request_bytes(
        &api,
        "POST",
        "/v1/metrics",
        b"{}",
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "this receiver is off: set receive.otlp-topic"
    );
    let m = get(&api, "/metrics").body;
    assert!(
        m.contains(
            r#"coalmine_received_requests_total{endpoint="remote-write",outcome="retry"} 1"#
        ),
        "{m}"
    );
    d.terminate();
}

#[test]
fn a_receiver_topic_must_be_consumed_in_its_format() {
    let cfg = "[kafka]\ntopics = [{ name = \"m\", format = \"json\" }]\n[receive]\nremote-write-topic = \"m\"\notlp-topic = \"o\"\n";
    let e =
        coalmine::config::Config::from_text(cfg, "coalmine.toml", &Default::default()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("receive.remote-write-topic: topic \"m\" is consumed as json, but this receiver writes prometheus-remote-write"), "{text}");
    assert!(text.contains("receive.otlp-topic: topic \"o\" is not in kafka.topics; add { name = \"o\", format = \"otlp-proto\" }"), "{text}");
}

#[test]
fn a_decoder_reused_across_messages_and_registries_names_the_same_series() {
    // the decoder caches histogram series ids per registry: a second message, and a message
    // into another registry, must come out as the first did
    let mut d = Decoder::new(Format::OtlpJson, 1 << 20);
    let run = |d: &mut Decoder, reg: &mut SeriesRegistry| {
        let mut out = PointColumns::default();
        d.decode(EXAMPLE.as_bytes(), None, reg, &mut out).unwrap();
        (0..out.len())
            .map(|i| (reg.key(out.series[i]).unwrap().display(), out.value[i]))
            .collect::<Vec<_>>()
    };
    let mut a = SeriesRegistry::new();
    let first = run(&mut d, &mut a);
    assert_eq!(run(&mut d, &mut a), first);
    // another registry that already has other series: other ids, the same series
    let mut b = SeriesRegistry::new();
    b.resolve("unrelated", &[("x", "1")]);
    assert_eq!(run(&mut d, &mut b), first);
    assert_eq!(run(&mut d, &mut a), first);
}
