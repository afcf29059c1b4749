//! Decoders: Kafka message payloads → points, in three formats (DESIGN §2).
//!
//! * [`Format::Json`] — one object, an array of objects, or newline-delimited objects:
//!   `{"metric": "...", "ts": <epoch ms | RFC 3339>, "value": <number | "NaN">, "tags": {...}}`.
//! * [`Format::Influx`] — InfluxDB line protocol (Telegraf's Kafka output default): one
//!   point per field, metric `measurement.field`, nanosecond timestamps, `i`/`u` integers,
//!   booleans, backslash escapes; string fields are skipped (they are not samples).
//! * [`Format::PrometheusJson`] — the Prometheus→Kafka adapter's JSON:
//!   `{"timestamp": "...Z", "value": "12.5", "name": "...", "labels": {"__name__": ..., ...}}`.
//! * [`Format::OtlpProto`], [`Format::OtlpJson`] — OTLP `ExportMetricsServiceRequest`s, as
//!   the OpenTelemetry Collector's Kafka exporter writes them (`otlp_proto`, its default, and
//!   `otlp_json`); see [`super::otlp`].
//! * [`Format::PrometheusRemoteWrite`] — Prometheus remote-write bodies (snappy + protobuf
//!   `WriteRequest`), as the daemon's `POST /api/v1/write` receiver produces them; see
//!   [`super::remote_write`].
//!
//! A message is atomic: either all its points are decoded or none (the error says why and
//! where). Strings are borrowed from the payload; resolving a known series allocates
//! nothing, so steady-state decoding does not allocate per point.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

use super::timestamp::{check_ts, MICROS_BELOW};
pub use super::timestamp::{epoch_int_to_ms, epoch_to_ms};
use crate::store::segment::PointColumns;
use crate::store::series::{sort_tags, SeriesLimits, SeriesRegistry};

/// Payload format of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Json,
    Influx,
    PrometheusJson,
    OtlpProto,
    OtlpJson,
    PrometheusRemoteWrite,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Influx => "influx",
            Format::PrometheusJson => "prometheus-json",
            Format::OtlpProto => "otlp-proto",
            Format::OtlpJson => "otlp-json",
            Format::PrometheusRemoteWrite => "prometheus-remote-write",
        }
    }
}

pub use super::decode_error::DecodeError;

/// Decodes payloads of one format into point columns.
pub struct Decoder {
    format: Format,
    max_message_bytes: usize,
    limits: SeriesLimits,
    metric_buf: String,
    otlp_cache: super::otlp::SeriesCache,
}

impl Decoder {
    pub fn new(format: Format, max_message_bytes: usize) -> Self {
        Decoder {
            format,
            max_message_bytes,
            limits: SeriesLimits::default(),
            metric_buf: String::new(),
            otlp_cache: Default::default(),
        }
    }

