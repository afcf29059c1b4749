//! OTLP metrics (`ExportMetricsServiceRequest`, protobuf or OTLP/JSON) → points.
//!
//! Messages are decoded with the OpenTelemetry project's own protobuf definitions (the
//! `opentelemetry-proto` crate: prost for protobuf, its serde mapping for OTLP/JSON). The
//! mapping to coalmine's `(metric, tags, ts, value)` points follows the OpenTelemetry →
//! Prometheus compatibility rules (Prometheus's OTLP receiver with
//! `translation_strategy: UnderscoreEscapingWithoutSuffixes`), documented in `docs/metrics.md`:
//!
//! * names: every run of characters other than `[A-Za-z0-9:]` becomes one `_`
//!   (`http.server.request.duration` → `http_server_request_duration`); no unit or `_total`
//!   suffix is added;
//! * tags: resource attributes, then the scope's (`otel_scope_name`, `otel_scope_version`
//!   and its attributes), then the point's, later ones winning on a clash; keys escaped as
//!   Prometheus label names (`service.version` → `service_version`); `job` and `instance`
//!   from `service.namespace`/`service.name` and `service.instance.id` as Prometheus derives
//!   them;
//! * gauges and sums: one point (`asDouble` or `asInt`), stored as sent whatever the sum's
//!   temporality (a delta sum's points are increments: `sum(value)` over a window);
//! * explicit-bucket histograms: `<name>_bucket{le}` cumulative per bound and `+Inf`,
//!   `<name>_count`, `<name>_sum`, `<name>_min`, `<name>_max` (the last three when present);
//! * exponential histograms: the same series, their buckets turned into cumulative `le`
//!   buckets at the exponential bucket bounds (negative, zero, positive, `+Inf`);
//! * summaries: `<name>{quantile}`, `<name>_count`, `<name>_sum`.
//!
//! Points flagged "no recorded value" (a series that went away) are not samples and are
//! skipped, as Prometheus turns them into staleness markers.

use std::borrow::Cow;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point, Gauge, Metric,
    NumberDataPoint, Sum,
};
use prost::Message;
use smallvec::SmallVec;

use super::decode_error::DecodeError;
use super::timestamp::check_ts;
use crate::store::segment::PointColumns;
use crate::store::series::{sort_tags, SeriesLimits, SeriesRegistry};

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const NO_RECORDED_VALUE: u32 = 1;

/// A protobuf `ExportMetricsServiceRequest`.
pub fn parse_proto(payload: &[u8]) -> Result<ExportMetricsServiceRequest, DecodeError> {
    ExportMetricsServiceRequest::decode(payload).map_err(|e| {
        DecodeError::new(format!(
            "not an OTLP ExportMetricsServiceRequest protobuf ({} bytes): {e}",
            payload.len()
        ))
    })
}

/// An OTLP/JSON `ExportMetricsServiceRequest`.
pub fn parse_json(payload: &[u8]) -> Result<ExportMetricsServiceRequest, DecodeError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::new("empty message"));
    }
    serde_json::from_slice(payload).map_err(|e| {
        // serde_json's messages end with "at line L column C"
        DecodeError::new(format!(
            "invalid OTLP/JSON ExportMetricsServiceRequest: {e}"
        ))
    })
}

