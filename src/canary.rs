//! Canary configs: Kayenta `CanaryConfig` documents (JSON or YAML) with `query.type = "sql"`
//! metrics, validated when saved and kept as files under `<data-dir>/configs/`.
//!
//! Validation is Kayenta's controller check (a name of `[A-Za-z0-9,_-]`, at least one
//! application, unique metric names) plus coalmine's: the document's shape and
//! `analysisConfigurations` types (every judge), a known `judge.name`, and every SQL query
//! parsed and planned against `metrics` (one read-only SELECT returning `value`). Errors
//! name the metric and the JSON path.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::error::kind::{ErrorKind, IoError};
use crate::judge::json::{JsonPath, ShapeError};
use crate::judge::{CanaryConfig, JudgeKind};
use crate::query::{Binding, Engine};

/// Errors of config handling.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("{0}")]
    Invalid(String),
    #[error("Canary config with id '{0}' not found")]
    NotFound(String),
    #[error("Canary config with id or name '{0}' not found")]
    NotFoundByIdOrName(String),
    #[error("Canary config with id '{0}' already exists")]
    Exists(String),
    #[error(transparent)]
    Io(#[from] IoError),
}

impl CanaryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CanaryError::Invalid(_) | CanaryError::Exists(_) => ErrorKind::InvalidInput,
            CanaryError::NotFound(_) | CanaryError::NotFoundByIdOrName(_) => ErrorKind::NotFound,
            CanaryError::Io(e) => e.kind(),
        }
    }
}

impl From<ShapeError> for CanaryError {
    fn from(e: ShapeError) -> Self {
        CanaryError::Invalid(e.to_string())
    }
}

/// How deeply a config document may nest (YAML blocks and flow collections together; JSON
/// has serde_json's own limit of 128).
pub const MAX_YAML_DEPTH: usize = 64;

/// Parse a config body: JSON, or YAML when the content type (or the text) says so. The cost
/// is linear in the body's size (callers bound it); YAML deeper than [`MAX_YAML_DEPTH`] is
/// refused before the YAML parser, which would build an event per level first.
pub fn parse_document(body: &[u8], content_type: Option<&str>) -> Result<Value, CanaryError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        CanaryError::Invalid(format!("the body is not UTF-8 (byte {})", e.valid_up_to()))
    })?;
    let yaml = content_type.is_some_and(|c| c.contains("yaml"));
    if yaml || (!text.trim_start().starts_with('{') && !text.trim().is_empty()) {
        yaml_depth(text, MAX_YAML_DEPTH)?;
        let v: Value = serde_norway::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            CanaryError::Invalid(format!("invalid YAML{at}: {e}"))
        })?;
        return Ok(v);
    }
    crate::judge::json::parse_text(text, "the canary config")
        .map_err(|e| CanaryError::Invalid(e.message))
}

/// Refuse YAML that nests deeper than `max`, in one pass: block nesting is the stack of
/// increasing indentations, flow nesting the open `[`/`{` outside quoted scalars and
/// comments. It may overcount (a more indented literal block, brackets in a plain scalar),
/// never undercount, which is what a bound needs.
fn yaml_depth(text: &str, max: usize) -> Result<(), CanaryError> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if flow == 0 {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        // `- - - x` opens a sequence per dash on one line.
        let compact = body
            .split(' ')
            .take_while(|t| matches!(*t, "-" | "?" | ""))
            .filter(|t| !t.is_empty())
            .count();
        let depth = indents.len() + compact;
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' if matches!(prev, ' ' | '\t' | ':' | '[' | '{' | ',' | '-') => {
                        quote = Some(c)
                    }
                    '#' if matches!(prev, ' ' | '\t') => break,
                    '[' | '{' => flow += 1,
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            if depth + flow > max {
                return Err(CanaryError::Invalid(format!(
                    "the YAML nests deeper than {max} levels at line {}, column {}",
                    n + 1,
                    indent + i + 1
                )));
            }
            prev = c;
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ',' | '_' | '-'))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !id.starts_with('.')
}

