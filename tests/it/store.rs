//! The embedded store on real files: durability, recovery, pruning scans, retention,
//! compaction, read-only readers, the data-directory lock.

use std::time::Duration;

use coalmine::store::segment::{columns, PointColumns};
use coalmine::store::{message_offsets, ScanFilter, Store, StoreConfig};

use crate::kafka::TempDir;

const H: i64 = 3_600_000;
const T0: i64 = 1_795_302_000_000;

fn cfg(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir.join("data"));
    c.retention = Duration::from_secs(100 * 365 * 24 * 3600);
    c.hot_window = Duration::from_secs(100 * 365 * 24 * 3600);
    c
}

/// `n` points of each of `series` series named cpu{host=hX}, one per second from `t0`.
fn fill(store: &Store, series: usize, n: usize, t0: i64, offset: i64) {
    let mut pts = PointColumns::default();
    {
        let mut reg = store.registry_mut();
        for s in 0..series {
            let host = format!("h{s}");
            let id = reg.resolve("cpu", &[("host", &host)]);
            for i in 0..n {
                pts.push(id, t0 + i as i64 * 1000, (s * 1000 + i) as f64);
            }
        }
    }
    store.append(&pts, &message_offsets("t", 0, offset));
}

fn scan_values(store: &Store, host: &str, start: i64, end: i64) -> Vec<f64> {
    let f = ScanFilter {
        metric: Some("cpu".into()),
        tags: [("host".to_string(), host.to_string())].into(),
        start_ms: start,
        end_ms: end,
    };
    store
        .scan(&f)
        .unwrap()
        .iter()
        .flat_map(|b| columns(b).2.values().to_vec())
        .collect()
}