/// The points of `req`, appended to `out`. `fallback_ts_ms` stands for a data point without
/// a time (the Kafka message timestamp).
pub fn points(
    req: &ExportMetricsServiceRequest,
    fallback_ts_ms: Option<i64>,
    limits: &SeriesLimits,
    registry: &mut SeriesRegistry,
    out: &mut PointColumns,
    cache: &mut SeriesCache,
) -> Result<(), DecodeError> {
    if cache.registry != registry.instance() {
        cache.map.clear();
        cache.registry = registry.instance();
    }
    let mut sink = Sink {
        limits,
        registry,
        out,
        cache,
        name: String::new(),
        bounds: (Vec::new(), Vec::new()),
    };
    for (r, rm) in req.resource_metrics.iter().enumerate() {
        let mut base: Vec<(String, String)> = Vec::new();
        if let Some(res) = &rm.resource {
            push_attributes(&mut base, &res.attributes);
            let attr = |k: &str| {
                res.attributes
                    .iter()
                    .find(|kv| kv.key == k)
                    .and_then(|kv| kv.value.as_ref())
                    .map(|v| any_text(v).into_owned())
                    .filter(|v| !v.is_empty())
            };
            if let Some(name) = attr("service.name") {
                let job = match attr("service.namespace") {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name,
                };
                base.push(("job".into(), job));
            }
            if let Some(instance) = attr("service.instance.id") {
                base.push(("instance".into(), instance));
            }
        }
        for (s, sm) in rm.scope_metrics.iter().enumerate() {
            let mut scoped = base.clone();
            if let Some(scope) = &sm.scope {
                if !scope.name.is_empty() {
                    scoped.push(("otel_scope_name".into(), scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scoped.push(("otel_scope_version".into(), scope.version.clone()));
                }
                for kv in &scope.attributes {
                    if let Some(v) = &kv.value {
                        scoped.push((
                            format!("otel_scope_{}", label_name(&kv.key)),
                            any_text(v).into_owned(),
                        ));
                    }
                }
            }
            for (m, metric) in sm.metrics.iter().enumerate() {
                sink.metric(metric, &scoped, fallback_ts_ms).map_err(|e| {
                    DecodeError::new(format!(
                        "resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}] ({:?}): {}",
                        metric.name, e.reason
                    ))
                })?;
            }
        }
    }
    Ok(())
}

fn push_attributes(to: &mut Vec<(String, String)>, attributes: &[KeyValue]) {
    for kv in attributes {
        if let Some(v) = &kv.value {
            to.push((label_name(&kv.key).into_owned(), any_text(v).into_owned()));
        }
    }
}

/// An attribute value as tag text: strings as they are, numbers and booleans as written in
/// JSON, arrays and maps as JSON (Prometheus's rule), bytes as base64.
fn any_text(v: &AnyValue) -> Cow<'_, str> {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Cow::Borrowed(s),
        Some(any_value::Value::BoolValue(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Some(any_value::Value::IntValue(i)) => Cow::Owned(i.to_string()),
        Some(any_value::Value::DoubleValue(d)) => Cow::Owned(d.to_string()),
        Some(_) => Cow::Owned(any_json(v).to_string()),
        None => Cow::Borrowed(""),
    }
}

fn any_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        Some(any_value::Value::StringValue(s)) => J::from(s.as_str()),
        Some(any_value::Value::BoolValue(b)) => J::from(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => J::from(*d),
        Some(any_value::Value::ArrayValue(a)) => J::Array(a.values.iter().map(any_json).collect()),
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map_or(J::Null, any_json);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => J::from(base64_encode(b)),
        Some(any_value::Value::StringValueStrindex(i)) => J::from(*i),
        None => J::Null,
    }
}

/// Standard base64 with padding (bytes attributes are rare: not worth a dependency).
fn base64_encode(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// An attribute key as a Prometheus label name: characters other than `[A-Za-z0-9_]`
/// become `_`; a leading digit gets `key_` before it, a single leading `_` gets `key`.
pub fn label_name(key: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let digit_first = key.starts_with(|c: char| c.is_ascii_digit());
    let underscore_first = key.starts_with('_') && !key.starts_with("__");
    if key.chars().all(valid) && !digit_first && !underscore_first {
        return Cow::Borrowed(key);
    }
    let mut s = String::with_capacity(key.len() + 4);
    if digit_first {
        s.push_str("key_");
    } else if underscore_first {
        s.push_str("key");
    }
    s.extend(key.chars().map(|c| if valid(c) { c } else { '_' }));
    Cow::Owned(s)
}

/// A metric name as Prometheus's `UnderscoreEscapingWithoutSuffixes` writes it: the runs of
/// `[A-Za-z0-9:]` joined by single `_`, with `_` before a leading digit.
pub fn metric_name(name: &str, to: &mut String) {
    to.clear();
    for part in name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|p| !p.is_empty())
    {
        // a separator, or the `_` before a leading digit
        if !to.is_empty() || part.starts_with(|c: char| c.is_ascii_digit()) {
            to.push('_');
        }
        to.push_str(part);
    }
}

/// A bucket bound as Prometheus writes `le` (shortest round-trip decimal, no exponent).
fn le_text(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".into()
    } else if bound == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{bound}")
    }
}