/// Validate a config document (see the module docs). Returns the parsed config.
pub async fn validate(doc: &Value, engine: &Engine) -> Result<CanaryConfig, CanaryError> {
    let root = JsonPath::root();
    let obj = doc
        .as_object()
        .ok_or_else(|| CanaryError::Invalid("a canary config must be a JSON object".into()))?;
    match obj.get("name").and_then(Value::as_str) {
        None => {
            return Err(CanaryError::Invalid(
                "name: missing (every canary config needs a name)".into(),
            ))
        }
        Some(n) if !valid_name(n) => {
            return Err(CanaryError::Invalid(format!(
                "name: {n:?} may only contain letters, digits, ',', '_' and '-'"
            )))
        }
        Some(_) => {}
    }
    match obj.get("applications") {
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {}
        _ => {
            return Err(CanaryError::Invalid(
                "applications: at least one application (a list of strings) is required; use [\"ad-hoc\"]".into(),
            ))
        }
    }
    let config = CanaryConfig::from_value(doc, &root)?;
    if config.metrics.is_empty() {
        return Err(CanaryError::Invalid(
            "metrics: at least one metric is required".into(),
        ));
    }
    if let Some(j) = &config.judge_name {
        JudgeKind::from_name(j).map_err(|e| CanaryError::Invalid(format!("judge.name: {e}")))?;
    }
    for kind in JudgeKind::ALL {
        crate::judge::check_settings(kind, &config)
            .map_err(|e| CanaryError::Invalid(e.to_string()))?;
    }
    let metrics = doc
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, m) in metrics.iter().enumerate() {
        let name = m.get("name").and_then(Value::as_str).unwrap_or("?");
        let qpath = root.key("metrics").index(i).key("query");
        let Some(query) = m.get("query") else {
            return Err(CanaryError::Invalid(format!(
                "{qpath}: metric '{name}' has no query"
            )));
        };
        if query.get("type").and_then(Value::as_str) != Some("sql") {
            continue; // other metric sources are kept for /judge but cannot run here
        }
        let Some(sql) = query.get("sql").and_then(Value::as_str) else {
            return Err(CanaryError::Invalid(format!(
                "{}: metric '{name}': `sql` (a string) is required",
                qpath.key("sql")
            )));
        };
        engine.plan(sql, Binding::all()).await.map_err(|e| {
            CanaryError::Invalid(format!("{}: metric '{name}': {e}", qpath.key("sql")))
        })?;
    }
    Ok(config)
}

