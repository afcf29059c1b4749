//! The embedded store: metric points as Arrow record batches, in memory and in segment files
//! under the data directory. No external database.
//!
//! ```text
//! append ─► active buffer ─flush─► sorted segment ─fsync, rename─► segments/NNN.arrow
//!                                        │                          manifest.json (atomic)
//!                                        └─► in memory while hot; read from disk when cold
//! ```
//!
//! * Points are `(series, ts, value)`: 20 bytes each; the series index (metric + tags) is
//!   [`SeriesRegistry`]. Segments are sorted by `(series, ts)` and carry a series → rows
//!   index and min/max times, so a window query for one series binary-searches instead of
//!   scanning.
//! * **No loss, no duplicates.** A flush makes a segment durable (file fsynced, renamed,
//!   manifest replaced atomically) together with the Kafka offsets of the messages whose
//!   points it holds; only then may those offsets be committed. Messages are atomic (all
//!   their points are in the same flush). After a crash the manifest says, per partition,
//!   the next offset not yet durable: the consumer skips anything before it, so replayed
//!   messages are not stored twice.
//! * Retention by age and by bytes; small segments are compacted into larger ones.

pub mod checksum;
pub mod manifest;
pub mod segment;
pub mod series;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, RecordBatch};

use crate::error::kind::{ErrorKind, IoError};
use crate::settings::{Kind, Setting, Values};
use manifest::{Durable, Manifest};
pub use segment::point_schema;
use segment::{
    build_sorted, columns, merge_offsets, OffsetRange, Offsets, PointColumns, SegmentMeta,
    SeriesRange,
};
pub use series::{sort_tags, SeriesKey, SeriesLimits, SeriesRegistry};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("data directory {} is in use by another coalmine process (lock file {})", dir.display(), dir.join("LOCK").display())]
    Locked { dir: PathBuf },
    #[error("{0}")]
    Arrow(String),
    #[error("{0}")]
    InvalidInput(String),
    /// Segments without the manifest that names them: starting empty would orphan them.
    #[error("data directory {} holds {segments} segment file(s) but no manifest.json; refusing to start rather than lose them. To recover, restore manifest.json from a backup, or move {} aside to start empty (points still in Kafka are read again)", dir.display(), dir.join("segments").display())]
    NoManifest { dir: PathBuf, segments: usize },
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Io(e) => e.kind(),
            StoreError::Locked { .. } => ErrorKind::Unavailable,
            StoreError::Corrupt { .. } | StoreError::Arrow(_) | StoreError::NoManifest { .. } => {
                ErrorKind::Internal
            }
            StoreError::InvalidInput(_) => ErrorKind::InvalidInput,
        }
    }
}

/// Store settings (the `[store]` section of `coalmine.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// Flush the active buffer at least this often.
    pub flush_interval: Duration,
    /// … or when it holds this many points.
    pub flush_points: usize,
    /// Segments whose newest point is younger than this stay in memory.
    pub hot_window: Duration,
    /// Points older than this are deleted (whole segments); older points are refused at
    /// intake ([`crate::ingest::Intake`]).
    pub retention: Duration,
    /// Points further ahead of the clock than this are refused at intake.
    pub max_clock_skew: Duration,
    /// Total segment bytes kept on disk, oldest segments deleted first.
    pub max_bytes: Option<u64>,
    /// Merge segments smaller than this many points …
    pub compact_below_points: usize,
    /// … once there are this many of them.
    pub compact_min_segments: usize,
    /// What a new series may look like (tags per point, tag keys, name and value sizes).
    pub series_limits: series::SeriesLimits,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            flush_interval: Duration::from_secs(1),
            flush_points: 1_000_000,
            hot_window: Duration::from_secs(6 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_clock_skew: Duration::from_secs(3600),
            max_bytes: None,
            compact_below_points: 4_000_000,
            compact_min_segments: 8,
            series_limits: series::SeriesLimits::default(),
        }
    }
}

/// The time (epoch ms) up to which the store holds everything that was produced: a source
/// advances it once it has read every partition to its end and appended what came before;
/// a judgment of a window ending at `t` waits until it passes `t`. Shared by cloning.
#[derive(Debug, Clone, Default)]
pub struct Watermark(Arc<std::sync::atomic::AtomicI64>);

