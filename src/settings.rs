//! The settings loader: every stage declares its settings (a [`Setting`] table beside its
//! code, read back typed through [`Values`] in its own `from_settings`, and checked across
//! fields in its `build`); this module reads them from `coalmine.toml` and the environment.
//!
//! Layers, lowest first: the embedded defaults, the file, then environment variables
//! `COALMINE__SECTION__KEY` (`COALMINE__STORE__DATA_DIR=/var/lib/coalmine`; underscores in
//! the key stand for dashes; values are read as TOML when they parse as a TOML value, else as
//! strings). Keys are kebab-case, durations are human (`"1s"`, `"6h"`, `"7d"`, humantime),
//! sizes take units (`"50GiB"`, bytesize). Loading reports **every** problem, each with the
//! file, line and column (or the environment variable) and the setting's path, and suggests
//! the nearest known key for an unknown one.
//!
//! This module depends on no stage: stages depend on it, and [`crate::config`] gathers them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One documented setting (drives validation, `coalmine serve --help` and the example file).
pub struct Setting {
    /// `section.key`.
    pub key: &'static str,
    pub kind: Kind,
    /// The default as written in `coalmine.toml` (empty: unset).
    pub default: &'static str,
    pub doc: &'static str,
}

/// How a setting's value is checked and read.
#[derive(Clone, Copy)]
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
    /// Checked by the stage's own function (e.g. `kafka.topics`).
    Custom(fn(&toml::Value) -> Result<(), String>),
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

/// "a string", "an integer", … for messages.
pub fn describe_toml(v: &toml::Value) -> &'static str {
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

/// Parse `"50GiB"`, `"1MiB"`, `"10MB"`, `"4096"` (bytesize's units).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{s:?} is not a size ({e}; e.g. \"512MiB\", \"50GiB\")"))
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

/// The values of every setting after defaults < file < environment, checked by kind.
pub struct Values {
    values: BTreeMap<&'static str, toml::Value>,
}

/// Read and check every setting of `sections` from TOML `text` (named `origin` in messages)
/// and the `COALMINE__…` variables in `env`.
pub fn load(
    text: &str,
    origin: &str,
    env: &BTreeMap<String, String>,
    sections: &[(&'static str, &'static [Setting])],
) -> Result<Values, ConfigError> {
    let all = || sections.iter().flat_map(|(_, s)| s.iter());
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
            DeValue::Table(t) if sections.iter().any(|(n, _)| *n == sname) => {
                for (k, v) in t.iter() {
                    let full = format!("{sname}.{}", k.get_ref());
                    if !all().any(|s| s.key == full) {
                        let w = l.at(k.span());
                        l.problems.push(format!(
                            "{w}: unknown setting `{full}`{}",
                            suggestion(&full, all())
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
                    sections
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
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
        if !all().any(|s| s.key == full) {
            l.problems.push(format!(
                "environment variable {var}: unknown setting `{full}`{}",
                suggestion(&full, all())
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
    for s in all() {
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
    if !l.problems.is_empty() {
        return Err(ConfigError(l.problems));
    }
    let mut values = BTreeMap::new();
    for s in all() {
        let v = vals.remove(s.key).flatten().or_else(|| {
            (!s.default.is_empty()).then(|| {
                format!("v = {}", toml_literal(s))
                    .parse::<toml::Table>()
                    .expect("defaults parse")
                    .remove("v")
                    .expect("v")
            })
        });
        if let Some(v) = v {
            values.insert(s.key, v);
        }
    }
    Ok(Values { values })
}

impl Values {
    /// The value of `key` (`None`: unset, no default).
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.values.get(key)
    }

    /// A string setting; `None` when unset or empty.
    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    pub fn int(&self, key: &str) -> usize {
        self.get(key).and_then(|v| v.as_integer()).unwrap_or(0) as usize
    }

    pub fn duration(&self, key: &str) -> Duration {
        self.get(key)
            .and_then(|v| v.as_str())
            .and_then(|s| parse_duration(s).ok())
            .unwrap_or_default()
    }

    /// A size in bytes (`None`: unset).
    pub fn bytes(&self, key: &str) -> Option<u64> {
        self.get(key).map(|v| match v {
            toml::Value::Integer(i) => *i as u64,
            toml::Value::String(s) => parse_bytes(s).unwrap_or(0),
            _ => 0,
        })
    }

    /// A table of properties, each value as text.
    pub fn table(&self, key: &str) -> BTreeMap<String, String> {
        match self.get(key) {
            Some(toml::Value::Table(t)) => {
                t.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect()
            }
            _ => BTreeMap::new(),
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
            toml::Value::String(x) if matches!(s.kind, Kind::Str) && x.trim().is_empty() => {
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
        Kind::Custom(validate) => validate(v),
    }
}

fn suggestion<'a>(full: &str, known: impl Iterator<Item = &'a Setting>) -> String {
    let best = known
        .map(|s| (strsim::levenshtein(full, s.key), s.key))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 3 => format!(" (did you mean `{k}`?)"),
        _ => String::new(),
    }
}

/// Text for `coalmine serve --help`: every setting with its default.
pub fn help<'a>(settings: impl Iterator<Item = &'a Setting>) -> String {
    let mut out = String::from("SETTINGS (coalmine.toml; env COALMINE__SECTION__KEY overrides, e.g. COALMINE__STORE__DATA_DIR):\n");
    let mut section = "";
    for s in settings {
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