/// The series ids of the histogram points a decoder has seen, by point: a histogram point
/// is up to 20 series (buckets, count, sum, min, max) that differ only in name suffix and
/// `le`, and looking each up in the registry (hashing and comparing ~15 tags 20 times) was
/// 70 % of decoding time (perf, `cargo bench --bench ingest`). One hash and one comparison
/// of the point's tags now find them all. Valid for one registry; bounded in size.
#[derive(Default)]
pub struct SeriesCache {
    registry: u64,
    map: std::collections::HashMap<u64, CachedSeries, ahash::RandomState>,
}

/// Entries kept at most (one per histogram series set; cleared when full).
const CACHE_ENTRIES: usize = 100_000;

struct CachedSeries {
    name: String,
    tags: Vec<(String, String)>,
    /// The bucket bounds and which of sum, min, max the point had.
    shape: (Vec<String>, [bool; 3]),
    /// Buckets in order, count, then the present ones of sum, min, max.
    ids: Vec<u32>,
}

struct Sink<'a> {
    limits: &'a SeriesLimits,
    registry: &'a mut SeriesRegistry,
    out: &'a mut PointColumns,
    cache: &'a mut SeriesCache,
    /// The escaped metric name with a suffix.
    name: String,
    /// The last explicit bounds seen and their `le` texts (histograms of one metric share them).
    bounds: (Vec<f64>, Vec<String>),
}

type Tags<'t> = SmallVec<[(&'t str, &'t str); 16]>;

