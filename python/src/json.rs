//! Python objects as JSON: the judge request given as a dict.
//!
//! [`pythonize`] walks the Python object (dicts and other mappings, lists, tuples and other
//! sequences, numbers, strings, `None`, dataclasses) as a serde deserializer; [`Json`] decides
//! what each value becomes, with Kayenta's conventions for floats that JSON cannot hold
//! (`NaN`, `Infinity`, `-Infinity` as strings); [`serde_path_to_error`] records where a value
//! that cannot be converted is, so the error names its path (`request.metricSetPairList[3]`).
//!
//! numpy arrays and scalars are not sequences or numbers to pythonize: the Python wrapper
//! (`coalmine._judge._plain`) turns them into lists and numbers with `tolist()` first.

use std::fmt;

use pyo3::prelude::*;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use serde_path_to_error::Segment;

use crate::InvalidInputError;

/// `obj` as JSON; errors name the path of the bad value below `root`.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Value> {
    let mut de = pythonize::Depythonizer::from_object(obj);
    match serde_path_to_error::deserialize::<_, Json>(&mut de) {
        Ok(Json(v)) => Ok(v),
        Err(e) => {
            let mut path = root.to_string();
            for segment in e.path() {
                match segment {
                    Segment::Seq { index } => path.push_str(&format!("[{index}]")),
                    Segment::Map { key } | Segment::Enum { variant: key } => {
                        path.push('.');
                        path.push_str(key);
                    }
                    Segment::Unknown => {}
                }
            }
            Err(InvalidInputError::new_err(format!(
                "{path}: {}",
                describe(e.inner())
            )))
        }
    }
}

/// pythonize's messages, in the words of the rest of coalmine's errors.
fn describe(e: &pythonize::PythonizeError) -> String {
    let msg = e.to_string();
    if let Some(ty) = msg.strip_prefix("unsupported type ") {
        format!("cannot convert {ty} to JSON")
    } else {
        msg
    }
}

/// A JSON value read from Python.
struct Json(Value);

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor).map(Json)
    }
}

/// A float as JSON: Kayenta writes NaN and the infinities as strings.
fn float(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".into()),
        None if v > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    // integers beyond 64 bits: as the nearest float (what JSON readers make of them anyway)
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(float(v as f64))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(float(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom(
            "cannot convert bytes to JSON (decode them to a str)",
        ))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Json::deserialize(d).map(|j| j.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Json(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let Json(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// A dictionary key: a string (JSON has no other keys).
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        // pythonize reads a str only; its message names the key's type
        d.deserialize_str(KeyVisitor)
            .map_err(|e| de::Error::custom(format!("dictionary keys must be strings ({e})")))
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}