impl Watermark {
    pub fn advance(&self, t: i64) {
        self.0.fetch_max(t, Ordering::AcqRel);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The `[store]` settings of `coalmine.toml`.
pub const SETTINGS: &[Setting] = &[
    Setting { key: "store.data-dir", kind: Kind::Str, default: "./coalmine-data", doc: "Directory of segments, manifest and runs (created if missing; one daemon per directory)." },
    Setting { key: "store.flush-interval", kind: Kind::Duration, default: "1s", doc: "Make buffered points durable (and commit their Kafka offsets) at least this often." },
    Setting { key: "store.flush-points", kind: Kind::Int, default: "1000000", doc: "... or as soon as this many points are buffered." },
    Setting { key: "store.hot-window", kind: Kind::Duration, default: "6h", doc: "Segments with points younger than this stay in memory; older ones are read from disk when queried." },
    Setting { key: "store.retention", kind: Kind::Duration, default: "7d", doc: "Delete points older than this (whole segments, and never before their Kafka offsets are committed). A message with a point already older is refused at intake: dead-lettered with the reason and counted (coalmine_messages_refused_total)." },
    Setting { key: "store.max-clock-skew", kind: Kind::Duration, default: "1h", doc: "A message with a point further ahead of the daemon's clock than this is refused at intake, like one older than the retention." },
    Setting { key: "store.max-bytes", kind: Kind::OptBytes, default: "", doc: "Keep at most this many bytes of segments on disk, deleting the oldest first (unset: no limit)." },
    Setting { key: "store.compact-below-points", kind: Kind::Int, default: "4000000", doc: "Segments smaller than this are merged ..." },
    Setting { key: "store.compact-min-segments", kind: Kind::Int, default: "8", doc: "... once this many of them exist." },
    Setting { key: "store.max-tags-per-point", kind: Kind::Int, default: "64", doc: "A message with a point of more tags is refused (dead-lettered with the reason)." },
    Setting { key: "store.max-tag-keys", kind: Kind::Int, default: "1000", doc: "Distinct tag keys in the store (each is a column of the metrics table); a message that would add more is refused." },
    Setting { key: "store.max-name-bytes", kind: Kind::Int, default: "256", doc: "Longest metric name or tag key; a message with a longer one is refused." },
    Setting { key: "store.max-tag-value-bytes", kind: Kind::Int, default: "1024", doc: "Longest tag value; a message with a longer one is refused." },
];

impl StoreConfig {
    /// The settings as loaded.
    pub fn from_settings(v: &Values) -> StoreConfig {
        let mut store = StoreConfig::new(PathBuf::from(
            v.string("store.data-dir").unwrap_or_default(),
        ));
        store.flush_interval = v.duration("store.flush-interval");
        store.flush_points = v.int("store.flush-points");
        store.hot_window = v.duration("store.hot-window");
        store.retention = v.duration("store.retention");
        store.max_clock_skew = v.duration("store.max-clock-skew");
        store.max_bytes = v.bytes("store.max-bytes");
        store.compact_below_points = v.int("store.compact-below-points");
        store.compact_min_segments = v.int("store.compact-min-segments");
        store.series_limits = series::SeriesLimits {
            max_tags: v.int("store.max-tags-per-point").max(1),
            max_tag_keys: v.int("store.max-tag-keys").max(1),
            max_name_bytes: v.int("store.max-name-bytes").max(1),
            max_value_bytes: v.int("store.max-tag-value-bytes").max(1),
        };
        store
    }

    /// Problems across settings (each names its setting).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.flush_interval.is_zero() {
            p.push("store.flush-interval: must be more than 0s".to_string());
        }
        if self.flush_points == 0 {
            p.push("store.flush-points: must be at least 1".into());
        }
        if self.retention < self.flush_interval {
            p.push("store.retention: must be longer than store.flush-interval".into());
        }
        p
    }
}

/// Which points a scan returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanFilter {
    /// Exact metric name; `None` for every metric.
    pub metric: Option<String>,
    /// Tags that must all be present with these values.
    pub tags: BTreeMap<String, String>,
    /// `[start, end)` in epoch milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
}

impl ScanFilter {
    pub fn all() -> Self {
        ScanFilter {
            metric: None,
            tags: BTreeMap::new(),
            start_ms: i64::MIN,
            end_ms: i64::MAX,
        }
    }
}

/// Counters a user would graph.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StoreStats {
    pub series: usize,
    pub segments: usize,
    pub segment_points: u64,
    pub active_points: u64,
    pub disk_bytes: u64,
    /// Bytes of in-memory point data (hot segments + buffers).
    pub memory_bytes: u64,
    pub hot_segments: usize,
    pub flushes: u64,
    pub compactions: u64,
}

