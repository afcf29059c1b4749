//! Payloads shaped as real senders shape them, for the ingest and receive benches.
#![allow(dead_code)]

use coalmine::ingest::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const MESSAGES: usize = 100;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// The OpenTelemetry SDK's default histogram bounds (milliseconds).
const OTEL_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

pub fn otlp_messages() -> Vec<Vec<u8>> {
    let t = 1_795_302_000_000_000_000u64;
    (0..MESSAGES)
        .map(|m| {
            let mut hist = Vec::new();
            let mut sums = Vec::new();
            for route in 0..10 {
                for code in ["200", "404", "500"] {
                    let attributes = vec![
                        kv("http.route", &format!("/api/v1/item{route}")),
                        kv("http.response.status_code", code),
                        kv("http.request.method", "GET"),
                    ];
                    let counts: Vec<u64> = (0..16).map(|b| ((m + route + b) % 7) as u64).collect();
                    hist.push(HistogramDataPoint {
                        attributes: attributes.clone(),
                        start_time_unix_nano: t - 60_000_000_000,
                        time_unix_nano: t,
                        count: counts.iter().sum(),
                        sum: Some(1234.5),
                        bucket_counts: counts,
                        explicit_bounds: OTEL_BOUNDS.to_vec(),
                        min: Some(0.5),
                        max: Some(9000.0),
                        ..Default::default()
                    });
                    sums.push(NumberDataPoint {
                        attributes,
                        start_time_unix_nano: t - 60_000_000_000,
                        time_unix_nano: t,
                        value: Some(number_data_point::Value::AsInt((m * 31 + route) as i64)),
                        ..Default::default()
                    });
                }
            }
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", "checkout"),
                            kv(
                                "service.version",
                                if m % 2 == 0 { "1.4.0" } else { "1.5.0" },
                            ),
                            kv("service.instance.id", &format!("checkout-{m}")),
                            kv("host.name", &format!("node-{}", m % 10)),
                            kv("telemetry.sdk.language", "go"),
                            kv("telemetry.sdk.name", "opentelemetry"),
                        ],
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
                                .into(),
                            version: "0.60.0".into(),
                            ..Default::default()
                        }),
                        metrics: vec![
                            Metric {
                                name: "http.server.request.duration".into(),
                                unit: "ms".into(),
                                data: Some(Data::Histogram(Histogram {
                                    data_points: hist,
                                    aggregation_temporality: 2,
                                })),
                                ..Default::default()
                            },
                            Metric {
                                name: "http.server.requests".into(),
                                data: Some(Data::Sum(Sum {
                                    data_points: sums,
                                    aggregation_temporality: 2,
                                    is_monotonic: true,
                                })),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        })
        .collect()
}

/// Remote-write bodies as Prometheus sends them: `max_samples_per_send` (2,000) series of
/// one sample each, 20 bodies.
pub fn remote_write_messages() -> Vec<Vec<u8>> {
    (0..20)
        .map(|m| {
            let timeseries = (0..2000)
                .map(|i| {
                    let labels = [
                        (
                            "__name__",
                            "http_request_duration_seconds_bucket".to_string(),
                        ),
                        ("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
                        ("job", "checkout".into()),
                        ("le", ["0.1", "0.25", "0.5", "1", "+Inf"][i % 5].into()),
                    ];
                    TimeSeries {
                        labels: labels
                            .into_iter()
                            .map(|(k, v)| Label {
                                name: k.into(),
                                value: v,
                            })
                            .collect(),
                        samples: vec![Sample {
                            value: (m * 2000 + i) as f64,
                            timestamp: 1_795_302_000_000 + m as i64 * 15_000,
                        }],
                        histograms: vec![],
                    }
                })
                .collect();
            remote_write::encode(&WriteRequest { timeseries })
        })
        .collect()
}
