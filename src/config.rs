//! `coalmine.toml`: the daemon's settings.
//!
//! Layers, lowest first: the embedded defaults, the file, then environment variables
//! `COALMINE__SECTION__KEY` (`COALMINE__STORE__DATA_DIR=/var/lib/coalmine`; underscores in
//! the key stand for dashes; values are read as TOML when they parse as a TOML value, else as
//! strings). Keys are kebab-case, durations are human (`"1s"`, `"6h"`, `"7d"`), sizes take
//! units (`"50GiB"`). Loading reports **every** problem, each with the file, line and column
//! (or the environment variable) and the setting's path.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::ingest::decode::Format;
use crate::store::StoreConfig;

const SECTIONS: [&str; 7] = [
    "store", "kafka", "server", "runs", "verdicts", "archive", "log",
];

/// One documented setting (drives validation, `coalmine serve --help` and the example file).
pub struct Setting {
    pub key: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub doc: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    OptStr,
    Int,
    Bool,
    Duration,
    Bytes,
    OptBytes,
    /// A table of string → string (librdkafka properties).
    StrMap,
    /// `[[kafka.topics]]` entries: `{name, format}`.
    Topics,
}

/// Every setting, in `--help` order.
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
    Setting { key: "kafka.bootstrap-servers", kind: Kind::Str, default: "127.0.0.1:9092", doc: "Kafka brokers (librdkafka bootstrap.servers)." },
    Setting { key: "kafka.group-id", kind: Kind::Str, default: "coalmine", doc: "Consumer group: daemons in one group split the partitions." },
    Setting { key: "kafka.topics", kind: Kind::Topics, default: "[{ name = \"metrics\", format = \"json\" }]", doc: "Topics to consume, each with its payload format: json | influx | prometheus-json." },
    Setting { key: "kafka.dead-letter-topic", kind: Kind::OptStr, default: "", doc: "Undecodable messages are copied here with headers coalmine-source-topic/-partition/-offset/-error (unset: only counted and logged)." },
    Setting { key: "kafka.max-message-bytes", kind: Kind::Bytes, default: "1MiB", doc: "Messages larger than this are rejected as undecodable." },
    Setting { key: "kafka.poll-batch", kind: Kind::Int, default: "5000", doc: "Messages handed to the decoder at a time." },
    Setting { key: "kafka.client", kind: Kind::StrMap, default: "{}", doc: "Any other librdkafka consumer property, e.g. { \"session.timeout.ms\" = \"6000\", \"security.protocol\" = \"ssl\" }." },
    Setting { key: "server.listen", kind: Kind::Str, default: "127.0.0.1:8090", doc: "Address of the HTTP API (Kayenta's port by default; port 0 picks a free one)." },
    Setting { key: "server.token", kind: Kind::OptStr, default: "", doc: "When set, POST/PUT/DELETE on /canaryConfig and /runs need `Authorization: Bearer <token>` (prefer COALMINE__SERVER__TOKEN to keep it out of files)." },
    Setting { key: "runs.judge-threads", kind: Kind::Int, default: "0", doc: "Judgments computed at once (0: one less than the cores, at least 1), so ingest keeps a core." },
    Setting { key: "runs.lateness", kind: Kind::Duration, default: "500ms", doc: "A judgment of a window ending at t runs at t + lateness, and only once ingest has caught up past that (points produced up to t are in)." },
    Setting { key: "verdicts.topic", kind: Kind::OptStr, default: "", doc: "Kafka topic receiving every judgment and final verdict as JSON, keyed by run id (unset: none)." },
    Setting { key: "archive.dir", kind: Kind::OptStr, default: "", doc: "Where every judgment's metric-set pairs, config and result are archived (unset: <store.data-dir>/archive; \"off\" disables)." },
    Setting { key: "log.level", kind: Kind::Str, default: "info", doc: "Log filter (error | warn | info | debug | trace, or a tracing directive like coalmine=debug)." },
];

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: String,
    pub token: Option<String>,
}

/// A Kafka topic to consume.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub name: String,
    pub format: Format,
}

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<TopicConfig>,
    pub dead_letter_topic: Option<String>,
    pub max_message_bytes: usize,
    pub poll_batch: usize,
    pub client: BTreeMap<String, String>,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub store: StoreConfig,
    pub kafka: KafkaConfig,
    pub server: ServerConfig,
    /// Concurrent judgments (resolved: never 0).
    pub judge_threads: usize,
    pub lateness: Duration,
    pub verdicts_topic: Option<String>,
    /// Where judgments are archived (`None`: off).
    pub archive_dir: Option<PathBuf>,
    pub log_level: String,
    /// Where it came from, for messages.
    pub source: String,
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// A value with where it came from.
enum Raw<'a> {
    File(&'a Spanned<DeValue<'a>>),
    Env { var: String, value: toml::Value },
}