#[test]
fn flush_reopen_and_scan_prune() {
    let dir = TempDir::new("store");
    {
        let store = Store::open(cfg(&dir.0)).unwrap();
        fill(&store, 3, 100, T0, 0);
        // buffered points are visible before they are durable
        assert_eq!(
            scan_values(&store, "h1", T0, T0 + 5000),
            vec![1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
        );
        let durable = store.flush().unwrap();
        assert_eq!(durable["t"][&0], 1);
        fill(&store, 3, 100, T0 + 100_000, 1);
        store.flush().unwrap();
        assert_eq!(store.stats().segments, 2);
    }
    // reopen: everything is back, ids included
    let store = Store::open(cfg(&dir.0)).unwrap();
    assert_eq!(store.count_and_sum().unwrap().0, 600);
    assert_eq!(store.durable_offset("t", 0), Some(2));
    assert_eq!(
        scan_values(&store, "h2", T0 + 99_000, T0 + 101_000),
        vec![2099.0, 2000.0]
    );
    assert!(scan_values(&store, "h9", T0, T0 + H).is_empty());
    assert!(
        scan_values(&store, "h0", T0 + 10 * H, T0 + 11 * H).is_empty(),
        "time pruning"
    );
    // a new series after reopen gets a fresh id
    let id = store.registry_mut().resolve("mem", &[]);
    assert_eq!(id, 3);
}

#[test]
fn the_data_directory_is_locked() {
    let dir = TempDir::new("lock");
    let _a = Store::open(cfg(&dir.0)).unwrap();
    let e = Store::open(cfg(&dir.0))
        .err()
        .expect("second writer refused");
    assert!(
        e.to_string().contains("in use by another coalmine process"),
        "{e}"
    );
    // readers are fine beside a writer
    Store::open_read_only(dir.0.join("data")).unwrap();
}

#[test]
fn leftovers_of_an_interrupted_write_are_removed_and_unnamed_segments_moved_aside() {
    let dir = TempDir::new("crash");
    {
        let store = Store::open(cfg(&dir.0)).unwrap();
        fill(&store, 1, 10, T0, 0);
        store.flush().unwrap();
    }
    let data = dir.0.join("data");
    // a segment renamed into place but never listed, and a half-written temporary file
    let stray = data.join("segments").join("0000000000000099.arrow");
    std::fs::write(&stray, b"partial").unwrap();
    std::fs::write(data.join("tmp").join("0000000000000100.arrow"), b"partial").unwrap();
    std::fs::write(data.join("tmp").join("manifest.json"), b"{\"half\":").unwrap();
    let store = Store::open(cfg(&dir.0)).unwrap();
    assert_eq!(store.count_and_sum().unwrap().0, 10);
    assert!(!stray.exists());
    assert_eq!(std::fs::read_dir(data.join("tmp")).unwrap().count(), 0);
    // the segment the manifest does not name is kept, in quarantine/<ms>/
    let aside: Vec<_> = std::fs::read_dir(data.join("quarantine"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(aside[0].file_name(), stray.file_name());
    assert_eq!(std::fs::read(&aside[0]).unwrap(), b"partial");
}

#[test]
fn a_missing_manifest_beside_segments_refuses_to_start_and_deletes_nothing() {
    let dir = TempDir::new("nomanifest");
    {
        let store = Store::open(cfg(&dir.0)).unwrap();
        fill(&store, 1, 10, T0, 0);
        store.flush().unwrap();
    }
    let data = dir.0.join("data");
    let segments = || {
        let mut v: Vec<_> = std::fs::read_dir(data.join("segments"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let before = segments();
    assert_eq!(before.len(), 1);
    std::fs::rename(data.join("manifest.json"), dir.0.join("manifest.bak")).unwrap();
    let e = Store::open(cfg(&dir.0)).err().expect("refuses to start");
    let msg = e.to_string();
    assert!(
        msg.contains("1 segment file(s) but no manifest.json"),
        "{msg}"
    );
    assert!(msg.contains("restore manifest.json"), "{msg}");
    assert_eq!(segments(), before, "nothing deleted or moved");
    assert!(
        !data.join("manifest.json").exists(),
        "no empty manifest written"
    );
    // restoring the manifest recovers everything
    std::fs::rename(dir.0.join("manifest.bak"), data.join("manifest.json")).unwrap();
    let store = Store::open(cfg(&dir.0)).unwrap();
    assert_eq!(store.count_and_sum().unwrap().0, 10);
}

#[test]
fn corrupt_files_are_reported_by_name() {
    let dir = TempDir::new("corrupt");
    {
        let store = Store::open(cfg(&dir.0)).unwrap();
        fill(&store, 1, 10, T0, 0);
        store.flush().unwrap();
    }
    let data = dir.0.join("data");
    let seg = std::fs::read_dir(data.join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
    let e = Store::open(cfg(&dir.0))
        .err()
        .expect("a truncated segment is an error");
    assert!(e.to_string().contains(&seg.display().to_string()), "{e}");
    std::fs::write(
        data.join("manifest.json"),
        b"{\"version\": 1, \"segments\": [",
    )
    .unwrap();
    let e = Store::open_read_only(&data)
        .err()
        .expect("a broken manifest is an error");
    assert!(
        e.to_string().contains("manifest.json") && e.to_string().contains("line 1"),
        "{e}"
    );
}

#[test]
fn retention_by_age_and_bytes() {
    let dir = TempDir::new("retention");
    let mut c = cfg(&dir.0);
    c.retention = Duration::from_secs(48 * 3600);
    let now = coalmine::store::now_ms();
    let store = Store::open(c.clone()).unwrap();
    fill(&store, 2, 10, now - 72 * H, 0); // too old
    store.flush().unwrap();
    fill(&store, 2, 10, now - 24 * H, 1);
    store.flush().unwrap();
    fill(&store, 2, 10, now - H, 2);
    store.flush().unwrap();
    assert_eq!(store.stats().segments, 2, "the 72h-old segment is gone");
    assert_eq!(store.count_and_sum().unwrap().0, 40);
    assert_eq!(
        store.durable_offset("t", 0),
        Some(3),
        "durable offsets survive retention"
    );
    drop(store);
    // by bytes: keep only about one segment
    let one = std::fs::read_dir(dir.0.join("data").join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .metadata()
        .unwrap()
        .len();
    c.max_bytes = Some(one + one / 2);
    let store = Store::open(c).unwrap();
    store.enforce_retention(now).unwrap();
    assert_eq!(store.stats().segments, 1);
    assert_eq!(
        scan_values(&store, "h0", now - 2 * H, now).len(),
        10,
        "the newest is kept"
    );
}

/// With the Kafka source's guard on, retention (by age or by bytes) keeps a segment whose
/// messages' offsets are not committed yet, and removes it once they are.
#[test]
fn retention_never_removes_uncommitted_messages() {
    let dir = TempDir::new("retention-guard");
    let mut c = cfg(&dir.0);
    c.retention = Duration::from_secs(48 * 3600);
    let now = coalmine::store::now_ms();
    let store = Store::open(c).unwrap();
    store.guard_uncommitted();
    fill(&store, 2, 10, now - H, 0);
    store.flush().unwrap();
    // durable but not committed: the next pass, days later, must keep it
    assert_eq!(store.enforce_retention(now + 72 * H).unwrap(), 0);
    assert_eq!(store.count_and_sum().unwrap().0, 20);
    let committed = |next: i64| {
        let mut d = coalmine::store::manifest::Durable::new();
        d.entry("t".into()).or_default().insert(0, next);
        d
    };
    store.mark_committed(&committed(0));
    assert_eq!(
        store.enforce_retention(now + 72 * H).unwrap(),
        0,
        "offset 0 is not committed by next = 0"
    );
    store.mark_committed(&committed(1));
    assert_eq!(
        store.enforce_retention(now + 72 * H).unwrap(),
        1,
        "committed: retention applies"
    );
    assert_eq!(store.count_and_sum().unwrap().0, 0);
}

#[test]
fn compaction_merges_small_segments_without_changing_answers() {
    let dir = TempDir::new("compact");
    let mut c = cfg(&dir.0);
    c.compact_min_segments = 4;
    let store = Store::open(c.clone()).unwrap();
    for k in 0..4 {
        fill(&store, 3, 50, T0 + k * 50_000, k);
    }
    let before = scan_values(&store, "h1", T0, T0 + 10 * H);
    for k in 0..4 {
        fill(&store, 3, 50, T0 + (4 + k) * 50_000, 4 + k);
        store.flush().unwrap();
    }
    assert!(store.stats().compactions >= 1);
    assert!(store.stats().segments < 4);
    let (n, sum) = store.count_and_sum().unwrap();
    assert_eq!(n, 8 * 150);
    drop(store);
    let store = Store::open(c).unwrap();
    assert_eq!(store.count_and_sum().unwrap(), (n, sum));
    let after = scan_values(&store, "h1", T0, T0 + 10 * H);
    assert_eq!(after.len(), 400);
    assert_eq!(&after[..200], &before[..]);
    assert_eq!(store.durable_offset("t", 0), Some(8));
}

#[test]
fn series_columns_for_sql() {
    let dir = TempDir::new("expand");
    let store = Store::open(cfg(&dir.0)).unwrap();
    fill(&store, 2, 3, T0, 0);
    let batches = store.scan(&ScanFilter::all()).unwrap();
    let wide = store.with_series_columns(&batches[0]).unwrap();
    let names: Vec<String> = wide
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["ts", "metric", "value", "tags"]);
    assert_eq!(wide.num_rows(), 6);
}
