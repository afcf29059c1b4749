//! The run the run and report benches share (and the store every bench opens): 20 SQL metrics over a store of 6 + 6 instances
//! writing 1 point/s each.

// each bench uses part of it
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};

use coalmine::runs::spec;
use coalmine::store::segment::PointColumns;
use coalmine::store::{message_offsets, Store, StoreConfig};

pub const METRICS: usize = 20;
pub const INSTANCES: usize = 6; // per scope
pub const WINDOW_S: i64 = 1800;
pub const T0: i64 = 1_795_302_000_000;

/// An empty store in `dir` that keeps everything in memory and evicts nothing (the benches'
/// timestamps are fixed, years from now or ago).
pub fn open_store(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention = Duration::from_secs(100 * 365 * 86400);
    cfg.hot_window = cfg.retention;
    Store::open(cfg).unwrap()
}

/// A store in `dir` with `seconds` of every metric's series from `T0`.
pub fn store(dir: &std::path::Path, seconds: i64) -> Store {
    let store = open_store(dir);
    let mut pts = PointColumns::default();
    {
        let mut reg = store.registry_mut();
        for m in 0..METRICS {
            for i in 0..2 * INSTANCES {
                let version = if i < INSTANCES { "v1" } else { "v2" };
                let inst = format!("i-{i}");
                let id = reg.resolve(
                    &format!("svc.m{m:02}"),
                    &[("app", "svc"), ("instance", &inst), ("version", version)],
                );
                for t in 0..seconds {
                    let base = 100.0 + m as f64 + ((t * 7 + i as i64 * 13) % 29) as f64;
                    pts.push(id, T0 + t * 1000, base);
                }
            }
        }
    }
    store.append(&pts, &message_offsets("bench", 0, 0));
    store.flush().unwrap();
    store
}

/// The config: every metric aggregated over bins of `bin_s` seconds.
pub fn config(bin_s: u32) -> Value {
    let sqls = [
        "SELECT date_bin(INTERVAL '{bin} seconds', ts) AS ts, avg(value) AS value FROM metrics WHERE metric = '{m}' GROUP BY 1",
        "SELECT date_bin(INTERVAL '{bin} seconds', ts) AS ts, approx_percentile_cont(value, 0.99) AS value FROM metrics WHERE metric = '{m}' GROUP BY 1",
        "SELECT date_bin(INTERVAL '{bin} seconds', ts) AS ts, max(value) AS value FROM metrics WHERE metric = '{m}' GROUP BY 1",
        "SELECT date_bin(INTERVAL '{bin} seconds', ts) AS ts, median(value) AS value FROM metrics WHERE metric = '{m}' GROUP BY 1",
    ];
    let metrics: Vec<Value> = (0..METRICS)
        .map(|m| {
            let name = format!("svc.m{m:02}");
            let sql = sqls[m % sqls.len()]
                .replace("{m}", &name)
                .replace("{bin}", &bin_s.to_string());
            json!({"name": format!("metric {m}"), "groups": [format!("g{}", m % 4)],
                   "query": {"type": "sql", "sql": sql},
                   "analysisConfigurations": {"canary": {"direction": "increase"}}})
        })
        .collect();
    json!({"name": "bench", "applications": ["bench"], "metrics": metrics})
}

/// Two hours from `T0`, a judgment a minute over a sliding 30-minute window.
pub fn run_spec() -> spec::RunSpec {
    let body = json!({"config": "bench", "scopes": {"default": {"control": {"tags": {"version": "v1"}}, "experiment": {"tags": {"version": "v2"}}}},
                      "start": T0, "lifetime": "2h", "interval": "1m", "window": "30m"});
    spec::parse(&body, T0).unwrap().0
}