/// Metrics of a config that cannot run in a canary run (not SQL), by name.
pub fn non_sql_metrics(doc: &Value) -> Vec<String> {
    doc.get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| {
            m.get("query")
                .and_then(|q| q.get("type"))
                .and_then(Value::as_str)
                != Some("sql")
        })
        .map(|m| {
            m.get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

/// Configs on disk.
pub struct ConfigStore {
    dir: PathBuf,
    lock: Mutex<()>,
}

fn now_iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

impl ConfigStore {
    pub fn open(data_dir: &Path) -> Result<ConfigStore, CanaryError> {
        let dir = data_dir.join("configs");
        std::fs::create_dir_all(&dir).map_err(|e| {
            CanaryError::Io(IoError::new(format!("cannot create {}", dir.display()), e))
        })?;
        Ok(ConfigStore {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn path(&self, id: &str) -> Result<PathBuf, CanaryError> {
        if !valid_id(id) {
            return Err(CanaryError::NotFound(id.to_string()));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Summaries (id, name, applications, timestamps), optionally only those of `applications`.
    pub fn list(&self, applications: &[String]) -> Result<Vec<Value>, CanaryError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            CanaryError::Io(IoError::new(
                format!("cannot list {}", self.dir.display()),
                e,
            ))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(doc) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let apps: Vec<String> = doc
                .get("applications")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            if !applications.is_empty() && !apps.iter().any(|a| applications.contains(a)) {
                continue;
            }
            let mut s = Map::new();
            for k in [
                "id",
                "name",
                "applications",
                "updatedTimestamp",
                "updatedTimestampIso",
            ] {
                if let Some(v) = doc.get(k) {
                    s.insert(k.to_string(), v.clone());
                }
            }
            out.push(Value::Object(s));
        }
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Value, CanaryError> {
        let path = self.path(id)?;
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CanaryError::NotFound(id.to_string()),
            _ => CanaryError::Io(IoError::new(format!("cannot read {}", path.display()), e)),
        })?;
        serde_json::from_str(&text)
            .map_err(|e| CanaryError::Invalid(format!("{} is corrupt: {e}", path.display())))
    }

    /// The config with this id, else the one config with this name (a pipeline knows the
    /// name it deployed the config under, not the id the API generated). Two configs of one
    /// name are an error naming their ids.
    pub fn resolve(&self, id_or_name: &str) -> Result<Value, CanaryError> {
        match self.get(id_or_name) {
            Err(CanaryError::NotFound(_)) => {}
            found => return found,
        }
        let ids: Vec<String> = self
            .list(&[])?
            .into_iter()
            .filter(|c| c["name"].as_str() == Some(id_or_name))
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect();
        match ids.as_slice() {
            [id] => self.get(id),
            [] => Err(CanaryError::NotFoundByIdOrName(id_or_name.to_string())),
            _ => Err(CanaryError::Invalid(format!(
                "config: {} canary configs are named '{id_or_name}' (ids {}): use an id",
                ids.len(),
                ids.join(", ")
            ))),
        }
    }

    /// Save a new config (validated by the caller); returns its id.
    pub fn create(&self, mut doc: Value) -> Result<String, CanaryError> {
        let _g = self.lock.lock().expect("config lock");
        let id = match doc.get("id").and_then(Value::as_str) {
            Some(id) if !valid_id(id) => {
                return Err(CanaryError::Invalid(format!(
                    "id: {id:?} may only contain letters, digits, '.', '_' and '-'"
                )))
            }
            Some(id) => id.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        if self.path(&id)?.exists() {
            return Err(CanaryError::Exists(id));
        }
        let now = crate::store::now_ms();
        let o = doc.as_object_mut().expect("validated as an object");
        o.insert("id".into(), Value::String(id.clone()));
        o.entry("createdTimestamp").or_insert(Value::from(now));
        o.entry("createdTimestampIso")
            .or_insert(Value::String(now_iso(now)));
        o.insert("updatedTimestamp".into(), Value::from(now));
        o.insert("updatedTimestampIso".into(), Value::String(now_iso(now)));
        self.write(&id, &doc)?;
        Ok(id)
    }

    /// Replace an existing config.
    pub fn update(&self, id: &str, mut doc: Value) -> Result<(), CanaryError> {
        let _g = self.lock.lock().expect("config lock");
        let old = self.get(id)?;
        let now = crate::store::now_ms();
        let o = doc.as_object_mut().expect("validated as an object");
        o.insert("id".into(), Value::String(id.to_string()));
        for k in ["createdTimestamp", "createdTimestampIso"] {
            if let Some(v) = old.get(k) {
                o.insert(k.into(), v.clone());
            }
        }
        o.insert("updatedTimestamp".into(), Value::from(now));
        o.insert("updatedTimestampIso".into(), Value::String(now_iso(now)));
        self.write(id, &doc)
    }

    pub fn delete(&self, id: &str) -> Result<(), CanaryError> {
        let _g = self.lock.lock().expect("config lock");
        let path = self.path(id)?;
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CanaryError::NotFound(id.to_string()),
            _ => CanaryError::Io(IoError::new(format!("cannot delete {}", path.display()), e)),
        })
    }

    fn write(&self, id: &str, doc: &Value) -> Result<(), CanaryError> {
        let path = self.path(id)?;
        crate::store::write_atomically(
            &path,
            &serde_json::to_vec_pretty(doc).expect("json serialises"),
        )
        .map_err(|e| CanaryError::Io(IoError::new(format!("cannot write {}", path.display()), e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_nesting_is_bounded_before_the_parser() {
        let ok = "name: a\nmetrics:\n  - name: m\n    query: |\n      SELECT a[1] FROM t -- it's [\n    groups: [\"x\", 'y[']\n";
        yaml_depth(ok, MAX_YAML_DEPTH).unwrap();
        let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_document(flow.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nests deeper than 64 levels at line 1, column 64"),
            "{e}"
        );
        let mut block = String::new();
        for i in 0..70 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        let e = parse_document(block.as_bytes(), Some("application/yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nests deeper than 64 levels at line 65"), "{e}");
        let dashes = "- ".repeat(1000) + "x";
        let e = parse_document(dashes.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nests deeper than 64"), "{e}");
        // Within the bound, the document parses.
        let fine = format!("{}{}", "[".repeat(60), "]".repeat(60));
        parse_document(fine.as_bytes(), None).unwrap();
    }
}