    /// Refuse messages that would create series beyond `limits` (the store's settings).
    pub fn with_limits(mut self, limits: SeriesLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Decode one message, appending its points to `out`. On error `out` is left as it was.
    /// `fallback_ts_ms` is used for line-protocol points without a timestamp (the Kafka
    /// message timestamp).
    pub fn decode(
        &mut self,
        payload: &[u8],
        fallback_ts_ms: Option<i64>,
        registry: &mut SeriesRegistry,
        out: &mut PointColumns,
    ) -> Result<usize, DecodeError> {
        if payload.len() > self.max_message_bytes {
            return Err(DecodeError::new(format!(
                "message of {} bytes exceeds max-message-bytes ({})",
                payload.len(),
                self.max_message_bytes
            )));
        }
        let before = out.len();
        let result = match self.format {
            Format::Json | Format::PrometheusJson => {
                decode_json(payload, self.format, &self.limits, registry, out)
            }
            Format::Influx => {
                let text = std::str::from_utf8(payload).map_err(|e| {
                    DecodeError::new(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
                })?;
                let limits = &self.limits;
                decode_influx(
                    text,
                    fallback_ts_ms,
                    &mut self.metric_buf,
                    limits,
                    registry,
                    out,
                )
            }
            Format::OtlpProto | Format::OtlpJson => {
                let req = if self.format == Format::OtlpProto {
                    super::otlp::parse_proto(payload)?
                } else {
                    super::otlp::parse_json(payload)?
                };
                super::otlp::points(
                    &req,
                    fallback_ts_ms,
                    &self.limits,
                    registry,
                    out,
                    &mut self.otlp_cache,
                )
            }
            Format::PrometheusRemoteWrite => {
                let req =
                    super::remote_write::parse(payload, self.max_message_bytes.saturating_mul(8))?;
                super::remote_write::points(&req, &self.limits, registry, out)
            }
        };
        match result {
            Ok(()) => Ok(out.len() - before),
            Err(e) => {
                out.truncate(before);
                Err(e)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON and Prometheus JSON

struct Ctx<'r> {
    format: Format,
    limits: &'r SeriesLimits,
    registry: &'r mut SeriesRegistry,
    out: &'r mut PointColumns,
    points: usize,
}

fn decode_json(
    payload: &[u8],
    format: Format,
    limits: &SeriesLimits,
    registry: &mut SeriesRegistry,
    out: &mut PointColumns,
) -> Result<(), DecodeError> {
    let mut ctx = Ctx {
        format,
        limits,
        registry,
        out,
        points: 0,
    };
    // One UTF-8 check for the whole message lets serde_json skip it for every string.
    let text = std::str::from_utf8(payload)
        .map_err(|e| DecodeError::new(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    if format == Format::Json && ctx.registry_fast_path(text) {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    loop {
        Top(&mut ctx)
            .deserialize(&mut de)
            .map_err(|e| json_error(e, payload))?;
        if de.end().is_ok() {
            break;
        }
    }
    Ok(())
}

impl Ctx<'_> {
    /// The fast path for the common message shape (see `fast_json`); `false` if it declined.
    fn registry_fast_path(&mut self, text: &str) -> bool {
        FAST_PATH.with(|on| on.get())
            && super::fast_json::decode(text, self.limits, self.registry, self.out).is_ok()
    }
}

thread_local! {
    /// Tests switch the fast path off to compare it with the general decoder.
    static FAST_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

fn json_error(e: serde_json::Error, payload: &[u8]) -> DecodeError {
    if e.classify() == serde_json::error::Category::Eof
        && payload.iter().all(u8::is_ascii_whitespace)
    {
        return DecodeError::new("empty message");
    }
    // serde_json's messages already end with "at line L column C"
    DecodeError::new(format!("invalid JSON point: {e}"))
}

/// A top-level value: a point object or an array of them.
struct Top<'a, 'r>(&'a mut Ctx<'r>);

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a point object or an array of point objects")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        PointVisitor(self.0).visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(PointSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct PointSeed<'a, 'r>(&'a mut Ctx<'r>);

impl<'de> DeserializeSeed<'de> for PointSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(PointVisitor(self.0))
    }
}

/// A string that may borrow from the payload.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            // tag values that are numbers or booleans are kept as their text
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// A timestamp: a number of epoch seconds, milliseconds, microseconds or nanoseconds (told
/// apart by magnitude, see [`epoch_to_ms`]) or RFC 3339 text.
struct Ts(i64);

impl<'de> de::Deserialize<'de> for Ts {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "epoch seconds, milliseconds, microseconds or nanoseconds, or an RFC 3339 time",
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ts, E> {
                epoch_int_to_ms(i64::try_from(v).unwrap_or(i64::MAX))
                    .map(Ts)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ts, E> {
                epoch_int_to_ms(v).map(Ts).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ts, E> {
                epoch_to_ms(v).map(Ts).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ts, E> {
                parse_rfc3339(v).map(Ts).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t =
        chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("bad timestamp {s:?}: {e}"))?;
    check_ts(t.timestamp_millis())
}

/// A sample value: a number, or (as text) a number, `"NaN"`. Infinities are rejected.
struct Sample(f64);

impl<'de> de::Deserialize<'de> for Sample {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sample;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or \"NaN\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Sample, E> {
                Ok(Sample(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Sample, E> {
                Ok(Sample(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Sample, E> {
                Ok(Sample(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Sample, E> {
                parse_sample_text(v).map(Sample).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_sample_text(v: &str) -> Result<f64, String> {
    if v == "NaN" {
        return Ok(f64::NAN);
    }
    let x: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("value {v:?} is not a number"))?;
    if x.is_nan() {
        return Ok(f64::NAN);
    }
    if !x.is_finite() {
        return Err(format!("value {v:?} is infinite (not allowed)"));
    }
    Ok(x)
}

/// Tags of one point: inline up to 12, so decoding does not allocate per point.
type TagList<'de> = SmallVec<[(Cow<'de, str>, Cow<'de, str>); 12]>;

/// The `tags` / `labels` object.
struct Tags<'a, 'de>(&'a mut TagList<'de>, bool);

impl<'de> DeserializeSeed<'de> for Tags<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Tags<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tag values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let skip_name = self.1;
        while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
            let Text(v) = map.next_value::<Text<'de>>()?;
            if skip_name && k == "__name__" {
                continue;
            }
            self.0.push((k, v));
        }
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct PointVisitor<'a, 'r>(&'a mut Ctx<'r>);

impl<'de> Visitor<'de> for PointVisitor<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a point object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.0;
        let prom = ctx.format == Format::PrometheusJson;
        let (name_key, ts_key, tags_key) = if prom {
            ("name", "timestamp", "labels")
        } else {
            ("metric", "ts", "tags")
        };
        let mut metric: Option<Cow<'de, str>> = None;
        let mut ts: Option<i64> = None;
        let mut value: Option<f64> = None;
        let mut tags: TagList<'de> = SmallVec::new();
        let mut name_label: Option<Cow<'de, str>> = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            match key.as_ref() {
                k if k == name_key => metric = Some(map.next_value::<Text<'de>>()?.0),
                k if k == ts_key => ts = Some(map.next_value::<Ts>()?.0),
                "value" => value = Some(map.next_value::<Sample>()?.0),
                k if k == tags_key => {
                    if prom {
                        // keep __name__ aside: it names the metric when "name" is absent
                        let mut all = TagList::new();
                        map.next_value_seed(Tags(&mut all, false))?;
                        for (k, v) in all {
                            if k == "__name__" {
                                name_label = Some(v);
                            } else {
                                tags.push((k, v));
                            }
                        }
                    } else {
                        map.next_value_seed(Tags(&mut tags, false))?;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let metric = metric
            .or(name_label)
            .ok_or_else(|| de::Error::custom(format!("missing field `{name_key}`")))?;
        if metric.is_empty() {
            return Err(de::Error::custom(format!("empty `{name_key}`")));
        }
        let ts = ts.ok_or_else(|| de::Error::custom(format!("missing field `{ts_key}`")))?;
        let value = value.ok_or_else(|| de::Error::custom("missing field `value`"))?;
        let mut sorted: SmallVec<[(&str, &str); 12]> =
            tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        sort_tags(&mut sorted);
        let series = ctx
            .registry
            .try_resolve(&metric, &sorted, ctx.limits)
            .map_err(|e| de::Error::custom(format!("point {}: {e}", ctx.points + 1)))?;
        ctx.out.push(series, ts, value);
        ctx.points += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Influx line protocol

fn decode_influx(
    text: &str,
    fallback_ts_ms: Option<i64>,
    metric_buf: &mut String,
    limits: &SeriesLimits,
    registry: &mut SeriesRegistry,
    out: &mut PointColumns,
) -> Result<(), DecodeError> {
    let mut any = false;
    for (n, line) in text.split('\n').enumerate() {
        let line = line.trim_end_matches('\r').trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        decode_line(line, fallback_ts_ms, metric_buf, limits, registry, out)
            .map_err(|e| DecodeError::new(format!("line {}: {}", n + 1, e.reason)))?;
        any = true;
    }
    if !any {
        return Err(DecodeError::new("empty message"));
    }
    Ok(())
}

/// Split at the first unescaped `delim` (outside double quotes when `quotes`).
fn split_unescaped<'a>(
    s: &'a str,
    delims: &[u8],
    quotes: bool,
) -> (&'a str, Option<(u8, &'a str)>) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_q = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            i += 2;
            continue;
        }
        if quotes && c == b'"' {
            in_q = !in_q;
        } else if !in_q && delims.contains(&c) {
            return (&s[..i], Some((c, &s[i + 1..])));
        }
        i += 1;
    }
    (s, None)
}

fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ (',' | '=' | ' ' | '"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn decode_line(
    line: &str,
    fallback_ts_ms: Option<i64>,
    metric_buf: &mut String,
    limits: &SeriesLimits,
    registry: &mut SeriesRegistry,
    out: &mut PointColumns,
) -> Result<(), DecodeError> {
    // measurement[,tags] fields [timestamp]
    let (series_part, rest) = split_unescaped(line, b" ", false);
    let Some((_, rest)) = rest else {
        return Err(DecodeError::new(
            "missing fields (expected `measurement[,tag=value...] field=value[,...] [timestamp]`)",
        ));
    };
    let (fields_part, rest) = split_unescaped(rest.trim_start(), b" ", true);
    let ts_ms = match rest.map(|(_, r)| r.trim()) {
        None | Some("") => fallback_ts_ms
            .ok_or_else(|| DecodeError::new("no timestamp and no message timestamp"))?,
        Some(t) => {
            let ns: i64 = t.parse().map_err(|_| {
                DecodeError::new(format!("bad timestamp {t:?} (nanoseconds expected)"))
            })?;
            if ns < MICROS_BELOW as i64 {
                return Err(DecodeError::new(format!(
                    "timestamp {ns} is before 1973 as nanoseconds: line protocol timestamps are epoch nanoseconds (Telegraf's default precision)"
                )));
            }
            check_ts(ns.div_euclid(1_000_000)).map_err(DecodeError::new)?
        }
    };
    let (measurement, mut tag_rest) = split_unescaped(series_part, b",", false);
    if measurement.is_empty() {
        return Err(DecodeError::new("empty measurement"));
    }
    let measurement = unescape(measurement);
    let mut tags: SmallVec<[(Cow<'_, str>, Cow<'_, str>); 12]> = SmallVec::new();
    while let Some((_, r)) = tag_rest {
        let (pair, next) = split_unescaped(r, b",", false);
        let (k, v) = split_unescaped(pair, b"=", false);
        let Some((_, v)) = v else {
            return Err(DecodeError::new(format!("tag {pair:?} has no `=`")));
        };
        if k.is_empty() || v.is_empty() {
            return Err(DecodeError::new(format!(
                "empty tag key or value in {pair:?}"
            )));
        }
        tags.push((unescape(k), unescape(v)));
        tag_rest = next;
    }
    let mut sorted: SmallVec<[(&str, &str); 12]> =
        tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    sort_tags(&mut sorted);
    if fields_part.is_empty() {
        return Err(DecodeError::new("no fields"));
    }
    let mut field_rest = Some((b',', fields_part));
    let mut fields = 0;
    while let Some((_, r)) = field_rest {
        let (pair, next) = split_unescaped(r, b",", true);
        field_rest = next;
        let (k, v) = split_unescaped(pair, b"=", true);
        let Some((_, raw)) = v else {
            return Err(DecodeError::new(format!("field {pair:?} has no `=`")));
        };
        if k.is_empty() {
            return Err(DecodeError::new(format!("empty field key in {pair:?}")));
        }
        let Some(value) = field_value(raw)? else {
            continue;
        };
        metric_buf.clear();
        metric_buf.push_str(&measurement);
        metric_buf.push('.');
        metric_buf.push_str(&unescape(k));
        let series = registry
            .try_resolve(metric_buf, &sorted, limits)
            .map_err(DecodeError::new)?;
        out.push(series, ts_ms, value);
        fields += 1;
    }
    let _ = fields;
    Ok(())
}

/// A field value as a sample; `None` for string fields (not samples).
fn field_value(raw: &str) -> Result<Option<f64>, DecodeError> {
    if raw.is_empty() {
        return Err(DecodeError::new("empty field value"));
    }
    if raw.starts_with('"') {
        if raw.len() < 2 || !raw.ends_with('"') {
            return Err(DecodeError::new(format!(
                "unterminated string field {raw:?}"
            )));
        }
        return Ok(None);
    }
    let v = match raw {
        "t" | "T" | "true" | "True" | "TRUE" => 1.0,
        "f" | "F" | "false" | "False" | "FALSE" => 0.0,
        _ => {
            let (num, kind) = match raw.as_bytes()[raw.len() - 1] {
                b'i' => (&raw[..raw.len() - 1], 'i'),
                b'u' => (&raw[..raw.len() - 1], 'u'),
                _ => (raw, 'f'),
            };
            let bad = || DecodeError::new(format!("bad field value {raw:?}"));
            match kind {
                'i' => num.parse::<i64>().map_err(|_| bad())? as f64,
                'u' => num.parse::<u64>().map_err(|_| bad())? as f64,
                _ => {
                    let x: f64 = num.parse().map_err(|_| bad())?;
                    if !x.is_finite() {
                        return Err(DecodeError::new(format!(
                            "field value {raw:?} is not finite"
                        )));
                    }
                    x
                }
            }
        }
    };
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: Format, payload: &str) -> Result<Vec<(String, i64, f64)>, DecodeError> {
        let mut reg = SeriesRegistry::new();
        let mut out = PointColumns::default();
        let mut d = Decoder::new(format, 1 << 20);
        d.decode(payload.as_bytes(), Some(1_000), &mut reg, &mut out)?;
        Ok((0..out.len())
            .map(|i| {
                (
                    reg.key(out.series[i]).unwrap().display(),
                    out.ts[i],
                    out.value[i],
                )
            })
            .collect())
    }

    #[test]
    fn json_object_array_and_ndjson() {
        let one = r#"{"metric": "http.latency_ms", "ts": 1763766000123, "value": 12.5,
                      "tags": {"app": "checkout", "version": "v42", "instance": "i-7"}}"#;
        let got = run(Format::Json, one).unwrap();
        assert_eq!(
            got,
            vec![(
                "http.latency_ms{app=checkout,instance=i-7,version=v42}".into(),
                1763766000123,
                12.5
            )]
        );
        let arr = r#"[{"metric":"a","ts":"2026-11-21T23:00:00Z","value":1},{"metric":"a","ts":1,"value":"NaN","tags":{"k":"v"}}]"#;
        let got = run(Format::Json, arr).unwrap();
        assert_eq!(got[0], ("a{}".into(), 1795302000000, 1.0));
        assert!(got[1].2.is_nan());
        let nd = "{\"metric\":\"a\",\"ts\":5,\"value\":2}\n{\"metric\":\"b\",\"ts\":6,\"value\":3,\"extra\":[1,{}]}\n";
        assert_eq!(run(Format::Json, nd).unwrap().len(), 2);
        let escaped = r#"{"metric":"a\"q","ts":5,"value":2,"tags":{"k\n":"v\u00e9","n":3}}"#;
        assert_eq!(run(Format::Json, escaped).unwrap()[0].0, "a\"q{k\n=vé,n=3}");
    }

    /// The fast path and the serde path decode the same inputs to the same points.
    #[test]
    fn fast_path_agrees_with_serde() {
        let inputs = [
            r#"{"metric":"a","ts":1,"value":1.5,"tags":{"b":"2","a":"1"}}"#,
            r#"[ {"metric":"a","ts":1,"value":-0,"tags":{}} , {"value":"NaN","ts":2,"metric":"a"} ]"#,
            "{\"metric\":\"a\",\"ts\":5,\"value\":2e3}\n\n{\"metric\":\"b\",\"ts\":6,\"value\":18446744073709551615}\n",
            r#"{"metric":"a","ts":1,"value":1,"tags":{"k":"x"},"tags":{"k":"y","j":"z"}}"#,
            r#"{"metric":"a","metric":"b","ts":1,"value":-12345678901234}"#,
            r#"[]"#,
            r#"{"metric":"a","ts":1,"value":1.0000000000000002}"#,
            r#"{"metric":"é","ts":1,"value":0.1,"tags":{"ü":"ß"}}"#,
        ];
        for input in inputs {
            let fast = run(Format::Json, input);
            FAST_PATH.with(|f| f.set(false));
            let slow = run(Format::Json, input);
            FAST_PATH.with(|f| f.set(true));
            let (fast, slow) = (fast.unwrap(), slow.unwrap());
            assert_eq!(fast.len(), slow.len(), "{input}");
            for (a, b) in fast.iter().zip(&slow) {
                assert_eq!((&a.0, a.1), (&b.0, b.1), "{input}");
                assert_eq!(a.2.to_bits(), b.2.to_bits(), "{input}");
            }
        }
        // and it takes the fast path for them (declining only on escapes, other keys, RFC 3339)
        let mut reg = SeriesRegistry::new();
        let mut out = PointColumns::default();
        assert!(super::super::fast_json::decode(
            inputs[0],
            &SeriesLimits::default(),
            &mut reg,
            &mut out
        )
        .is_ok());
        assert!(super::super::fast_json::decode(
            r#"{"metric":"a\"","ts":1,"value":1}"#,
            &SeriesLimits::default(),
            &mut reg,
            &mut out
        )
        .is_err());
        assert!(super::super::fast_json::decode(
            r#"{"metric":"a","ts":"2026-01-01T00:00:00Z","value":1}"#,
            &SeriesLimits::default(),
            &mut reg,
            &mut out
        )
        .is_err());
    }

    #[test]
    fn json_errors_are_atomic_and_say_why() {
        let mut reg = SeriesRegistry::new();
        let mut out = PointColumns::default();
        let mut d = Decoder::new(Format::Json, 1 << 20);
        d.decode(
            br#"{"metric":"a","ts":1,"value":1}"#,
            None,
            &mut reg,
            &mut out,
        )
        .unwrap();
        for (payload, want) in [
            (
                r#"[{"metric":"a","ts":1,"value":1},{"metric":"a","ts":2}]"#,
                "missing field `value`",
            ),
            (r#"{"metric":"a","ts":1,"value":"Infinity"}"#, "infinite"),
            (
                r#"{"metric":"a","ts":"yesterday","value":1}"#,
                "bad timestamp",
            ),
            (
                r#"{"metric":"a","ts":-5,"value":1}"#,
                "is not a time (expected epoch seconds",
            ),
            (
                r#"{"metric":"a","ts":1e30,"value":1}"#,
                "outside 1970..10000",
            ),
            (r#"{"ts":1,"value":1}"#, "missing field `metric`"),
            (r#"{"metric":"a","ts":1,"value":1e999}"#, "invalid JSON"),
            ("{\"metric\":\"a\",", "invalid JSON"),
            ("   ", "empty message"),
            (
                r#"{"metric":"a","ts":1,"value":true}"#,
                "a number or \"NaN\"",
            ),
        ] {
            let e = d
                .decode(payload.as_bytes(), None, &mut reg, &mut out)
                .unwrap_err();
            assert!(e.reason.contains(want), "{payload}: {}", e.reason);
            assert_eq!(out.len(), 1, "nothing of a bad message is kept");
        }
        let mut small = Decoder::new(Format::Json, 10);
        assert!(small
            .decode(
                br#"{"metric":"a","ts":1,"value":1}"#,
                None,
                &mut reg,
                &mut out
            )
            .unwrap_err()
            .reason
            .contains("exceeds"));
    }

    /// Numeric JSON timestamps in any unit, told apart by magnitude.
    #[test]
    fn epoch_units_by_magnitude() {
        let want = 1_795_302_000_123; // 2026-11-21T23:00:00.123Z
        for ts in [
            "1795302000.123",
            "1795302000123",
            "1795302000123.9",
            "1795302000123456",
            "1795302000123456789",
            "\"2026-11-21T23:00:00.123Z\"",
            "\"2026-11-22T00:00:00.123+01:00\"",
        ] {
            let payload = format!(r#"{{"metric":"a","ts":{ts},"value":1}}"#);
            let got = run(Format::Json, &payload).unwrap();
            assert_eq!(got[0].1, want, "{ts}");
            FAST_PATH.with(|f| f.set(false));
            let slow = run(Format::Json, &payload).unwrap();
            FAST_PATH.with(|f| f.set(true));
            assert_eq!(slow[0].1, want, "{ts} (serde path)");
        }
        assert_eq!(
            epoch_to_ms(1795302000.0),
            Ok(1_795_302_000_000),
            "whole seconds"
        );
        assert_eq!(
            epoch_to_ms(0.5),
            Ok(500),
            "1970 is still a time: the intake refuses it"
        );
        assert_eq!(
            epoch_int_to_ms(99_999_999_999),
            Ok(99_999_999_999_000),
            "10^11 − 1 s: year 5138"
        );
        assert_eq!(
            epoch_int_to_ms(100_000_000_000),
            Ok(100_000_000_000),
            "10^11 ms: 1973"
        );
    }

    #[test]
    fn line_protocol() {
        let got = run(
            Format::Influx,
            "http,app=checkout,version=v42 latency_ms=12.5,count=3i 1763766000123000000",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                (
                    "http.latency_ms{app=checkout,version=v42}".into(),
                    1763766000123,
                    12.5
                ),
                (
                    "http.count{app=checkout,version=v42}".into(),
                    1763766000123,
                    3.0
                ),
            ]
        );
        let esc = "my\\ meas\\,x,ta\\=g=va\\ l\\,ue f\\ 1=1u,ok=t,s=\"a, b=c\",n=-2e3 1795302000009000000\n# comment\n\ncpu v=1";
        let got = run(Format::Influx, esc).unwrap();
        assert_eq!(
            got[0],
            ("my meas,x.f 1{ta=g=va l,ue}".into(), 1795302000009, 1.0)
        );
        assert_eq!(got[1].2, 1.0);
        assert_eq!(
            got[2],
            ("my meas,x.n{ta=g=va l,ue}".into(), 1795302000009, -2000.0)
        );
        assert_eq!(
            got[3],
            ("cpu.v{}".into(), 1000, 1.0),
            "no timestamp: the message's"
        );
        for (payload, want) in [
            ("cpu", "missing fields"),
            ("cpu v=abc 1795302000000000000", "bad field value"),
            ("cpu v=1 notanumber", "bad timestamp"),
            ("cpu,tag v=1", "has no `=`"),
            ("cpu v=1i2 1795302000000000000", "bad field value"),
            ("cpu v=\"open 1795302000000000000", "unterminated"),
            ("cpu v=inf 1795302000000000000", "not finite"),
            ("cpu v=1 1795302000", "timestamp 1795302000 is before 1973 as nanoseconds: line protocol timestamps are epoch nanoseconds"),
        ] {
            let e = run(Format::Influx, payload).unwrap_err();
            assert!(e.reason.contains(want), "{payload}: {}", e.reason);
            assert!(e.reason.starts_with("line 1:"));
        }
        assert!(run(Format::Influx, "ok v=1 1795302000000000000\nbad")
            .unwrap_err()
            .reason
            .starts_with("line 2:"));
    }

    #[test]
    fn prometheus_json() {
        let p = r#"{"timestamp": "2026-11-21T23:00:00Z", "value": "12.5", "name": "http_latency",
                    "labels": {"__name__": "http_latency", "app": "checkout"}}"#;
        assert_eq!(
            run(Format::PrometheusJson, p).unwrap(),
            vec![("http_latency{app=checkout}".into(), 1795302000000, 12.5)]
        );
        let nameless = r#"{"timestamp": "2026-11-21T23:00:00.250+01:00", "value": "NaN", "labels": {"__name__": "up"}}"#;
        let got = run(Format::PrometheusJson, nameless).unwrap();
        assert_eq!((got[0].0.as_str(), got[0].1), ("up{}", 1795298400250));
        assert!(run(
            Format::PrometheusJson,
            r#"{"timestamp":"2026-11-21T23:00:00Z","value":"+Inf","name":"x"}"#
        )
        .is_err());
    }

    #[test]
    fn series_beyond_the_limits_are_refused_with_the_reason_and_leave_nothing() {
        let limits = SeriesLimits {
            max_tags: 3,
            max_tag_keys: 4,
            max_name_bytes: 10,
            max_value_bytes: 5,
        };
        let mut reg = SeriesRegistry::new();
        let mut out = PointColumns::default();
        let mut decode = |format: Format, payload: &str| {
            let mut d = Decoder::new(format, 1 << 20).with_limits(limits);
            let before = out.len();
            let r = d.decode(payload.as_bytes(), Some(1_000), &mut reg, &mut out);
            assert!(
                r.is_ok() || out.len() == before,
                "nothing appended on error"
            );
            r.map_err(|e| e.reason)
        };
        let tags = |n: usize| {
            (0..n)
                .map(|i| format!("\"k{i}\": \"v\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let json = |metric: &str, tags: String| {
            format!(
                r#"[{{"metric": "ok", "ts": 1, "value": 1}}, {{"metric": "{metric}", "ts": 1, "value": 1, "tags": {{{tags}}}}}]"#
            )
        };
        for fast in [true, false] {
            FAST_PATH.with(|f| f.set(fast));
            let e = decode(Format::Json, &json("m", tags(4))).unwrap_err();
            assert!(e.contains("point 2: metric 'm': 4 tags; a point may carry at most 3 (store.max-tags-per-point)"), "{e}");
            let e = decode(Format::Json, &json("a_very_long_name", tags(0))).unwrap_err();
            assert!(e.contains("metric name \"a_very_long_name\"… is 16 bytes, longer than store.max-name-bytes (10)"), "{e}");
            let e = decode(Format::Json, &json("m", "\"k\": \"toolong\"".into())).unwrap_err();
            assert!(e.contains("tag 'k': value \"toolong\"… is 7 bytes, longer than store.max-tag-value-bytes (5)"), "{e}");
            FAST_PATH.with(|f| f.set(true));
        }
        decode(Format::Json, &json("m", tags(3))).unwrap();
        // k0..k2 are known; k3 is the 4th key, k4 and k5 would be the 5th and 6th.
        decode(Format::Influx, "m,k3=a f=1").unwrap();
        let e = decode(Format::Influx, "m,k4=a,k5=b f=1").unwrap_err();
        assert!(e.contains("line 1: metric 'm.f': tag key 'k4' would be distinct tag key number 5 of the store; store.max-tag-keys is 4"), "{e}");
        // Known series and keys are never refused.
        decode(Format::Influx, "m,k0=v,k1=v,k2=v f=2").unwrap();
        assert_eq!(reg.tag_keys().count(), 4);
    }
}
