//! Segments: immutable, sorted Arrow record batches of `(series, ts, value)`, written to the
//! data directory as Arrow IPC files and fsynced before anything refers to them.
//!
//! Rows are sorted by `(series, ts)` (arrival order kept for equal keys), and a series index
//! (`series → row range`) travels in the file's schema metadata together with the
//! definitions of the series it uses and the Kafka offsets it covers, so a segment file is
//! self-describing: the store can be rebuilt from the files the manifest lists.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};

use super::series::SeriesKey;
use super::StoreError;
use crate::error::kind::IoError;

/// Schema of stored points.
pub fn point_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series", DataType::UInt32, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// Kafka offsets covered: topic → partition → `[first, next)`.
pub type Offsets = BTreeMap<String, BTreeMap<i32, OffsetRange>>;

/// A half-open range of offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    pub first: i64,
    pub next: i64,
}

/// Merge `b` into `a`.
pub fn merge_offsets(a: &mut Offsets, b: &Offsets) {
    for (topic, parts) in b {
        let entry = a.entry(topic.clone()).or_default();
        for (&p, r) in parts {
            entry
                .entry(p)
                .and_modify(|e| {
                    e.first = e.first.min(r.first);
                    e.next = e.next.max(r.next);
                })
                .or_insert(*r);
        }
    }
}

/// Rows of one series in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRange {
    pub series: u32,
    pub start: u32,
    pub len: u32,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// What the manifest and the file both know of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub id: u64,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    #[serde(default)]
    pub offsets: Offsets,
}

/// Metadata stored inside the segment file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileMeta {
    version: u32,
    id: u64,
    min_ts: i64,
    max_ts: i64,
    offsets: Offsets,
    series: Vec<(u32, SeriesKey)>,
    index: Vec<SeriesRange>,
}

const META_KEY: &str = "coalmine.segment";
const FORMAT_VERSION: u32 = 1;

/// Columns of points not yet in a segment.
#[derive(Debug, Default, Clone)]
pub struct PointColumns {
    pub series: Vec<u32>,
    pub ts: Vec<i64>,
    pub value: Vec<f64>,
}

impl PointColumns {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn push(&mut self, series: u32, ts: i64, value: f64) {
        self.series.push(series);
        self.ts.push(ts);
        self.value.push(value);
    }

    pub fn extend(&mut self, other: &PointColumns) {
        self.series.extend_from_slice(&other.series);
        self.ts.extend_from_slice(&other.ts);
        self.value.extend_from_slice(&other.value);
    }

    /// Keep the first `len` points.
    pub fn truncate(&mut self, len: usize) {
        self.series.truncate(len);
        self.ts.truncate(len);
        self.value.truncate(len);
    }

    pub fn clear(&mut self) {
        self.series.clear();
        self.ts.clear();
        self.value.clear();
    }

    /// Heap bytes held.
    pub fn capacity_bytes(&self) -> usize {
        self.series.capacity() * 4 + self.ts.capacity() * 8 + self.value.capacity() * 8
    }
}

/// Sort points by `(series, ts)` (stable) into a record batch and its series index.
pub fn build_sorted(points: &PointColumns) -> (RecordBatch, Vec<SeriesRange>) {
    let order = sort_order(points);
    let series: Vec<u32> = order.iter().map(|&i| points.series[i as usize]).collect();
    debug_assert!(series.windows(2).all(|w| w[0] <= w[1]));
    let ts: Vec<i64> = order.iter().map(|&i| points.ts[i as usize]).collect();
    let value: Vec<f64> = order.iter().map(|&i| points.value[i as usize]).collect();
    let index = index_of(&series, &ts);
    let batch = RecordBatch::try_new(
        point_schema(),
        vec![
            Arc::new(UInt32Array::from(series)) as ArrayRef,
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")) as ArrayRef,
            Arc::new(Float64Array::from(value)) as ArrayRef,
        ],
    )
    .expect("columns match the point schema");
    (batch, index)
}

/// The stable `(series, ts)` order of the points. Streams arrive nearly time-ordered per
/// series, so a counting sort by series followed by a check (and, rarely, a sort) of each
/// series' times beats a comparison sort of the whole buffer by a wide margin.
fn sort_order(points: &PointColumns) -> Vec<u32> {
    let n = points.len();
    let max_series = points
        .series
        .iter()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    if max_series > 4 * n + 1024 {
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| (points.series[i as usize], points.ts[i as usize]));
        return order;
    }
    let mut start = vec![0u32; max_series + 1];
    for &s in &points.series {
        start[s as usize + 1] += 1;
    }
    for k in 1..start.len() {
        start[k] += start[k - 1];
    }
    let mut order = vec![0u32; n];
    let mut next = start.clone();
    for (i, &s) in points.series.iter().enumerate() {
        order[next[s as usize] as usize] = i as u32;
        next[s as usize] += 1;
    }
    for w in start.windows(2) {
        let run = &mut order[w[0] as usize..w[1] as usize];
        if run
            .windows(2)
            .any(|p| points.ts[p[0] as usize] > points.ts[p[1] as usize])
        {
            run.sort_by_key(|&i| points.ts[i as usize]); // stable: arrival order kept for equal times
        }
    }
    order
}

/// The series index of sorted columns.
pub fn index_of(series: &[u32], ts: &[i64]) -> Vec<SeriesRange> {
    let mut index = Vec::new();
    let mut start = 0;
    while start < series.len() {
        let s = series[start];
        let mut end = start + 1;
        while end < series.len() && series[end] == s {
            end += 1;
        }
        index.push(SeriesRange {
            series: s,
            start: start as u32,
            len: (end - start) as u32,
            min_ts: ts[start],
            max_ts: ts[end - 1],
        });
        start = end;
    }
    index
}