struct Loader<'a> {
    text: &'a str,
    origin: String,
    problems: Vec<String>,
}

impl Loader<'_> {
    fn at(&self, span: Range<usize>) -> String {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{}:{line}:{col}", self.origin)
    }

    fn where_of(&self, raw: &Raw<'_>) -> String {
        match raw {
            Raw::File(v) => self.at(v.span()),
            Raw::Env { var, .. } => format!("environment variable {var}"),
        }
    }

    fn problem(&mut self, raw: &Raw<'_>, key: &str, msg: String) {
        let w = self.where_of(raw);
        self.problems.push(format!("{w}: {key}: {msg}"));
    }
}

fn describe_toml(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Parse `"1s"`, `"6h"`, `"7d"`, `"250ms"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}; e.g. \"30s\", \"5m\", \"7d\")"))
}

/// Parse `"50GiB"`, `"1MiB"`, `"10MB"`, `"4096"`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. \"512MiB\", \"50GiB\")"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024f64.powi(4),
        u => {
            return Err(format!(
                "{s:?}: unknown size unit {u:?} (B, KB, MB, GB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    Ok((n * mult).round() as u64)
}

/// Values as plain TOML (defaults and env are not spanned).
fn de_to_toml(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            toml::Value::Integer(i.as_str().replace('_', "").parse().unwrap_or(i64::MAX))
        }
        DeValue::Float(f) => {
            toml::Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN))
        }
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => {
            toml::Value::Array(a.iter().map(|x| de_to_toml(x.get_ref())).collect())
        }
        DeValue::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), de_to_toml(x.get_ref())))
                .collect(),
        ),
    }
}

impl Config {
    /// The embedded defaults.
    pub fn defaults() -> Config {
        Config::from_text("", "defaults", &BTreeMap::new()).expect("the defaults are valid")
    }

    /// Load `path` (or only the defaults when `None`), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("COALMINE__"))
            .collect();
        match path {
            None => Config::from_text("", "defaults", &env),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", p.display())]))?;
                Config::from_text(&text, &p.display().to_string(), &env)
            }
        }
    }

    /// Build from TOML text and `COALMINE__…` variables.
    pub fn from_text(
        text: &str,
        origin: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut l = Loader {
            text,
            origin: origin.to_string(),
            problems: Vec::new(),
        };
        let (root, errors) = DeTable::parse_recoverable(text);
        for e in &errors {
            let at = e
                .span()
                .map(|s| l.at(s))
                .unwrap_or_else(|| origin.to_string());
            l.problems.push(format!("{at}: {}", e.message().trim()));
        }
        let root = root.into_inner();
        // Unknown keys anywhere.
        for (section, value) in root.iter() {
            let sname = section.get_ref().to_string();
            match value.get_ref() {
                DeValue::Table(t) if SECTIONS.contains(&sname.as_str()) => {
                    for (k, v) in t.iter() {
                        let full = format!("{sname}.{}", k.get_ref());
                        if !SETTINGS.iter().any(|s| s.key == full) {
                            let w = l.at(k.span());
                            l.problems.push(format!(
                                "{w}: unknown setting `{full}`{}",
                                suggestion(&full)
                            ));
                        }
                        let _ = v;
                    }
                }
                other => {
                    let w = l.at(section.span());
                    let what = if matches!(other, DeValue::Table(_)) {
                        "section"
                    } else {
                        "top-level key"
                    };
                    l.problems.push(format!(
                        "{w}: unknown {what} `{sname}` (sections: {})",
                        SECTIONS.join(", ")
                    ));
                }
            }
        }
        let mut env_values: BTreeMap<String, (String, toml::Value)> = BTreeMap::new();
        for (var, raw) in env {
            let rest = &var["COALMINE__".len()..];
            let Some((section, key)) = rest.split_once("__") else {
                l.problems.push(format!(
                    "environment variable {var}: expected COALMINE__SECTION__KEY"
                ));
                continue;
            };
            let full = format!(
                "{}.{}",
                section.to_lowercase(),
                key.to_lowercase().replace('_', "-")
            );
            if !SETTINGS.iter().any(|s| s.key == full) {
                l.problems.push(format!(
                    "environment variable {var}: unknown setting `{full}`{}",
                    suggestion(&full)
                ));
                continue;
            }
            let value = raw
                .parse::<toml::Value>()
                .ok()
                .or_else(|| {
                    format!("v = {raw}")
                        .parse::<toml::Table>()
                        .ok()
                        .and_then(|mut t| t.remove("v"))
                })
                .unwrap_or_else(|| toml::Value::String(raw.clone()));
            env_values.insert(full, (var.clone(), value));
        }
        let lookup = |key: &str| -> Option<Raw<'_>> {
            if let Some((var, v)) = env_values.get(key) {
                return Some(Raw::Env {
                    var: var.clone(),
                    value: v.clone(),
                });
            }
            let (section, k) = key.split_once('.')?;
            match root.get(section)?.get_ref() {
                DeValue::Table(t) => t.get(k).map(Raw::File),
                _ => None,
            }
        };
        let mut vals: BTreeMap<&'static str, Option<toml::Value>> = BTreeMap::new();
        for s in SETTINGS {
            let raw = lookup(s.key);
            let value = match &raw {
                None => None,
                Some(r) => {
                    let v = match r {
                        Raw::File(v) => de_to_toml(v.get_ref()),
                        Raw::Env { value, .. } => value.clone(),
                    };
                    match check(s, &v) {
                        Ok(()) => Some(v),
                        Err(msg) => {
                            l.problem(r, s.key, msg);
                            None
                        }
                    }
                }
            };
            vals.insert(s.key, value);
        }
        if !l.problems.is_empty() {
            return Err(ConfigError(l.problems));
        }
        let default = |key: &str| -> toml::Value {
            let s = SETTINGS
                .iter()
                .find(|s| s.key == key)
                .expect("known setting");
            format!("v = {}", toml_literal(s))
                .parse::<toml::Table>()
                .expect("defaults parse")
                .remove("v")
                .expect("v")
        };
        let get = |key: &'static str| -> Option<toml::Value> {
            let s = SETTINGS
                .iter()
                .find(|s| s.key == key)
                .expect("known setting");
            vals.get(key)
                .cloned()
                .flatten()
                .or_else(|| (!s.default.is_empty()).then(|| default(key)))
        };
        let string = |key: &'static str| get(key).and_then(|v| v.as_str().map(str::to_owned));
        let int = |key: &'static str| get(key).and_then(|v| v.as_integer()).unwrap_or(0) as usize;
        let dur = |key: &'static str| {
            parse_duration(
                get(key)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .as_deref()
                    .unwrap_or("0s"),
            )
            .unwrap_or_default()
        };
        let bytes = |key: &'static str| {
            get(key).map(|v| match v {
                toml::Value::Integer(i) => i as u64,
                toml::Value::String(s) => parse_bytes(&s).unwrap_or(0),
                _ => 0,
            })
        };
        let mut store =
            StoreConfig::new(PathBuf::from(string("store.data-dir").unwrap_or_default()));
        store.flush_interval = dur("store.flush-interval");
        store.flush_points = int("store.flush-points");
        store.hot_window = dur("store.hot-window");
        store.retention = dur("store.retention");
        store.max_clock_skew = dur("store.max-clock-skew");
        store.max_bytes = bytes("store.max-bytes");
        store.compact_below_points = int("store.compact-below-points");
        store.compact_min_segments = int("store.compact-min-segments");
        let topics = match get("kafka.topics") {
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|t| TopicConfig {
                    name: t
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    format: parse_format(
                        t.get("format").and_then(|f| f.as_str()).unwrap_or("json"),
                    )
                    .unwrap_or(Format::Json),
                })
                .collect(),
            _ => Vec::new(),
        };
        let client = match get("kafka.client") {
            Some(toml::Value::Table(t)) => {
                t.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect()
            }
            _ => BTreeMap::new(),
        };
        let kafka = KafkaConfig {
            bootstrap_servers: string("kafka.bootstrap-servers").unwrap_or_default(),
            group_id: string("kafka.group-id").unwrap_or_default(),
            topics,
            dead_letter_topic: string("kafka.dead-letter-topic").filter(|s| !s.is_empty()),
            max_message_bytes: bytes("kafka.max-message-bytes").unwrap_or(1 << 20) as usize,
            poll_batch: int("kafka.poll-batch"),
            client,
        };
        let threads = match int("runs.judge-threads") {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
            n => n,
        };
        let cfg = Config {
            store,
            kafka,
            server: ServerConfig {
                listen: string("server.listen").unwrap_or_default(),
                token: string("server.token").filter(|t| !t.is_empty()),
            },
            judge_threads: threads,
            lateness: dur("runs.lateness"),
            verdicts_topic: string("verdicts.topic").filter(|t| !t.is_empty()),
            archive_dir: match string("archive.dir").filter(|d| !d.is_empty()) {
                Some(d) if d == "off" => None,
                Some(d) => Some(PathBuf::from(d)),
                None => Some(
                    PathBuf::from(string("store.data-dir").unwrap_or_default()).join("archive"),
                ),
            },
            log_level: string("log.level").unwrap_or_else(|| "info".into()),
            source: origin.to_string(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Cross-field checks.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        let s = &self.store;
        if s.flush_interval.is_zero() {
            p.push("store.flush-interval: must be more than 0s".to_string());
        }
        if s.flush_points == 0 {
            p.push("store.flush-points: must be at least 1".into());
        }
        if s.retention < s.flush_interval {
            p.push("store.retention: must be longer than store.flush-interval".into());
        }
        if self.kafka.topics.is_empty() {
            p.push("kafka.topics: at least one topic is needed".into());
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.kafka.topics {
            if !seen.insert(&t.name) {
                p.push(format!("kafka.topics: topic {:?} is listed twice", t.name));
            }
            if Some(&t.name) == self.kafka.dead_letter_topic.as_ref() {
                p.push(format!(
                    "kafka.dead-letter-topic: {:?} is also a consumed topic (would loop)",
                    t.name
                ));
            }
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err()
            && !self.server.listen.contains(':')
        {
            p.push(format!(
                "server.listen: {:?} is not an address like 127.0.0.1:8090",
                self.server.listen
            ));
        }
        if self
            .verdicts_topic
            .as_ref()
            .is_some_and(|v| self.kafka.topics.iter().any(|t| &t.name == v))
        {
            p.push("verdicts.topic: is also a consumed topic".into());
        }
        if self.kafka.poll_batch == 0 {
            p.push("kafka.poll-batch: must be at least 1".into());
        }
        for reserved in [
            "bootstrap.servers",
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
        ] {
            if self.kafka.client.contains_key(reserved) {
                p.push(format!("kafka.client: {reserved:?} is set by coalmine (use kafka.bootstrap-servers / kafka.group-id; commits are manual)"));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(p))
        }
    }
}

fn scalar_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => String::new(),
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "json" => Ok(Format::Json),
        "influx" | "line-protocol" => Ok(Format::Influx),
        "prometheus-json" => Ok(Format::PrometheusJson),
        other => Err(format!(
            "unknown format {other:?} (json | influx | prometheus-json)"
        )),
    }
}

fn toml_literal(s: &Setting) -> String {
    match s.kind {
        Kind::Str | Kind::OptStr | Kind::Duration | Kind::Bytes | Kind::OptBytes => {
            format!("{:?}", s.default)
        }
        _ => s.default.to_string(),
    }
}

fn check(s: &Setting, v: &toml::Value) -> Result<(), String> {
    let want = |what: &str| Err(format!("expected {what}, found {}", describe_toml(v)));
    match s.kind {
        Kind::Str | Kind::OptStr => match v {
            toml::Value::String(x) if s.kind == Kind::Str && x.trim().is_empty() => {
                Err("must not be empty".into())
            }
            toml::Value::String(_) => Ok(()),
            _ => want("a string"),
        },
        Kind::Int => match v {
            toml::Value::Integer(i) if *i >= 0 => Ok(()),
            toml::Value::Integer(i) => Err(format!("must not be negative, got {i}")),
            _ => want("an integer"),
        },
        Kind::Bool => match v {
            toml::Value::Boolean(_) => Ok(()),
            _ => want("true or false"),
        },
        Kind::Duration => match v {
            toml::Value::String(x) => parse_duration(x).map(|_| ()),
            _ => want("a duration string like \"30s\""),
        },
        Kind::Bytes | Kind::OptBytes => match v {
            toml::Value::Integer(i) if *i > 0 => Ok(()),
            toml::Value::String(x) => parse_bytes(x).map(|_| ()),
            _ => want("a size like \"512MiB\" or a number of bytes"),
        },
        Kind::StrMap => match v {
            toml::Value::Table(t) => {
                for (k, x) in t {
                    if matches!(x, toml::Value::Table(_) | toml::Value::Array(_)) {
                        return Err(format!(
                            "property {k:?} must be a string, number or boolean"
                        ));
                    }
                }
                Ok(())
            }
            _ => want("a table of properties"),
        },
        Kind::Topics => match v {
            toml::Value::Array(items) => {
                for (i, t) in items.iter().enumerate() {
                    let Some(tab) = t.as_table() else {
                        return Err(format!("[{i}]: expected a table {{ name, format }}"));
                    };
                    for k in tab.keys() {
                        if k != "name" && k != "format" {
                            return Err(format!("[{i}]: unknown key {k:?} (name, format)"));
                        }
                    }
                    match tab.get("name").and_then(|n| n.as_str()) {
                        Some(n) if !n.trim().is_empty() => {}
                        _ => return Err(format!("[{i}]: `name` (a non-empty string) is required")),
                    }
                    if let Some(f) = tab.get("format") {
                        parse_format(f.as_str().unwrap_or("?"))
                            .map_err(|e| format!("[{i}].format: {e}"))?;
                    }
                }
                Ok(())
            }
            _ => want("an array of { name, format } tables"),
        },
    }
}

fn suggestion(full: &str) -> String {
    let best = SETTINGS
        .iter()
        .map(|s| (strsim(full, s.key), s.key))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 3 => format!(" (did you mean `{k}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance (for suggestions).
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Text for `coalmine serve --help`: every setting with its default.
pub fn settings_help() -> String {
    let mut out = String::from("SETTINGS (coalmine.toml; env COALMINE__SECTION__KEY overrides, e.g. COALMINE__STORE__DATA_DIR):\n");
    let mut section = "";
    for s in SETTINGS {
        let (sec, key) = s.key.split_once('.').expect("section.key");
        if sec != section {
            out.push_str(&format!("\n  [{sec}]\n"));
            section = sec;
        }
        let default = if s.default.is_empty() {
            "unset".to_string()
        } else {
            s.default.to_string()
        };
        out.push_str(&format!("  {key} = {default}\n      {}\n", s.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::defaults();
        assert_eq!(c.store.flush_interval, Duration::from_secs(1));
        assert_eq!(
            c.kafka.topics,
            vec![TopicConfig {
                name: "metrics".into(),
                format: Format::Json
            }]
        );
        let text = "[store]\ndata-dir = \"/tmp/x\"\nmax-bytes = \"1GiB\"\n[kafka]\ntopics = [{ name = \"a\", format = \"influx\" }, { name = \"b\" }]\nclient = { \"session.timeout.ms\" = 6000 }\n";
        let env: BTreeMap<String, String> =
            [("COALMINE__STORE__FLUSH_INTERVAL".into(), "250ms".into())].into();
        let c = Config::from_text(text, "t.toml", &env).unwrap();
        assert_eq!(c.store.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.store.max_bytes, Some(1 << 30));
        assert_eq!(c.store.flush_interval, Duration::from_millis(250));
        assert_eq!(c.kafka.topics[0].format, Format::Influx);
        assert_eq!(c.kafka.topics[1].format, Format::Json);
        assert_eq!(c.kafka.client["session.timeout.ms"], "6000");
    }

    #[test]
    fn every_problem_with_its_line() {
        let text = "[store]\nflush-interval = \"1x\"\nflush-points = -3\ndata-dri = \"/x\"\n[kafka]\ntopics = [{ name = \"a\", format = \"xml\" }]\n[bogus]\n";
        let env: BTreeMap<String, String> =
            [("COALMINE__STORE__RETENTON".into(), "1d".into())].into();
        let e = Config::from_text(text, "c.toml", &env).unwrap_err();
        let all = e.to_string();
        assert!(
            all.contains("c.toml:2:18: store.flush-interval: \"1x\" is not a duration"),
            "{all}"
        );
        assert!(
            all.contains("c.toml:3:16: store.flush-points: must not be negative"),
            "{all}"
        );
        assert!(
            all.contains(
                "c.toml:4:1: unknown setting `store.data-dri` (did you mean `store.data-dir`?)"
            ),
            "{all}"
        );
        assert!(
            all.contains("kafka.topics: [0].format: unknown format \"xml\""),
            "{all}"
        );
        assert!(all.contains("c.toml:7:2: unknown section `bogus`"), "{all}");
        assert!(all.contains("COALMINE__STORE__RETENTON: unknown setting `store.retenton` (did you mean `store.retention`?)"), "{all}");
        assert_eq!(e.0.len(), 6, "{all}");
        let e = Config::from_text("[store\n", "s.toml", &BTreeMap::new()).unwrap_err();
        assert!(e.0[0].starts_with("s.toml:1:"), "{e}");
    }

    #[test]
    fn cross_field_checks() {
        let e = Config::from_text(
            "[kafka]\ntopics = []\nclient = { \"group.id\" = \"x\" }\n",
            "c",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.0.iter().any(|p| p.contains("at least one topic")));
        assert!(e
            .0
            .iter()
            .any(|p| p.contains("\"group.id\" is set by coalmine")));
    }
}
