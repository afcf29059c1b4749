//! The run request (`POST /runs`): a config (by id or inline), scopes and a schedule.
//!
//! ```json
//! {"config": "<id>" | {...},
//!  "scopes": {"default": {"control": {"tags": {"app": "checkout", "version": "v41"}},
//!                         "experiment": {"tags": {"app": "checkout", "version": "v42"}}}},
//!  "start": "now" | "2026-11-22T10:00:00Z", "lifetime": "2h", "interval": "1m",
//!  "window": "30m" | "growing", "warmup": "5m",
//!  "thresholds": {"pass": 95, "marginal": 75}, "judge": "NetflixACAJudge-v1.0",
//!  "align": "interval" | "none" | "1m"}
//! ```
//!
//! With `"start": "now"` (or no start) the schedule is aligned: the first window starts at
//! the next multiple of the interval since the Unix epoch (after the warm-up), so every tick
//! falls on a boundary of `date_bin(INTERVAL '<interval>', ts)` and sliding windows never
//! cut a bucket in half. `align` chooses another boundary size or `"none"`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::judge::json::describe;

/// Tags selecting one side of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSide {
    pub tags: BTreeMap<String, String>,
}

/// Control (baseline) and experiment (canary) of one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub control: ScopeSide,
    pub experiment: ScopeSide,
}

/// How much data each judgment looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// `[tick − window, tick)`.
    Sliding { ms: i64 },
    /// `[start + warmup, tick)`.
    Growing,
}

/// A validated run request, times resolved to epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub config_id: Option<String>,
    pub scopes: BTreeMap<String, Scope>,
    pub start_ms: i64,
    pub lifetime_ms: i64,
    pub interval_ms: i64,
    pub window: Window,
    pub warmup_ms: i64,
    pub pass: f64,
    pub marginal: f64,
    pub judge: Option<String>,
    /// `coalmine-seq-v1`: the run may pass early once it has lasted this long and every
    /// metric's confidence sequence excludes a regression (`minDuration`; unset: no early pass).
    #[serde(default)]
    pub min_duration_ms: Option<i64>,
    /// The traffic-split guard (`trafficSplit`), overriding the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split: Option<crate::judge::split::SplitSpec>,
}

/// The bounds of a run request ([`parse`] refuses anything outside them, so a run's times
/// are far from overflowing; the arithmetic below saturates all the same, for run files
/// written by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Judgments one run may make (`runs.max-judgments`).
    pub max_judgments: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_judgments: 10_000,
        }
    }
}

/// A run starts at most this far from now (either way).
pub const MAX_START_OFFSET_MS: i64 = 366 * 86_400_000;
/// Lifetime, window, warm-up and minimum duration are at most this long.
pub const MAX_SPAN_MS: i64 = 366 * 86_400_000;
/// The shortest interval between judgments.
pub const MIN_INTERVAL_MS: i64 = 1_000;

impl RunSpec {
    pub fn end_ms(&self) -> i64 {
        self.start_ms.saturating_add(self.lifetime_ms)
    }

    /// Number of judgments: one every `interval` after the warm-up, the last at the end.
    pub fn judgments(&self) -> u64 {
        (self.lifetime_ms.saturating_sub(self.warmup_ms) / self.interval_ms.max(1)).max(1) as u64
    }

    /// Time of judgment `i` (1-based).
    pub fn tick_ms(&self, i: u64) -> i64 {
        if i >= self.judgments() {
            self.end_ms()
        } else {
            self.start_ms
                .saturating_add(self.warmup_ms)
                .saturating_add((i as i64).saturating_mul(self.interval_ms))
        }
    }

    /// The first judgment due at or after `t` (O(1): a run of many judgments resumes at
    /// once).
    pub fn first_tick_from(&self, t: i64) -> u64 {
        let first = self.start_ms.saturating_add(self.warmup_ms);
        if t <= first {
            return 1;
        }
        let k = (t - first).div_euclid(self.interval_ms.max(1));
        let i = if first.saturating_add(k.saturating_mul(self.interval_ms)) >= t {
            k
        } else {
            k + 1
        };
        (i.max(1) as u64).min(self.judgments())
    }

    /// `[start, end)` of the values not yet judged at `tick`, given where the previous
    /// judgment's data ended (`None`: the first judgment, from the end of the warm-up). A tick
    /// skipped after a restart does not lose its values: the next one takes them.
    pub fn new_data_window(&self, judged_until: Option<i64>, tick: i64) -> (i64, i64) {
        (judged_until.unwrap_or(self.start_ms + self.warmup_ms), tick)
    }