impl Sink<'_> {
    fn metric(
        &mut self,
        metric: &Metric,
        scoped: &[(String, String)],
        fallback_ts_ms: Option<i64>,
    ) -> Result<(), DecodeError> {
        if metric.name.is_empty() {
            return Err(DecodeError::new("a metric without a name"));
        }
        let mut base = String::new();
        metric_name(&metric.name, &mut base);
        if base.is_empty() {
            return Err(DecodeError::new(
                "the name has no letter or digit to make a metric name of",
            ));
        }
        let at =
            |i: usize, e: DecodeError| DecodeError::new(format!("dataPoints[{i}]: {}", e.reason));
        let Some(data) = &metric.data else {
            return Err(DecodeError::new(
                "no data (gauge, sum, histogram, exponentialHistogram or summary), or data that could not be read",
            ));
        };
        match data {
            Data::Gauge(Gauge { data_points }) | Data::Sum(Sum { data_points, .. }) => {
                for (i, p) in data_points.iter().enumerate() {
                    self.number(&base, p, scoped, fallback_ts_ms)
                        .map_err(|e| at(i, e))?;
                }
            }
            Data::Histogram(h) => {
                for (i, p) in h.data_points.iter().enumerate() {
                    if p.flags & NO_RECORDED_VALUE != 0 {
                        continue;
                    }
                    let ts = time(p.time_unix_nano, fallback_ts_ms).map_err(|e| at(i, e))?;
                    let n = p.bucket_counts.len();
                    if n != 0 && n != p.explicit_bounds.len() + 1 {
                        return Err(at(
                            i,
                            DecodeError::new(format!(
                                "{n} bucket counts for {} explicit bounds (one more count than bounds expected)",
                                p.explicit_bounds.len()
                            )),
                        ));
                    }
                    if self.bounds.0 != p.explicit_bounds {
                        self.bounds.0.clone_from(&p.explicit_bounds);
                        self.bounds.1 = p.explicit_bounds.iter().map(|b| le_text(*b)).collect();
                    }
                    let les = std::mem::take(&mut self.bounds.1);
                    let r = {
                        let mut cumulative = 0u64;
                        let mut buckets: SmallVec<[(&str, f64); 32]> = SmallVec::new();
                        for (k, c) in p.bucket_counts.iter().enumerate().take(les.len()) {
                            cumulative = cumulative.saturating_add(*c);
                            buckets.push((les[k].as_str(), cumulative as f64));
                        }
                        buckets.push(("+Inf", p.count as f64));
                        self.histogram(
                            &base,
                            &buckets,
                            p.count,
                            [p.sum, p.min, p.max],
                            &p.attributes,
                            scoped,
                            ts,
                        )
                    };
                    self.bounds.1 = les;
                    r.map_err(|e| at(i, e))?;
                }
            }
            Data::ExponentialHistogram(h) => {
                for (i, p) in h.data_points.iter().enumerate() {
                    if p.flags & NO_RECORDED_VALUE != 0 {
                        continue;
                    }
                    let ts = time(p.time_unix_nano, fallback_ts_ms).map_err(|e| at(i, e))?;
                    let bounds = exponential_buckets(
                        p.scale,
                        p.zero_threshold,
                        p.zero_count,
                        p.negative.as_ref(),
                        p.positive.as_ref(),
                    )
                    .map_err(|e| at(i, e))?;
                    let texts: Vec<(String, f64)> =
                        bounds.into_iter().map(|(b, c)| (le_text(b), c)).collect();
                    let mut buckets: SmallVec<[(&str, f64); 32]> =
                        texts.iter().map(|(t, c)| (t.as_str(), *c)).collect();
                    buckets.push(("+Inf", p.count as f64));
                    self.histogram(
                        &base,
                        &buckets,
                        p.count,
                        [p.sum, p.min, p.max],
                        &p.attributes,
                        scoped,
                        ts,
                    )
                    .map_err(|e| at(i, e))?;
                }
            }
            Data::Summary(s) => {
                for (i, p) in s.data_points.iter().enumerate() {
                    if p.flags & NO_RECORDED_VALUE != 0 {
                        continue;
                    }
                    let ts = time(p.time_unix_nano, fallback_ts_ms).map_err(|e| at(i, e))?;
                    let qs: Vec<(String, f64)> = p
                        .quantile_values
                        .iter()
                        .map(|q| (le_text(q.quantile), q.value))
                        .collect();
                    let attrs = point_tags(&p.attributes);
                    let tags = merged(scoped, &attrs);
                    for (q, v) in &qs {
                        let with = with_tag(&tags, "quantile", q);
                        self.emit(&base, "", &with, ts, *v).map_err(|e| at(i, e))?;
                    }
                    self.emit(&base, "_count", &tags, ts, p.count as f64)
                        .map_err(|e| at(i, e))?;
                    self.emit(&base, "_sum", &tags, ts, p.sum)
                        .map_err(|e| at(i, e))?;
                }
            }
        }
        Ok(())
    }

    fn number(
        &mut self,
        name: &str,
        p: &NumberDataPoint,
        scoped: &[(String, String)],
        fallback_ts_ms: Option<i64>,
    ) -> Result<(), DecodeError> {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return Ok(());
        }
        let ts = time(p.time_unix_nano, fallback_ts_ms)?;
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => return Err(DecodeError::new("no value (asDouble or asInt)")),
        };
        let attrs = point_tags(&p.attributes);
        let tags = merged(scoped, &attrs);
        self.emit(name, "", &tags, ts, value)
    }

    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &mut self,
        name: &str,
        buckets: &[(&str, f64)],
        count: u64,
        [sum, min, max]: [Option<f64>; 3],
        attributes: &[KeyValue],
        scoped: &[(String, String)],
        ts: i64,
    ) -> Result<(), DecodeError> {
        let attrs = point_tags(attributes);
        let tags = merged(scoped, &attrs);
        let present = [sum.is_some(), min.is_some(), max.is_some()];
        let values = buckets
            .iter()
            .map(|(_, c)| *c)
            .chain([count as f64])
            .chain([sum, min, max].into_iter().flatten());
        // the cached series of this point's tags, when its shape is the same
        let key = (self.registry.instance() != 0).then(|| {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = self.cache.map.hasher().build_hasher();
            name.hash(&mut h);
            tags.hash(&mut h);
            h.finish()
        });
        if let Some(hit) = key.and_then(|k| self.cache.map.get(&k)).filter(|c| {
            c.name == name
                && c.shape.1 == present
                && c.tags.len() == tags.len()
                && c.tags
                    .iter()
                    .zip(&tags)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
                && c.shape.0.len() == buckets.len()
                && c.shape.0.iter().zip(buckets).all(|(a, b)| a == b.0)
        }) {
            for (id, v) in hit.ids.iter().zip(values) {
                self.out.push(*id, ts, v);
            }
            return Ok(());
        }
        let le_at = tags.partition_point(|(k, _)| *k < "le");
        let replace = tags.get(le_at).is_some_and(|(k, _)| *k == "le");
        let mut with: Tags<'_> = tags.clone();
        if !replace {
            with.insert(le_at, ("le", ""));
        }
        let mut ids = Vec::with_capacity(buckets.len() + 4);
        for (le, _) in buckets {
            with[le_at] = ("le", le);
            ids.push(self.resolve(name, "_bucket", &with)?);
        }
        ids.push(self.resolve(name, "_count", &tags)?);
        for (suffix, on) in [
            ("_sum", present[0]),
            ("_min", present[1]),
            ("_max", present[2]),
        ] {
            if on {
                ids.push(self.resolve(name, suffix, &tags)?);
            }
        }
        for (id, v) in ids.iter().zip(values) {
            self.out.push(*id, ts, v);
        }
        if let Some(k) = key {
            if self.cache.map.len() >= CACHE_ENTRIES {
                self.cache.map.clear();
            }
            self.cache.map.insert(
                k,
                CachedSeries {
                    name: name.to_string(),
                    tags: tags
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    shape: (buckets.iter().map(|b| b.0.to_string()).collect(), present),
                    ids,
                },
            );
        }
        Ok(())
    }

    fn resolve(
        &mut self,
        name: &str,
        suffix: &str,
        tags: &[(&str, &str)],
    ) -> Result<u32, DecodeError> {
        self.name.clear();
        self.name.push_str(name);
        self.name.push_str(suffix);
        self.registry
            .try_resolve(&self.name, tags, self.limits)
            .map_err(DecodeError::new)
    }

    fn emit(
        &mut self,
        name: &str,
        suffix: &str,
        tags: &[(&str, &str)],
        ts: i64,
        value: f64,
    ) -> Result<(), DecodeError> {
        let series = self.resolve(name, suffix, tags)?;
        self.out.push(series, ts, value);
        Ok(())
    }
}