/// A segment as the store holds it.
struct Segment {
    meta: SegmentMeta,
    index: Vec<SeriesRange>,
    /// `None` while cold (on disk only).
    batch: RwLock<Option<RecordBatch>>,
}

impl Segment {
    fn data(&self, root: &Path) -> Result<RecordBatch, StoreError> {
        if let Some(b) = self.batch.read().expect("segment lock").as_ref() {
            return Ok(b.clone());
        }
        Ok(segment::read(&segment::path(root, &self.meta.file))?.batch)
    }
}

/// Points not yet in a segment, indexed by series so a window query does not walk them all.
#[derive(Default)]
struct Buffer {
    points: PointColumns,
    rows: std::collections::HashMap<u32, Vec<u32>, ahash::RandomState>,
    min_ts: i64,
    max_ts: i64,
}

impl Buffer {
    fn extend(&mut self, p: &PointColumns) {
        if self.points.is_empty() {
            self.min_ts = i64::MAX;
            self.max_ts = i64::MIN;
        }
        let base = self.points.len() as u32;
        for (i, (&s, &t)) in p.series.iter().zip(&p.ts).enumerate() {
            self.rows.entry(s).or_default().push(base + i as u32);
            self.min_ts = self.min_ts.min(t);
            self.max_ts = self.max_ts.max(t);
        }
        self.points.extend(p);
    }

    fn len(&self) -> usize {
        self.points.len()
    }

    fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Points of `series` (sorted) in `[start, end)`, appended to `out`.
    fn select(&self, series: &[u32], start: i64, end: i64, out: &mut PointColumns) {
        if self.points.is_empty() || self.max_ts < start || self.min_ts >= end {
            return;
        }
        let p = &self.points;
        for s in series {
            for &r in self.rows.get(s).into_iter().flatten() {
                let r = r as usize;
                if p.ts[r] >= start && p.ts[r] < end {
                    out.push(p.series[r], p.ts[r], p.value[r]);
                }
            }
        }
    }
}

#[derive(Default)]
struct Active {
    buffer: Buffer,
    /// Offsets of the messages whose points are in `buffer` (or that had none).
    offsets: Offsets,
}

struct State {
    segments: Vec<Arc<Segment>>,
    /// Points taken from the active buffer and not yet in a segment: visible to scans.
    pending: Option<Arc<Buffer>>,
    durable: Durable,
    next_segment_id: u64,
}

struct Inner {
    root: PathBuf,
    cfg: StoreConfig,
    read_only: bool,
    registry: RwLock<SeriesRegistry>,
    active: Mutex<Active>,
    state: RwLock<State>,
    flush_lock: Mutex<()>,
    flushes: AtomicU64,
    compactions: AtomicU64,
    /// Kafka offsets known to be committed; with `guard_uncommitted`, retention keeps every
    /// segment holding a message past them.
    committed: Mutex<Durable>,
    guard_uncommitted: std::sync::atomic::AtomicBool,
    _lock: Option<File>,
}

/// The store. Cheap to clone (shared).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io(IoError::new(context, source))
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(format!("cannot open {}", path.display())))?;
    // SAFETY: flock on a file descriptor we own; released when the file is closed.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if rc != 0 {
        return Err(StoreError::Locked {
            dir: dir.to_path_buf(),
        });
    }
    Ok(f)
}

