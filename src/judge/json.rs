//! JSON conventions shared with Kayenta: NaN travels as the string `"NaN"` (Jackson's way),
//! and every input error names the JSON path that is wrong.

use std::fmt;

use serde::Serializer;
use serde_json::Value;

/// Serialise an `f64` as Kayenta does: a number, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
pub fn f64_kayenta<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(*v)
    }
}

/// `#[serde(with = "crate::judge::json::kayenta_f64")]`: an `f64` written as Kayenta writes
/// it ([`f64_kayenta`]) and read back from a number or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub mod kayenta_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        super::f64_kayenta(v, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum NumberOrText<'a> {
            Number(f64),
            Text(std::borrow::Cow<'a, str>),
        }
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(v) => Ok(v),
            NumberOrText::Text(t) => match t.as_ref() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, \"NaN\" or \"±Infinity\", found {other:?}"
                ))),
            },
        }
    }
}

/// [`kayenta_f64`] for a `Vec<f64>`: non-finite elements as `"NaN"`/`"Infinity"` both ways
/// (plain JSON numbers cannot hold them; states saved between ticks must read back).
pub mod kayenta_f64_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        super::f64_vec_kayenta(v, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Element(#[serde(with = "super::kayenta_f64")] f64);
        Ok(Vec::<Element>::deserialize(d)?
            .into_iter()
            .map(|e| e.0)
            .collect())
    }
}

/// A list of `f64` with [`f64_kayenta`] elements.
pub fn f64_vec_kayenta<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for x in v {
        seq.serialize_element(&KayentaF64(*x))?;
    }
    seq.end()
}

struct KayentaF64(f64);

impl serde::Serialize for KayentaF64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        f64_kayenta(&self.0, s)
    }
}

/// Where in a JSON document a value sits, e.g. `metricSetPairList[3].values.control[17]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    pub fn root() -> Self {
        JsonPath(String::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let plain = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        let part = if plain {
            key.to_string()
        } else {
            format!("[{}]", serde_json::to_string(key).unwrap_or_default())
        };
        if self.0.is_empty() {
            JsonPath(part)
        } else if plain {
            JsonPath(format!("{}.{}", self.0, part))
        } else {
            JsonPath(format!("{}{}", self.0, part))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        JsonPath(format!("{}[{}]", self.0, i))
    }

    pub fn as_str(&self) -> &str {
        if self.0.is_empty() {
            "(document)"
        } else {
            &self.0
        }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An input document that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ShapeError {
    pub path: JsonPath,
    pub message: String,
}

impl ShapeError {
    pub fn new(path: &JsonPath, message: impl Into<String>) -> Self {
        ShapeError {
            path: path.clone(),
            message: message.into(),
        }
    }
}

/// A short description of a JSON value for error messages: `string "true"`, `an object`, …
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push('…');
            }
            format!("string {:?}", shown)
        }
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// A sample value: a JSON number, or the string `"NaN"` or JSON `null` for a missing value
/// (Kayenta's Jackson reads `null` in `Double` lists as NaN). `"Infinity"` and
/// `"-Infinity"` are refused: no metric measures an infinite value, and one would turn
/// the means into NaN and the test into noise.
pub fn sample_value(v: &Value, path: &JsonPath) -> Result<f64, ShapeError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ShapeError::new(path, "number out of range")),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" || s == "-Infinity" => Err(ShapeError::new(
            path,
            format!("{s} is not a measurement: send finite values, and \"NaN\" or null for a missing one"),
        )),
        Value::Null => Ok(f64::NAN),
        other => Err(ShapeError::new(
            path,
            format!("expected a number or \"NaN\", found {}", describe(other)),
        )),
    }
}

/// A list of sample values.
pub fn sample_list(v: &Value, path: &JsonPath) -> Result<Vec<f64>, ShapeError> {
    let arr = v.as_array().ok_or_else(|| {
        ShapeError::new(
            path,
            format!("expected an array of numbers, found {}", describe(v)),
        )
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| sample_value(x, &path.index(i)))
        .collect()
}

/// Parse JSON text, reporting syntax errors with line and column.
pub fn parse_text(text: &str, origin: &str) -> Result<Value, ShapeError> {
    serde_json::from_str(text).map_err(|e| {
        ShapeError::new(
            &JsonPath::root(),
            format!(
                "{origin} is not valid JSON: {} at line {}, column {}",
                strip_position(&e),
                e.line(),
                e.column()
            ),
        )
    })
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
