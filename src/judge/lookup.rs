//! Config value lookup with Kayenta's `MapUtils` semantics (`judge/utils/MapUtils.scala`),
//! used to read `analysisConfigurations`.
//!
//! `get(data, path)` descends objects by key; on an array it applies the rest of the path to
//! every element and collects what it finds (nothing found → `None`); anything else, and
//! `null`, gives `None`. The typed readers fall back to a default when nothing is found;
//! where Kayenta's reader would throw a cast error (and abort the whole judgment) we return
//! an error that names the path.

use serde_json::Value;

use super::json::{describe, JsonPath, ShapeError};

/// `MapUtils.get(data, path: _*)`.
pub fn get(data: &Value, path: &[&str]) -> Option<Value> {
    if data.is_null() {
        return None;
    }
    let Some((head, rest)) = path.split_first() else {
        return Some(data.clone());
    };
    match data {
        Value::Object(m) => m.get(*head).and_then(|v| get(v, rest)),
        Value::Array(items) => {
            let found: Vec<Value> = items.iter().filter_map(|item| get(item, path)).collect();
            if found.is_empty() {
                None
            } else {
                Some(Value::Array(found))
            }
        }
        _ => None,
    }
}

/// Reads typed values under one base (a metric's `analysisConfigurations`), reporting
/// errors at `base_path` + the looked-up path.
pub struct Reader<'a> {
    pub data: &'a Value,
    pub base_path: JsonPath,
}

impl Reader<'_> {
    fn path_of(&self, path: &[&str]) -> JsonPath {
        path.iter().fold(self.base_path.clone(), |p, k| p.key(k))
    }

    /// String reader: the default if absent, otherwise the value's string form.
    pub fn string(&self, path: &[&str], default: &str) -> String {
        match get(self.data, path) {
            None => default.to_string(),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        }
    }

    /// Number reader: integers and floats are accepted.
    pub fn f64(&self, path: &[&str], default: f64) -> Result<f64, ShapeError> {
        match get(self.data, path) {
            None => Ok(default),
            Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(f64::NAN)),
            Some(other) => Err(ShapeError::new(
                &self.path_of(path),
                format!("expected a number, found {}", describe(&other)),
            )),
        }
    }

    /// Optional number (no default).
    pub fn opt_f64(&self, path: &[&str]) -> Result<Option<f64>, ShapeError> {
        match get(self.data, path) {
            None => Ok(None),
            Some(_) => self.f64(path, f64::NAN).map(Some),
        }
    }

    /// Boolean reader: only JSON booleans (Kayenta casts, so `"true"` aborts the judge).
    pub fn bool(&self, path: &[&str], default: bool) -> Result<bool, ShapeError> {
        match get(self.data, path) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(other) => Err(ShapeError::new(
                &self.path_of(path),
                format!("expected a boolean, found {}", describe(&other)),
            )),
        }
    }

    /// Optional boolean (no default).
    pub fn opt_bool(&self, path: &[&str]) -> Result<Option<bool>, ShapeError> {
        match get(self.data, path) {
            None => Ok(None),
            Some(_) => self.bool(path, false).map(Some),
        }
    }
}

/// `Ok` when `ok`, else the error `message` at `path`.
pub(crate) fn check(ok: bool, path: &JsonPath, message: String) -> Result<(), ShapeError> {
    if ok {
        Ok(())
    } else {
        Err(ShapeError::new(path, message))
    }
}

impl Reader<'_> {
    /// The canary's share of the traffic, for count metrics: `trafficShare`, else
    /// `canaryInstances / (canaryInstances + baselineInstances)`, else an even split; in (0, 1).
    pub(crate) fn traffic_share(&self) -> Result<f64, ShapeError> {
        let base = &self.base_path;
        let share = match self.opt_f64(&["trafficShare"])? {
            Some(s) => s,
            None => match (
                self.opt_f64(&["canaryInstances"])?,
                self.opt_f64(&["baselineInstances"])?,
            ) {
                (Some(c), Some(b)) => {
                    check(
                        c > 0.0 && b > 0.0,
                        &base.key("canaryInstances"),
                        format!("instance counts must be positive, got canary {c}, baseline {b}"),
                    )?;
                    c / (c + b)
                }
                _ => 0.5,
            },
        };
        check(
            share > 0.0 && share < 1.0,
            &base.key("trafficShare"),
            format!("trafficShare must be in (0, 1), got {share}"),
        )?;
        Ok(share)
    }
}