/// The entries of `dir`.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let context = || format!("cannot list {}", dir.display());
    std::fs::read_dir(dir)
        .map_err(io_err(context()))?
        .map(|e| e.map(|e| e.path()).map_err(io_err(context())))
        .collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Open (or create) the store in `cfg.data_dir` for reading and writing; takes the data
    /// directory's lock, removes files a crash left behind, loads the live segments.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        let root = cfg.data_dir.clone();
        for d in [root.clone(), root.join("segments"), root.join("tmp")] {
            std::fs::create_dir_all(&d)
                .map_err(io_err(format!("cannot create directory {}", d.display())))?;
        }
        let lock = lock_dir(&root)?;
        let manifest = match Manifest::load(&root)? {
            Some(m) => m,
            None => {
                let segments = list_dir(&root.join("segments"))?.len();
                if segments > 0 {
                    return Err(StoreError::NoManifest {
                        dir: root,
                        segments,
                    });
                }
                // a new data directory: an empty manifest marks it as ours for readers
                let m = Manifest {
                    version: 1,
                    ..Default::default()
                };
                m.store(&root)?;
                m
            }
        };
        // `tmp/` holds only writes in progress: what is there was interrupted.
        for path in list_dir(&root.join("tmp"))? {
            tracing::info!(file = %path.display(), "Removing a file left by an interrupted write");
            let _ = std::fs::remove_file(&path);
        }
        // A segment the manifest does not name is a flush or compaction interrupted between
        // its rename and the manifest, or the manifest is older than the directory
        // (restored from a backup): moved aside, never deleted.
        let live: std::collections::HashSet<&str> =
            manifest.segments.iter().map(|s| s.file.as_str()).collect();
        let strays: Vec<PathBuf> = list_dir(&root.join("segments"))?
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_none_or(|n| !live.contains(&*n.to_string_lossy()))
            })
            .collect();
        if !strays.is_empty() {
            let aside = root.join("quarantine").join(now_ms().to_string());
            std::fs::create_dir_all(&aside).map_err(io_err(format!(
                "cannot create directory {}",
                aside.display()
            )))?;
            for path in &strays {
                let dest = aside.join(path.file_name().unwrap_or_default());
                std::fs::rename(path, &dest).map_err(io_err(format!(
                    "cannot move {} to {}",
                    path.display(),
                    dest.display()
                )))?;
            }
            tracing::warn!(
                count = strays.len(),
                dir = %aside.display(),
                "Segment files the manifest does not name were moved aside (delete them once you know they are not needed)"
            );
        }
        Self::from_manifest(cfg, manifest, false, Some(lock))
    }

    /// Open a store read-only, beside a daemon that may be writing it: reads the manifest
    /// and the segments it lists (a consistent snapshot of the durable data).
    pub fn open_read_only(data_dir: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let cfg = StoreConfig::new(data_dir);
        let root = cfg.data_dir.clone();
        if !root.is_dir() {
            return Err(StoreError::Io(IoError::new(
                format!("cannot open store {}", root.display()),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            )));
        }
        let manifest = Manifest::load(&root)?.ok_or_else(|| {
            StoreError::Io(IoError::new(
                format!("cannot open store {}", root.display()),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no manifest.json: not a coalmine data directory",
                ),
            ))
        })?;
        // All segments are read into memory: a reader is for analysis, not for a daemon.
        let mut cfg = cfg;
        cfg.hot_window = Duration::from_secs(u64::MAX / 4);
        Self::from_manifest(cfg, manifest, true, None)
    }

    fn from_manifest(
        cfg: StoreConfig,
        manifest: Manifest,
        read_only: bool,
        lock: Option<File>,
    ) -> Result<Store, StoreError> {
        let root = cfg.data_dir.clone();
        let mut registry = SeriesRegistry::new();
        let mut segments = Vec::with_capacity(manifest.segments.len());
        let hot_from =
            now_ms().saturating_sub(cfg.hot_window.as_millis().min(i64::MAX as u128) as i64);
        for meta in &manifest.segments {
            let path = segment::path(&root, &meta.file);
            let loaded = segment::read(&path)?;
            for (id, key) in loaded.series {
                registry
                    .insert_with_id(id, key)
                    .map_err(|reason| StoreError::Corrupt {
                        path: path.clone(),
                        reason,
                    })?;
            }
            let hot = loaded.max_ts >= hot_from;
            segments.push(Arc::new(Segment {
                meta: meta.clone(),
                index: loaded.index,
                batch: RwLock::new(hot.then_some(loaded.batch)),
            }));
        }
        tracing::info!(
            dir = %root.display(),
            segments = segments.len(),
            series = registry.len(),
            "Store opened"
        );
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                cfg,
                read_only,
                registry: RwLock::new(registry),
                active: Mutex::new(Active::default()),
                state: RwLock::new(State {
                    segments,
                    pending: None,
                    durable: manifest.durable.clone(),
                    next_segment_id: manifest.next_segment_id,
                }),
                flush_lock: Mutex::new(()),
                flushes: AtomicU64::new(0),
                compactions: AtomicU64::new(0),
                // What was durable before this process started was committed, or is skipped
                // when re-read (it is below the manifest's durable mark) either way.
                committed: Mutex::new(manifest.durable.clone()),
                guard_uncommitted: std::sync::atomic::AtomicBool::new(false),
                _lock: lock,
            }),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.root
    }

    /// The series index (shared lock).
    pub fn registry(&self) -> std::sync::RwLockReadGuard<'_, SeriesRegistry> {
        self.inner.registry.read().expect("registry lock")
    }

    /// The series index for writing (ingest resolves series under it, one batch at a time).
    pub fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, SeriesRegistry> {
        self.inner.registry.write().expect("registry lock")
    }

    /// Next offset not yet durable, per partition.
    pub fn durable_offsets(&self) -> Durable {
        self.inner.state.read().expect("state lock").durable.clone()
    }

    /// Next durable offset of one partition, if any.
    pub fn durable_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.inner
            .state
            .read()
            .expect("state lock")
            .durable
            .get(topic)?
            .get(&partition)
            .copied()
    }

    /// Add points (series ids from [`Store::registry_mut`]) and record that the messages in
    /// `offsets` are fully processed. Returns the active buffer's size.
    pub fn append(&self, points: &PointColumns, offsets: &Offsets) -> usize {
        let mut a = self.inner.active.lock().expect("active lock");
        a.buffer.extend(points);
        merge_offsets(&mut a.offsets, offsets);
        a.buffer.len()
    }

    /// Points waiting in the active buffer.
    pub fn active_points(&self) -> usize {
        self.inner.active.lock().expect("active lock").buffer.len()
    }

    /// A partition's log was reset (the topic recreated, or a broker lost its log): its
    /// offsets start again below what the store holds. Flush, then lower the partition's
    /// durable mark to `next`, so the new log's messages are stored rather than skipped as
    /// replays of ones already kept. Returns the mark it replaced.
    pub fn reset_partition(
        &self,
        topic: &str,
        partition: i32,
        next: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.flush()?;
        let _serial = self.inner.flush_lock.lock().expect("flush lock");
        let mut s = self.inner.state.write().expect("state lock");
        let before = s
            .durable
            .get(topic)
            .and_then(|d| d.get(&partition))
            .copied();
        let mut manifest = self.manifest_of(&s);
        manifest
            .durable
            .entry(topic.to_string())
            .or_default()
            .insert(partition, next);
        manifest.store(&self.inner.root)?;
        s.durable = manifest.durable;
        Ok(before)
    }

    /// Make everything appended so far durable: one new segment and a new manifest.
    /// Returns the durable offsets (what may now be committed to Kafka).
    pub fn flush(&self) -> Result<Durable, StoreError> {
        if self.inner.read_only {
            return Err(StoreError::InvalidInput(
                "the store is open read-only".into(),
            ));
        }
        let _serial = self.inner.flush_lock.lock().expect("flush lock");
        let (pending, offsets) = {
            let mut a = self.inner.active.lock().expect("active lock");
            if a.buffer.is_empty() && a.offsets.is_empty() {
                return Ok(self.durable_offsets());
            }
            let pending = Arc::new(std::mem::take(&mut a.buffer));
            let offsets = std::mem::take(&mut a.offsets);
            // visible to scans until the segment replaces it (taken under both locks)
            self.inner.state.write().expect("state lock").pending = Some(pending.clone());
            (pending, offsets)
        };
        let points = &pending.points;
        let result = self.write_flush(points, &offsets);
        if result.is_err() {
            // Put the points back so nothing accepted is lost; the next flush retries.
            let mut a = self.inner.active.lock().expect("active lock");
            let mut back = Buffer::default();
            back.extend(points);
            back.extend(&a.buffer.points);
            a.buffer = back;
            let mut o = offsets.clone();
            merge_offsets(&mut o, &a.offsets);
            a.offsets = o;
            self.inner.state.write().expect("state lock").pending = None;
        }
        result?;
        self.inner.flushes.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.maintain() {
            tracing::warn!(error = %e, "Store maintenance failed; will retry after the next flush");
        }
        Ok(self.durable_offsets())
    }

    fn write_flush(&self, points: &PointColumns, offsets: &Offsets) -> Result<(), StoreError> {
        let id = {
            let mut s = self.inner.state.write().expect("state lock");
            s.next_segment_id += 1;
            s.next_segment_id
        };
        let new_segment = if points.is_empty() {
            None
        } else {
            let (batch, index) = build_sorted(points);
            Some(self.write_segment(id, batch, index, offsets)?)
        };
        let mut s = self.inner.state.write().expect("state lock");
        let mut manifest = self.manifest_of(&s);
        if let Some(seg) = &new_segment {
            manifest.segments.push(seg.meta.clone());
        }
        for (topic, parts) in offsets {
            let d = manifest.durable.entry(topic.clone()).or_default();
            for (&p, r) in parts {
                let e = d.entry(p).or_insert(r.next);
                *e = (*e).max(r.next);
            }
        }
        manifest.store(&self.inner.root)?;
        if let Some(seg) = new_segment {
            s.segments.push(seg);
        }
        s.durable = manifest.durable;
        s.pending = None;
        Ok(())
    }

    fn manifest_of(&self, s: &State) -> Manifest {
        Manifest {
            version: 1,
            next_segment_id: s.next_segment_id,
            segments: s.segments.iter().map(|g| g.meta.clone()).collect(),
            durable: s.durable.clone(),
        }
    }

    fn write_segment(
        &self,
        id: u64,
        batch: RecordBatch,
        index: Vec<SeriesRange>,
        offsets: &Offsets,
    ) -> Result<Arc<Segment>, StoreError> {
        let series: Vec<(u32, SeriesKey)> = {
            let reg = self.registry();
            index
                .iter()
                .map(|r| {
                    let key = reg
                        .key(r.series)
                        .cloned()
                        .expect("appended points have registered series");
                    (r.series, key)
                })
                .collect()
        };
        let min_ts = index.iter().map(|r| r.min_ts).min().unwrap_or(0);
        let max_ts = index.iter().map(|r| r.max_ts).max().unwrap_or(0);
        let (file, bytes) = segment::write(
            &self.inner.root,
            id,
            &batch,
            &index,
            series,
            offsets,
            min_ts,
            max_ts,
        )?;
        let meta = SegmentMeta {
            id,
            file,
            rows: batch.num_rows() as u64,
            bytes,
            min_ts,
            max_ts,
            offsets: offsets.clone(),
        };
        let hot = max_ts >= now_ms().saturating_sub(self.inner.cfg.hot_window.as_millis() as i64);
        Ok(Arc::new(Segment {
            meta,
            index,
            batch: RwLock::new(hot.then_some(batch)),
        }))
    }

    /// From now on, retention never removes a segment holding a Kafka message whose offset
    /// has not been committed ([`Store::mark_committed`]): the Kafka source turns this on.
    pub fn guard_uncommitted(&self) {
        self.inner.guard_uncommitted.store(true, Ordering::Release);
    }

    /// Record that the consumer group's offsets are committed up to `offsets` (next offset
    /// per partition).
    pub fn mark_committed(&self, offsets: &Durable) {
        let mut c = self.inner.committed.lock().expect("committed lock");
        for (topic, parts) in offsets {
            let t = c.entry(topic.clone()).or_default();
            for (&p, &next) in parts {
                let e = t.entry(p).or_insert(next);
                *e = (*e).max(next);
            }
        }
    }

    /// Whether every message whose points `seg` holds has its offset committed.
    fn committed(&self, offsets: &Offsets) -> bool {
        if !self.inner.guard_uncommitted.load(Ordering::Acquire) {
            return true;
        }
        let c = self.inner.committed.lock().expect("committed lock");
        offsets.iter().all(|(topic, parts)| {
            parts.iter().all(|(p, r)| {
                c.get(topic)
                    .and_then(|t| t.get(p))
                    .is_some_and(|&next| next >= r.next)
            })
        })
    }

    /// Retention, compaction and cooling (hot segments older than the hot window leave
    /// memory). Called after flushes.
    pub fn maintain(&self) -> Result<(), StoreError> {
        self.enforce_retention(now_ms())?;
        self.compact()?;
        let hot_from = now_ms().saturating_sub(self.inner.cfg.hot_window.as_millis() as i64);
        for seg in self.inner.state.read().expect("state lock").segments.iter() {
            if seg.meta.max_ts < hot_from {
                seg.batch.write().expect("segment lock").take();
            }
        }
        Ok(())
    }

    /// Delete segments entirely older than the retention, then the oldest ones while the
    /// total exceeds `max_bytes`; never a segment with uncommitted messages (see
    /// [`Store::guard_uncommitted`]).
    pub fn enforce_retention(&self, now: i64) -> Result<usize, StoreError> {
        let cutoff =
            now.saturating_sub(self.inner.cfg.retention.as_millis().min(i64::MAX as u128) as i64);
        let mut s = self.inner.state.write().expect("state lock");
        let mut keep: Vec<Arc<Segment>> = s
            .segments
            .iter()
            .filter(|g| g.meta.max_ts >= cutoff || !self.committed(&g.meta.offsets))
            .cloned()
            .collect();
        if let Some(max) = self.inner.cfg.max_bytes {
            keep.sort_by_key(|g| (g.meta.max_ts, g.meta.id));
            let mut total: u64 = keep.iter().map(|g| g.meta.bytes).sum();
            let mut i = 0;
            while total > max && keep.len() > 1 && i < keep.len() {
                if self.committed(&keep[i].meta.offsets) {
                    total -= keep[i].meta.bytes;
                    keep.remove(i);
                } else {
                    i += 1;
                }
            }
            keep.sort_by_key(|g| g.meta.id);
        }
        let dropped: Vec<Arc<Segment>> = s
            .segments
            .iter()
            .filter(|g| !keep.iter().any(|k| k.meta.id == g.meta.id))
            .cloned()
            .collect();
        if dropped.is_empty() {
            return Ok(0);
        }
        let old = std::mem::replace(&mut s.segments, keep);
        let manifest = self.manifest_of(&s);
        if let Err(e) = manifest.store(&self.inner.root) {
            s.segments = old;
            return Err(e);
        }
        drop(s);
        for g in &dropped {
            tracing::info!(
                segment = g.meta.id,
                rows = g.meta.rows,
                "Retention removed a segment"
            );
            let _ = std::fs::remove_file(segment::path(&self.inner.root, &g.meta.file));
        }
        Ok(dropped.len())
    }

    /// Merge small segments into one when enough have accumulated.
    pub fn compact(&self) -> Result<bool, StoreError> {
        let small: Vec<Arc<Segment>> = {
            let s = self.inner.state.read().expect("state lock");
            s.segments
                .iter()
                .filter(|g| (g.meta.rows as usize) < self.inner.cfg.compact_below_points)
                .cloned()
                .collect()
        };
        if small.len() < self.inner.cfg.compact_min_segments.max(2) {
            return Ok(false);
        }
        let mut points = PointColumns::default();
        let mut offsets = Offsets::new();
        for g in &small {
            let batch = g.data(&self.inner.root)?;
            let (se, ts, v) = columns(&batch);
            points.series.extend_from_slice(se.values());
            points.ts.extend_from_slice(ts.values());
            points.value.extend_from_slice(v.values());
            merge_offsets(&mut offsets, &g.meta.offsets);
        }
        let (batch, index) = build_sorted(&points);
        let id = {
            let mut s = self.inner.state.write().expect("state lock");
            s.next_segment_id += 1;
            s.next_segment_id
        };
        let merged = self.write_segment(id, batch, index, &offsets)?;
        let mut s = self.inner.state.write().expect("state lock");
        let ids: std::collections::HashSet<u64> = small.iter().map(|g| g.meta.id).collect();
        let old = s.segments.clone();
        s.segments.retain(|g| !ids.contains(&g.meta.id));
        s.segments.push(merged);
        let manifest = self.manifest_of(&s);
        if let Err(e) = manifest.store(&self.inner.root) {
            s.segments = old;
            return Err(e);
        }
        drop(s);
        for g in &small {
            let _ = std::fs::remove_file(segment::path(&self.inner.root, &g.meta.file));
        }
        self.inner.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(inputs = small.len(), segment = id, "Compacted segments");
        Ok(true)
    }

    /// Points matching `filter`, as record batches of [`point_schema`]. Segments are pruned
    /// by time and series; within a segment each series' rows are found by binary search
    /// and returned as zero-copy slices.
    pub fn scan(&self, filter: &ScanFilter) -> Result<Vec<RecordBatch>, StoreError> {
        let series = self
            .registry()
            .select(filter.metric.as_deref(), &filter.tags);
        self.scan_series(&series, filter.start_ms, filter.end_ms)
    }

    /// Points of the given series (sorted ids) in `[start_ms, end_ms)`.
    pub fn scan_series(
        &self,
        series: &[u32],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RecordBatch>, StoreError> {
        let mut out = Vec::new();
        if series.is_empty() || start_ms >= end_ms {
            return Ok(out);
        }
        // In-memory sources first, under the locks, in the order flush takes them.
        let segments = {
            let a = self.inner.active.lock().expect("active lock");
            let s = self.inner.state.read().expect("state lock");
            let mut unsorted = PointColumns::default();
            if let Some(p) = &s.pending {
                p.select(series, start_ms, end_ms, &mut unsorted);
            }
            a.buffer.select(series, start_ms, end_ms, &mut unsorted);
            if !unsorted.is_empty() {
                out.push(build_sorted(&unsorted).0);
            }
            s.segments.clone()
        };
        for seg in segments {
            if seg.meta.max_ts < start_ms || seg.meta.min_ts >= end_ms {
                continue;
            }
            let mut batch: Option<RecordBatch> = None;
            for &sid in series {
                let Ok(pos) = seg.index.binary_search_by_key(&sid, |r| r.series) else {
                    continue;
                };
                let r = seg.index[pos];
                if r.max_ts < start_ms || r.min_ts >= end_ms {
                    continue;
                }
                if batch.is_none() {
                    batch = Some(seg.data(&self.inner.root)?);
                }
                let b = batch.as_ref().expect("loaded");
                let (_, ts, _) = columns(b);
                let rows = &ts.values()[r.start as usize..(r.start + r.len) as usize];
                let lo = rows.partition_point(|&t| t < start_ms);
                let hi = rows.partition_point(|&t| t < end_ms);
                if hi > lo {
                    out.push(b.slice(r.start as usize + lo, hi - lo));
                }
            }
        }
        Ok(out)
    }

    /// Counts for monitoring and the benchmarks.
    pub fn stats(&self) -> StoreStats {
        let (active_points, active_bytes) = {
            let a = self.inner.active.lock().expect("active lock");
            (
                a.buffer.len() as u64,
                a.buffer.points.capacity_bytes() as u64,
            )
        };
        let s = self.inner.state.read().expect("state lock");
        let mut st = StoreStats {
            series: self.registry().len(),
            segments: s.segments.len(),
            active_points,
            memory_bytes: active_bytes
                + s.pending
                    .as_ref()
                    .map_or(0, |p| p.points.capacity_bytes() as u64),
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            compactions: self.inner.compactions.load(Ordering::Relaxed),
            ..Default::default()
        };
        for g in &s.segments {
            st.segment_points += g.meta.rows;
            st.disk_bytes += g.meta.bytes;
            if let Some(b) = g.batch.read().expect("segment lock").as_ref() {
                st.hot_segments += 1;
                st.memory_bytes += segment::memory_bytes(b) as u64;
            }
        }
        st
    }

    /// Number of points and the sum of their values, over all durable and buffered points
    /// (a checksum for tests and tools).
    pub fn count_and_sum(&self) -> Result<(u64, f64), StoreError> {
        let mut count = 0u64;
        let mut sum = 0.0f64;
        let all: Vec<u32> = {
            let reg = self.registry();
            (0..reg.len() as u32)
                .filter(|&id| reg.key(id).is_some())
                .collect()
        };
        for b in self.scan_series(&all, i64::MIN, i64::MAX)? {
            let (_, _, v) = columns(&b);
            count += v.len() as u64;
            sum += v.values().iter().sum::<f64>();
        }
        Ok((count, sum))
    }

    /// Expand point batches with the series' metric name and tags (for SQL and Python).
    pub fn with_series_columns(&self, batch: &RecordBatch) -> Result<RecordBatch, StoreError> {
        expand_series(&self.registry(), batch)
    }
}