/// A point's attributes as escaped `(key, value)` texts.
fn point_tags(attributes: &[KeyValue]) -> SmallVec<[(Cow<'_, str>, Cow<'_, str>); 8]> {
    attributes
        .iter()
        .filter_map(|kv| Some((label_name(&kv.key), any_text(kv.value.as_ref()?))))
        .collect()
}

/// The resource's and scope's tags with the point's after them, sorted (later wins).
fn merged<'t>(
    scoped: &'t [(String, String)],
    attrs: &'t [(Cow<'t, str>, Cow<'t, str>)],
) -> Tags<'t> {
    let mut tags: Tags<'t> = scoped
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(attrs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    sort_tags(&mut tags);
    tags
}

/// `tags` (sorted) with `key` set to `value`.
fn with_tag<'t>(tags: &Tags<'t>, key: &'t str, value: &'t str) -> Tags<'t> {
    let mut with = tags.clone();
    let at = with.partition_point(|(k, _)| *k < key);
    if with.get(at).is_some_and(|(k, _)| *k == key) {
        with[at].1 = value;
    } else {
        with.insert(at, (key, value));
    }
    with
}

fn time(unix_nano: u64, fallback_ts_ms: Option<i64>) -> Result<i64, DecodeError> {
    if unix_nano == 0 {
        return fallback_ts_ms
            .ok_or_else(|| DecodeError::new("no timeUnixNano and no message timestamp"));
    }
    check_ts((unix_nano / 1_000_000) as i64).map_err(DecodeError::new)
}

