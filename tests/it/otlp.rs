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