    /// `[start, end)` judged at `tick`.
    pub fn window_at(&self, tick: i64) -> (i64, i64) {
        let first = self.start_ms + self.warmup_ms;
        match self.window {
            Window::Growing => (first, tick),
            Window::Sliding { ms } => ((tick - ms).max(first), tick),
        }
    }
}

/// The schedule bounds a request is held to, checked again on a spec read from a run file
/// (written before the bounds, or by hand).
pub fn check_bounds(spec: &RunSpec, limits: Limits) -> Result<(), String> {
    if spec.interval_ms < MIN_INTERVAL_MS {
        return Err(format!(
            "interval: must be at least {}",
            span(MIN_INTERVAL_MS)
        ));
    }
    if spec.lifetime_ms <= 0 || spec.lifetime_ms > MAX_SPAN_MS {
        return Err(format!(
            "lifetime: must be longer than 0s and at most {} days",
            MAX_SPAN_MS / 86_400_000
        ));
    }
    if spec.warmup_ms < 0 || spec.warmup_ms >= spec.lifetime_ms {
        return Err("warmup: must be shorter than the lifetime".into());
    }
    if spec.judgments() > limits.max_judgments {
        return Err(format!(
            "interval: it makes {} judgments; a run makes at most {} (runs.max-judgments)",
            spec.judgments(),
            limits.max_judgments
        ));
    }
    Ok(())
}

/// A human duration (`"30s"`, `"5m"`, `"2h"`) in milliseconds.
pub fn duration_ms(v: &Value, field: &str) -> Result<i64, String> {
    let s = v.as_str().ok_or_else(|| {
        format!(
            "{field}: expected a duration like \"5m\", found {}",
            describe(v)
        )
    })?;
    let d = crate::settings::parse_duration(s).map_err(|e| format!("{field}: {e}"))?;
    i64::try_from(d.as_millis())
        .ok()
        .filter(|&ms| ms <= MAX_SPAN_MS)
        .ok_or_else(|| {
            format!(
                "{field}: {s:?} is longer than {} days, the longest a run may span",
                MAX_SPAN_MS / 86_400_000
            )
        })
}

