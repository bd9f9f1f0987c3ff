//! Small pieces of MLflow's JSON shared by the modules: `{key, value}` pairs and versions,
//! which MLflow sends as strings ("3") and okla's own endpoints as numbers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A tag or param as MLflow sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Number(u64),
}

/// A version number from `"3"` or `3`.
pub(crate) fn version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match StringOrNumber::deserialize(deserializer)? {
        StringOrNumber::Number(number) => Ok(number),
        StringOrNumber::String(text) => text
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("invalid version number '{text}'"))),
    }
}

/// A double as proto3 JSON writes it: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`, which
/// JSON numbers cannot express (a diverging loss is still worth logging).
pub(crate) fn serialize_double<S: Serializer>(
    value: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match *value {
        v if v.is_nan() => serializer.serialize_str("NaN"),
        f64::INFINITY => serializer.serialize_str("Infinity"),
        f64::NEG_INFINITY => serializer.serialize_str("-Infinity"),
        v => serializer.serialize_f64(v),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DoubleOrText {
    Double(f64),
    Text(String),
}

/// The reverse of [`serialize_double`].
pub(crate) fn double<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    match DoubleOrText::deserialize(deserializer)? {
        DoubleOrText::Double(value) => Ok(value),
        DoubleOrText::Text(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(serde::de::Error::custom(format!("invalid double '{text}'"))),
        },
    }
}

/// The answer `{}` of calls that return nothing.
#[derive(Deserialize)]
pub(crate) struct Empty {}

/// Milliseconds since the Unix epoch, as MLflow's timestamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}