/// `(series, ts, value)` → `(ts, metric, value, tags)` with the metric dictionary-encoded
/// and tags as a `Map<Utf8, Utf8>`.
pub fn expand_series(reg: &SeriesRegistry, batch: &RecordBatch) -> Result<RecordBatch, StoreError> {
    use arrow::array::{MapBuilder, StringBuilder, StringDictionaryBuilder};
    use arrow::datatypes::Int32Type;
    let (se, ts, v) = columns(batch);
    let mut metric = StringDictionaryBuilder::<Int32Type>::new();
    let mut tags = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for &s in se.values().iter() {
        let key = reg
            .key(s)
            .ok_or_else(|| StoreError::Arrow(format!("unknown series id {s}")))?;
        metric.append_value(&*key.metric);
        for (k, val) in &key.tags {
            tags.keys().append_value(&**k);
            tags.values().append_value(&**val);
        }
        tags.append(true)
            .map_err(|e| StoreError::Arrow(e.to_string()))?;
    }
    let metric = metric.finish();
    let tags = tags.finish();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("ts", ts.data_type().clone(), false),
        arrow::datatypes::Field::new("metric", metric.data_type().clone(), false),
        arrow::datatypes::Field::new("value", arrow::datatypes::DataType::Float64, false),
        arrow::datatypes::Field::new("tags", tags.data_type().clone(), false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(ts.clone()) as ArrayRef,
            Arc::new(metric),
            Arc::new(v.clone()) as ArrayRef,
            Arc::new(tags),
        ],
    )
    .map_err(|e| StoreError::Arrow(e.to_string()))
}

/// Replace a small file atomically: write a sibling temporary file, fsync it, rename it over
/// the target, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Offsets covering one message.
pub fn message_offsets(topic: &str, partition: i32, offset: i64) -> Offsets {
    let mut o = Offsets::new();
    o.entry(topic.to_string()).or_default().insert(
        partition,
        OffsetRange {
            first: offset,
            next: offset + 1,
        },
    );
    o
}