/// An exponential histogram's buckets as cumulative `(upper bound, count)` pairs: the
/// negative buckets from the lowest up (bucket `i` holds `[-base^(i+1), -base^i)`), the
/// zero bucket (up to `zero_threshold`), the positive buckets (`(base^i, base^(i+1)]`),
/// with `base = 2^(2^-scale)`. `+Inf` is the caller's.
fn exponential_buckets(
    scale: i32,
    zero_threshold: f64,
    zero_count: u64,
    negative: Option<&Buckets>,
    positive: Option<&Buckets>,
) -> Result<Vec<(f64, f64)>, DecodeError> {
    if !(-10..=20).contains(&scale) {
        return Err(DecodeError::new(format!(
            "exponential histogram scale {scale} is outside -10..20"
        )));
    }
    // an SDK sends `negative: {offset: 0, bucketCounts: [0]}` for a histogram that never saw
    // a negative value: a list of zeros is no bucket (else a bucket at -1 would pull low
    // quantiles below 0)
    let negative = negative.filter(|b| b.bucket_counts.iter().any(|c| *c > 0));
    let positive = positive.filter(|b| b.bucket_counts.iter().any(|c| *c > 0));
    let step = (-f64::from(scale)).exp2();
    let bound = |index: i64| (index as f64 * step).exp2();
    let mut out = Vec::new();
    let mut cumulative = 0u64;
    if let Some(neg) = negative {
        for (k, c) in neg.bucket_counts.iter().enumerate().rev() {
            let index = i64::from(neg.offset) + k as i64;
            cumulative = cumulative.saturating_add(*c);
            out.push((-bound(index), cumulative as f64));
        }
    }
    if zero_count > 0
        || zero_threshold > 0.0
        || negative.is_some_and(|b| !b.bucket_counts.is_empty())
    {
        cumulative = cumulative.saturating_add(zero_count);
        out.push((zero_threshold.max(0.0), cumulative as f64));
    }
    if let Some(pos) = positive {
        // the lowest positive bucket's lower edge, so that interpolation starts there
        let low = bound(i64::from(pos.offset));
        if out.last().is_none_or(|(b, _)| *b < low) {
            out.push((low, cumulative as f64));
        }
        for (k, c) in pos.bucket_counts.iter().enumerate() {
            let index = i64::from(pos.offset) + k as i64;
            cumulative = cumulative.saturating_add(*c);
            out.push((bound(index + 1), cumulative as f64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_prometheus_escaping() {
        let mut s = String::new();
        metric_name("http.server.request.duration", &mut s);
        assert_eq!(s, "http_server_request_duration");
        metric_name("a..b-c__d", &mut s);
        assert_eq!(s, "a_b_c_d");
        metric_name("2xx.count", &mut s);
        assert_eq!(s, "_2xx_count");
        assert_eq!(label_name("service.version"), "service_version");
        assert_eq!(label_name("2fa"), "key_2fa");
        assert_eq!(label_name("_x"), "key_x");
        assert_eq!(label_name("__x"), "__x");
        assert_eq!(label_name("plain"), "plain");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn exponential_buckets_are_cumulative_at_powers_of_the_base() {
        // scale 0: base 2; positive offset 1 → buckets (2,4], (4,8]; negative offset 0 → [-2,-1)
        let pos = Buckets {
            offset: 1,
            bucket_counts: vec![3, 4],
        };
        let neg = Buckets {
            offset: 0,
            bucket_counts: vec![2],
        };
        let got = exponential_buckets(0, 0.0, 1, Some(&neg), Some(&pos)).unwrap();
        assert_eq!(
            got,
            vec![(-1.0, 2.0), (0.0, 3.0), (2.0, 3.0), (4.0, 6.0), (8.0, 10.0)]
        );
        // scale 1: base √2
        let pos = Buckets {
            offset: 0,
            bucket_counts: vec![1],
        };
        let got = exponential_buckets(1, 0.0, 0, None, Some(&pos)).unwrap();
        assert_eq!(got, vec![(1.0, 0.0), (std::f64::consts::SQRT_2, 1.0)]);
        assert!(exponential_buckets(21, 0.0, 0, None, None).is_err());
        // an all-zero negative list (what the Python SDK sends) is no bucket
        let zeros = Buckets {
            offset: 0,
            bucket_counts: vec![0],
        };
        let got = exponential_buckets(1, 0.0, 3, Some(&zeros), Some(&pos)).unwrap();
        assert_eq!(
            got,
            vec![(0.0, 3.0), (1.0, 3.0), (std::f64::consts::SQRT_2, 4.0)]
        );
    }
}