fn span(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

const FIELDS: [&str; 12] = [
    "config",
    "scopes",
    "start",
    "lifetime",
    "interval",
    "window",
    "warmup",
    "thresholds",
    "judge",
    "minDuration",
    "align",
    "trafficSplit",
];

/// Parse and check a run request with the default [`Limits`].
pub fn parse(body: &Value, now_ms: i64) -> Result<(RunSpec, Value), String> {
    parse_with(body, now_ms, Limits::default())
}

/// Parse and check a run request. `now_ms` resolves `"now"` and a missing start. Returns the
/// spec and the `config` value (an id string or an inline config object).
pub fn parse_with(body: &Value, now_ms: i64, limits: Limits) -> Result<(RunSpec, Value), String> {
    let o = body.as_object().ok_or_else(|| {
        format!(
            "a run request must be a JSON object, found {}",
            describe(body)
        )
    })?;
    for k in o.keys() {
        if !FIELDS.contains(&k.as_str()) {
            return Err(format!(
                "{k}: unknown field (expected one of {})",
                FIELDS.join(", ")
            ));
        }
    }
    let config = o
        .get("config")
        .cloned()
        .ok_or("config: missing (a canary config id or an inline config)")?;
    if !config.is_string() && !config.is_object() {
        return Err(format!(
            "config: expected a config id or an inline config object, found {}",
            describe(&config)
        ));
    }
    let scopes_v = o.get("scopes").ok_or("scopes: missing (e.g. {\"default\": {\"control\": {\"tags\": {...}}, \"experiment\": {\"tags\": {...}}}})")?;
    let scopes_o = scopes_v
        .as_object()
        .ok_or_else(|| format!("scopes: expected an object, found {}", describe(scopes_v)))?;
    if scopes_o.is_empty() {
        return Err("scopes: at least one scope (usually \"default\") is required".into());
    }
    let mut scopes = BTreeMap::new();
    for (name, s) in scopes_o {
        let side = |which: &str| -> Result<ScopeSide, String> {
            let path = format!("scopes.{name}.{which}");
            let v = s.get(which).ok_or_else(|| format!("{path}: missing"))?;
            let tags = v
                .get("tags")
                .ok_or_else(|| format!("{path}.tags: missing"))?;
            let tags = tags.as_object().ok_or_else(|| {
                format!(
                    "{path}.tags: expected an object of strings, found {}",
                    describe(tags)
                )
            })?;
            let mut out = BTreeMap::new();
            for (k, t) in tags {
                let t = t.as_str().ok_or_else(|| {
                    format!("{path}.tags.{k}: expected a string, found {}", describe(t))
                })?;
                out.insert(k.clone(), t.to_string());
            }
            if out.is_empty() {
                return Err(format!(
                    "{path}.tags: at least one tag is needed to tell the {which} apart"
                ));
            }
            Ok(ScopeSide { tags: out })
        };
        let scope = Scope {
            control: side("control")?,
            experiment: side("experiment")?,
        };
        if scope.control == scope.experiment {
            return Err(format!(
                "scopes.{name}: control and experiment select the same series"
            ));
        }
        scopes.insert(name.clone(), scope);
    }
    let start_now = matches!(o.get("start"), None | Some(Value::Null))
        || o.get("start").and_then(Value::as_str) == Some("now");
    let start_ms = match o.get("start") {
        None | Some(Value::Null) => now_ms,
        Some(Value::String(s)) if s == "now" => now_ms,
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("start: {s:?} is not \"now\" or an RFC 3339 time ({e})"))?
            .timestamp_millis(),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("start: {n} is not epoch milliseconds"))?,
        Some(other) => {
            return Err(format!(
                "start: expected \"now\" or a time, found {}",
                describe(other)
            ))
        }
    };
    let lifetime_ms = duration_ms(
        o.get("lifetime").ok_or("lifetime: missing (e.g. \"2h\")")?,
        "lifetime",
    )?;
    let interval_ms = match o.get("interval") {
        Some(v) => duration_ms(v, "interval")?,
        None => lifetime_ms,
    };
    let warmup_ms = match o.get("warmup") {
        Some(v) => duration_ms(v, "warmup")?,
        None => 0,
    };
    let window = match o.get("window") {
        None => Window::Growing,
        Some(Value::String(s)) if s == "growing" => Window::Growing,
        Some(v) => Window::Sliding {
            ms: duration_ms(v, "window").map_err(|e| format!("{e} (or \"growing\")"))?,
        },
    };
    if lifetime_ms <= 0 {
        return Err("lifetime: must be longer than 0s".into());
    }
    if interval_ms < MIN_INTERVAL_MS {
        return Err(format!(
            "interval: must be at least {}",
            span(MIN_INTERVAL_MS)
        ));
    }
    if interval_ms > lifetime_ms {
        return Err(format!(
            "interval: {} is longer than the lifetime",
            humantime::format_duration(std::time::Duration::from_millis(interval_ms as u64))
        ));
    }
    if warmup_ms < 0 || warmup_ms >= lifetime_ms {
        return Err("warmup: must be shorter than the lifetime".into());
    }
    if let Window::Sliding { ms } = window {
        if ms <= 0 {
            return Err("window: must be longer than 0s".into());
        }
    }
    let (pass, marginal) = match o.get("thresholds") {
        None => (95.0, 75.0),
        Some(t) => {
            let get = |k: &str| -> Result<f64, String> {
                let v = t.get(k).ok_or_else(|| format!("thresholds.{k}: missing"))?;
                v.as_f64().ok_or_else(|| {
                    format!("thresholds.{k}: expected a number, found {}", describe(v))
                })
            };
            (get("pass")?, get("marginal")?)
        }
    };
    if !(0.0..=100.0).contains(&pass) || !(0.0..=100.0).contains(&marginal) || marginal > pass {
        return Err(format!(
            "thresholds: need 0 ≤ marginal ≤ pass ≤ 100, got pass {pass}, marginal {marginal}"
        ));
    }
    let judge = match o.get("judge") {
        None | Some(Value::Null) => None,
        Some(Value::String(j)) => {
            crate::judge::JudgeKind::from_name(j).map_err(|e| format!("judge: {e}"))?;
            Some(j.clone())
        }
        Some(other) => {
            return Err(format!(
                "judge: expected a judge name, found {}",
                describe(other)
            ))
        }
    };
    // Aligned: the first window (after the warm-up) starts on the next boundary.
    let align_ms = match o.get("align") {
        None | Some(Value::Null) if start_now => Some(interval_ms),
        None | Some(Value::Null) => None,
        Some(Value::String(a)) if a == "interval" => Some(interval_ms),
        Some(Value::String(a)) if a == "none" => None,
        Some(v) => Some(duration_ms(v, "align").map_err(|e| {
            format!("{e} (or \"interval\", the default for \"start\": \"now\", or \"none\")")
        })?),
    };
    if start_ms.abs_diff(now_ms) > MAX_START_OFFSET_MS as u64 {
        return Err(format!(
            "start: must be within {} days of now",
            MAX_START_OFFSET_MS / 86_400_000
        ));
    }
    let start_ms = match align_ms {
        Some(a) if a > 0 => {
            let first = start_ms
                .checked_add(warmup_ms)
                .ok_or("start: out of range")?;
            first.div_euclid(a) * a + if first.rem_euclid(a) == 0 { 0 } else { a } - warmup_ms
        }
        Some(_) => return Err("align: must be longer than 0s".into()),
        None => start_ms,
    };
    let min_duration_ms = match o.get("minDuration") {
        None | Some(Value::Null) => None,
        Some(v) => Some(duration_ms(v, "minDuration")?),
    };
    let judgments = (lifetime_ms - warmup_ms) / interval_ms;
    if judgments as u64 > limits.max_judgments {
        return Err(format!(
            "interval: {} over a lifetime of {} makes {judgments} judgments; a run makes at most {} (runs.max-judgments): lengthen the interval",
            span(interval_ms),
            span(lifetime_ms),
            limits.max_judgments
        ));
    }
    if min_duration_ms.is_some()
        && !matches!(
            judge.as_deref(),
            Some("coalmine-seq-v1" | "coalmine-seq-v2")
        )
    {
        return Err("minDuration: early passes need an anytime-valid judge (\"judge\": \"coalmine-seq-v2\" or \"coalmine-seq-v1\")".into());
    }
    let traffic_split = match o.get("trafficSplit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            crate::judge::split::SplitSpec::parse(
                v,
                &crate::judge::json::JsonPath::root().key("trafficSplit"),
            )
            .map_err(|e| e.to_string())?,
        ),
    };
    let spec = RunSpec {
        min_duration_ms,
        traffic_split,
        config_id: config.as_str().map(str::to_owned),
        scopes,
        start_ms,
        lifetime_ms,
        interval_ms,
        window,
        warmup_ms,
        pass,
        marginal,
        judge,
    };
    Ok((spec, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({"config": "c1", "scopes": {"default": {"control": {"tags": {"version": "v1"}}, "experiment": {"tags": {"version": "v2"}}}},
               "lifetime": "10m", "interval": "1m", "window": "5m", "warmup": "2m"})
    }

    #[test]
    fn ticks_are_aligned_to_the_interval_from_now() {
        // 1m interval, 2m warm-up, requested at 00:16:40.123: the first window starts at the
        // next whole minute after the warm-up (00:19:00), so ticks fall on minute boundaries
        let now = 1_000_123;
        let (s, _) = parse(&body(), now).unwrap();
        assert_eq!(s.start_ms + s.warmup_ms, 1_140_000);
        assert!(
            s.start_ms >= now,
            "no window reaches back before the request"
        );
        for i in 1..s.judgments() {
            assert_eq!(s.tick_ms(i) % 60_000, 0, "tick {i}");
            let (a, b) = s.window_at(s.tick_ms(i));
            assert_eq!((a % 60_000, b % 60_000), (0, 0), "window {i}");
        }
        // on a boundary already: no wait
        let (s, _) = parse(&body(), 1_020_000).unwrap();
        assert_eq!(s.start_ms, 1_020_000);
        // another boundary, or none
        let mut b = body();
        b["align"] = json!("5m");
        let (s, _) = parse(&b, now).unwrap();
        assert_eq!(s.start_ms + s.warmup_ms, 1_200_000);
        b["align"] = json!("none");
        assert_eq!(parse(&b, now).unwrap().0.start_ms, now);
        // an explicit start is kept unless align says otherwise
        let now = 1_795_341_000_000; // 2026-11-22T09:50:00Z
        let mut b = body();
        b["start"] = json!("2026-11-22T10:00:30Z");
        assert_eq!(parse(&b, now).unwrap().0.start_ms, 1_795_341_630_000);
        b["align"] = json!("interval");
        // 10:00:30 + 2m warm-up = 10:02:30 → first window at 10:03:00 → start 10:01:00
        assert_eq!(parse(&b, now).unwrap().0.start_ms, 1_795_341_660_000);
        b["align"] = json!("soon");
        assert!(parse(&b, now)
            .unwrap_err()
            .contains("align: \"soon\" is not a duration"));
    }

    #[test]
    fn schedule() {
        let mut b = body();
        b["align"] = json!("none");
        let (s, _) = parse(&b, 1_000_000).unwrap();
        assert_eq!(s.judgments(), 8);
        assert_eq!(s.tick_ms(1), 1_000_000 + 180_000);
        assert_eq!(s.tick_ms(8), 1_000_000 + 600_000);
        assert_eq!(
            s.window_at(s.tick_ms(1)),
            (1_000_000 + 120_000, 1_000_000 + 180_000)
        );
        assert_eq!(
            s.window_at(s.tick_ms(8)),
            (1_000_000 + 300_000, 1_000_000 + 600_000)
        );
        let mut g = body();
        g["window"] = json!("growing");
        let (s, _) = parse(&g, 0).unwrap();
        assert_eq!(s.window_at(s.tick_ms(8)), (120_000, 600_000));
    }

    /// Hostile or absurd schedules are refused with the bound they break, never accepted and
    /// then overflowed (issue rows: a start near i64::MAX, a 1 ms interval over 1000 years,
    /// a lifetime of 600 million years).
    #[test]
    fn schedules_are_bounded_and_overflow_nowhere() {
        let now = 1_795_341_000_000;
        for (field, value, want) in [
            (
                "start",
                json!(9_223_372_036_854_775_000i64),
                "start: must be within 366 days",
            ),
            (
                "start",
                json!(-9_223_372_036_854_775_000i64),
                "start: must be within 366 days",
            ),
            ("start", json!(0), "start: must be within 366 days"),
            ("interval", json!("1ms"), "interval: must be at least 1s"),
            (
                "lifetime",
                json!("1000years"),
                "lifetime: \"1000years\" is longer than 366 days",
            ),
            (
                "lifetime",
                json!("600000000years"),
                "lifetime: \"600000000years\" is longer than",
            ),
            (
                "window",
                json!("99999999999999999s"),
                "window: \"99999999999999999s\" is longer than",
            ),
        ] {
            let mut b = body();
            b[field] = value;
            let e = parse(&b, now).unwrap_err();
            assert!(e.contains(want), "{field}: {e}");
        }
        // a year of 1-second judgments is more than a run makes
        let mut b = body();
        b["lifetime"] = json!("365days");
        b["interval"] = json!("1s");
        let e = parse(&b, now).unwrap_err();
        assert!(
            e.contains("judgments; a run makes at most 10000 (runs.max-judgments)"),
            "{e}"
        );
        assert!(parse_with(
            &b,
            now,
            Limits {
                max_judgments: 40_000_000
            }
        )
        .is_ok());
        // a run file written by hand with absurd times: saturating, O(1), no panic
        let (mut s, _) = parse(&body(), now).unwrap();
        s.start_ms = i64::MAX - 10;
        s.lifetime_ms = i64::MAX;
        s.interval_ms = 1;
        assert_eq!(s.end_ms(), i64::MAX);
        assert_eq!(s.tick_ms(5), i64::MAX);
        assert_eq!(s.first_tick_from(i64::MIN), 1);
        assert!(s.first_tick_from(i64::MAX) >= 1);
    }

    #[test]
    fn bad_requests_say_what() {
        for (field, value, want) in [
            (
                "lifetime",
                json!("2 hours please"),
                "lifetime: \"2 hours please\" is not a duration",
            ),
            (
                "interval",
                json!("20m"),
                "interval: 20m is longer than the lifetime",
            ),
            ("window", json!(5), "window: expected a duration"),
            (
                "start",
                json!("yesterday"),
                "start: \"yesterday\" is not \"now\" or an RFC 3339 time",
            ),
            (
                "thresholds",
                json!({"pass": 50, "marginal": 75}),
                "need 0 ≤ marginal ≤ pass",
            ),
            (
                "judge",
                json!("dredd-v1.0"),
                "judge: Unable to resolve canary judge 'dredd-v1.0'",
            ),
            ("lifetme", json!("1h"), "lifetme: unknown field"),
            (
                "scopes",
                json!({"default": {"control": {"tags": {"v": "1"}}}}),
                "scopes.default.experiment: missing",
            ),
            (
                "scopes",
                json!({"default": {"control": {"tags": {"v": "1"}}, "experiment": {"tags": {"v": "1"}}}}),
                "select the same series",
            ),
            ("config", json!(42), "config: expected a config id"),
        ] {
            let mut b = body();
            b[field] = value;
            let e = parse(&b, 0).unwrap_err();
            assert!(e.contains(want), "{field}: {e}");
        }
    }
}