/// The three columns of a point batch.
pub fn columns(batch: &RecordBatch) -> (&UInt32Array, &TimestampMillisecondArray, &Float64Array) {
    let s = batch
        .column(0)
        .as_any()
        .downcast_ref::<UInt32Array>()
        .expect("series column");
    let t = batch
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .expect("ts column");
    let v = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("value column");
    (s, t, v)
}

/// Write a segment file durably: write to `tmp/`, fsync, rename into `segments/`, fsync the
/// directory. Returns the file size.
#[allow(clippy::too_many_arguments)]
pub fn write(
    root: &Path,
    id: u64,
    batch: &RecordBatch,
    index: &[SeriesRange],
    series: Vec<(u32, SeriesKey)>,
    offsets: &Offsets,
    min_ts: i64,
    max_ts: i64,
) -> Result<(String, u64), StoreError> {
    let file_name = format!("{id:016}.arrow");
    let tmp = root.join("tmp").join(&file_name);
    let dest = root.join("segments").join(&file_name);
    let meta = FileMeta {
        version: FORMAT_VERSION,
        id,
        min_ts,
        max_ts,
        offsets: offsets.clone(),
        series,
        index: index.to_vec(),
    };
    let mut md = std::collections::HashMap::new();
    md.insert(
        META_KEY.to_string(),
        serde_json::to_string(&meta).expect("segment metadata serialises"),
    );
    let schema = Arc::new(Schema::new_with_metadata(
        point_schema().fields().clone(),
        md,
    ));
    let batch = batch
        .clone()
        .with_schema(schema.clone())
        .expect("same fields");
    let io = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::Io(IoError::new(format!("{what} {}", p.display()), e))
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(|e| io("cannot create", &tmp, e))?;
    let mut writer =
        FileWriter::try_new(super::checksum::Hashing::new(BufWriter::new(file)), &schema)
            .map_err(|e| StoreError::Arrow(e.to_string()))?;
    writer
        .write(&batch)
        .map_err(|e| StoreError::Arrow(e.to_string()))?;
    super::checksum::finish(&mut writer).map_err(|e| StoreError::Arrow(e.to_string()))?;
    let mut buf = writer
        .into_inner()
        .map_err(|e| StoreError::Arrow(e.to_string()))?
        .into_inner();
    buf.flush().map_err(|e| io("cannot write", &tmp, e))?;
    let file = buf
        .into_inner()
        .map_err(|e| io("cannot write", &tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io("cannot fsync", &tmp, e))?;
    let bytes = file
        .metadata()
        .map_err(|e| io("cannot stat", &tmp, e))?
        .len();
    drop(file);
    std::fs::rename(&tmp, &dest).map_err(|e| io("cannot rename into place", &dest, e))?;
    sync_dir(&root.join("segments"))?;
    Ok((file_name, bytes))
}

/// A segment read back from disk.
pub struct Loaded {
    pub batch: RecordBatch,
    pub index: Vec<SeriesRange>,
    pub series: Vec<(u32, SeriesKey)>,
    pub offsets: Offsets,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// Read a segment file, checking it is one of ours and internally consistent.
pub fn read(path: &Path) -> Result<Loaded, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: why,
    };
    let bytes = std::fs::read(path)
        .map_err(|e| StoreError::Io(IoError::new(format!("cannot read {}", path.display()), e)))?;
    let reader = FileReader::try_new(std::io::Cursor::new(&bytes[..]), None)
        .map_err(|e| corrupt(format!("not an Arrow IPC file: {e}")))?;
    super::checksum::verify(&bytes, reader.custom_metadata().get(super::checksum::KEY))
        .map_err(corrupt)?;
    let schema = reader.schema();
    let meta_json = schema
        .metadata()
        .get(META_KEY)
        .ok_or_else(|| corrupt("no coalmine segment metadata".into()))?;
    let meta: FileMeta = serde_json::from_str(meta_json)
        .map_err(|e| corrupt(format!("bad segment metadata: {e}")))?;
    if meta.version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "segment format version {} (this build reads {FORMAT_VERSION})",
            meta.version
        )));
    }
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| corrupt(format!("unreadable record batch: {e}")))?);
    }
    let batch = arrow::compute::concat_batches(&point_schema(), &batches)
        .map_err(|e| corrupt(e.to_string()))?;
    let batch = batch
        .with_schema(point_schema())
        .map_err(|e| corrupt(e.to_string()))?;
    let rows: u64 = meta.index.iter().map(|r| r.len as u64).sum();
    if rows != batch.num_rows() as u64 {
        return Err(corrupt(format!(
            "index covers {rows} rows, the file has {}",
            batch.num_rows()
        )));
    }
    Ok(Loaded {
        batch,
        index: meta.index,
        series: meta.series,
        offsets: meta.offsets,
        min_ts: meta.min_ts,
        max_ts: meta.max_ts,
    })
}

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        StoreError::Io(IoError::new(
            format!("cannot fsync directory {}", dir.display()),
            e,
        ))
    })
}

/// Path of a segment file.
pub fn path(root: &Path, file: &str) -> PathBuf {
    root.join("segments").join(file)
}

/// Bytes of a batch's buffers (what it costs in memory).
pub fn memory_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| c.get_array_memory_size())
        .sum()
}
