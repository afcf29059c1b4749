//! Prometheus remote-write 1.0 (`prometheus.WriteRequest`, snappy block-compressed
//! protobuf) → points.
//!
//! The messages are Prometheus's `prompb/remote.proto` and `prompb/types.proto` declared for
//! prost (the fields remote-write 1.0 sends; exemplars and metadata are skipped as unknown
//! fields). Each series is one metric: `__name__` is the metric, the other labels are its
//! tags. Prometheus's staleness marker (a NaN with the bit pattern `0x7ff0000000000002`,
//! written when a target or series goes away) is not a sample and is skipped. Native
//! histograms are refused with the series named: coalmine stores classic histograms (the
//! `_bucket{le}` series every Prometheus sends by default).

use prost::Message;
use smallvec::SmallVec;

use super::decode_error::DecodeError;
use super::timestamp::check_ts;
use crate::store::segment::PointColumns;
use crate::store::series::{sort_tags, SeriesLimits, SeriesRegistry};

/// Prometheus's staleness marker (`value.StaleNaN`).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms, kept undecoded: only their presence matters (refused).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a Unix time in milliseconds.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The `WriteRequest` of a remote-write body: snappy (block format) then protobuf. A body
/// whose uncompressed length is over `max_bytes` is refused before it is decompressed.
pub fn parse(body: &[u8], max_bytes: usize) -> Result<WriteRequest, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| {
        DecodeError::new(format!(
            "not a snappy-compressed remote-write body ({} bytes): {e}",
            body.len()
        ))
    })?;
    if len > max_bytes {
        return Err(DecodeError::new(format!(
            "the remote-write body decompresses to {len} bytes, over the limit of {max_bytes}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| {
            DecodeError::new(format!("corrupt snappy data in the remote-write body: {e}"))
        })?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| {
        DecodeError::new(format!(
            "not a remote-write WriteRequest protobuf ({} bytes after snappy): {e}",
            raw.len()
        ))
    })
}

/// A `WriteRequest` as a remote-write body (for tests, benches and the demo).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy compresses any input that fits in memory")
}

/// How many samples `req` holds.
pub fn samples(req: &WriteRequest) -> usize {
    req.timeseries.iter().map(|t| t.samples.len()).sum()
}

/// The points of `req`, appended to `out`.
pub fn points(
    req: &WriteRequest,
    limits: &SeriesLimits,
    registry: &mut SeriesRegistry,
    out: &mut PointColumns,
) -> Result<(), DecodeError> {
    each_series(req, |i, name, tags, samples| {
        let series = registry
            .try_resolve(name, tags, limits)
            .map_err(|e| DecodeError::new(format!("timeseries[{i}]: {e}")))?;
        for &(t, v) in samples {
            out.push(series, t, v);
        }
        Ok(())
    })
}

/// Whether every series of `req` can be stored — what [`points`] checks, but the
/// store-wide count of tag keys — without registering any: the receiver's check of a
/// request. Returns its sample count.
pub fn check(req: &WriteRequest, limits: &SeriesLimits) -> Result<usize, DecodeError> {
    let mut n = 0;
    each_series(req, |i, name, tags, samples| {
        limits
            .check(name, tags)
            .map_err(|e| DecodeError::new(format!("timeseries[{i}]: {e}")))?;
        n += samples.len();
        Ok(())
    })?;
    Ok(n)
}

/// Each series of `req` with its index, metric name, sorted tags and samples (checked
/// timestamps, staleness markers skipped).
fn each_series(
    req: &WriteRequest,
    mut f: impl FnMut(usize, &str, &[(&str, &str)], &[(i64, f64)]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut tags: SmallVec<[(&str, &str); 16]> = SmallVec::new();
    let mut samples: Vec<(i64, f64)> = Vec::new();
    for (i, ts) in req.timeseries.iter().enumerate() {
        let at = |reason: String| DecodeError::new(format!("timeseries[{i}]: {reason}"));
        let mut name = None;
        tags.clear();
        for l in &ts.labels {
            if l.name == "__name__" {
                name = Some(l.value.as_str());
            } else if !l.value.is_empty() {
                tags.push((l.name.as_str(), l.value.as_str()));
            }
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(at(format!(
                "no __name__ label (labels {:?})",
                ts.labels
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
            )));
        };
        if !ts.histograms.is_empty() {
            return Err(at(format!(
                "{name}: native histograms are not supported; send classic histograms (the _bucket series), which Prometheus does unless `send_native_histograms` is on"
            )));
        }
        sort_tags(&mut tags);
        samples.clear();
        for s in ts.samples.iter().filter(|s| s.value.to_bits() != STALE_NAN) {
            let t = check_ts(s.timestamp).map_err(|e| at(format!("{name}: {e}")))?;
            samples.push((t, s.value));
        }
        f(i, name, &tags, &samples)?;
    }
    Ok(())
}
