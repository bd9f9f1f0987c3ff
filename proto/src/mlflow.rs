//! MLflow's JSON quirks, defined once for the registry, the client and serving: versions sent
//! as strings or numbers, proto3 doubles (`"NaN"`, `"Infinity"`), the bare `NaN` / `Infinity`
//! literals Python's `json` writes, and the `mlflow-artifacts:` locations the artifact proxy
//! serves.

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Number(u64),
}

/// A version number from `"3"` (MLflow's API) or `3` (okla's own endpoints).
pub fn deserialize_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match StringOrNumber::deserialize(deserializer)? {
        StringOrNumber::Number(number) => Ok(number),
        StringOrNumber::String(text) => text
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("invalid version number '{text}'"))),
    }
}

/// [`deserialize_version`] for an optional field.
pub fn deserialize_opt_version<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Version(#[serde(deserialize_with = "deserialize_version")] u64);
    Ok(Option::<Version>::deserialize(deserializer)?.map(|Version(version)| version))
}

/// A version written as MLflow writes it: a string (`"3"`).
pub fn serialize_version_string<S: Serializer>(
    version: &u64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(version)
}

/// [`serialize_version_string`] for an optional field (pair it with `skip_serializing_if`).
pub fn serialize_opt_version_string<S: Serializer>(
    version: &Option<u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match version {
        Some(version) => serializer.collect_str(version),
        None => serializer.serialize_none(),
    }
}

/// A double as proto3 JSON writes it: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`, which
/// JSON numbers cannot express (a diverging loss is still worth logging).
pub fn serialize_double<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
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

/// The reverse of [`serialize_double`]: a number, or exactly `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
pub fn deserialize_double<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
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

/// Rewrites bare `NaN`, `Infinity` and `-Infinity` outside strings as quoted strings (what
/// Python's `json` and rapidjson write for non-finite floats), or returns `None` when there are
/// none, so the caller's original parse error stands. Callers parse strictly first, so only a
/// body that needs the rewrite pays for it.
pub fn quote_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    const LITERALS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut output = Vec::new();
    let mut copied = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            index += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            index += 1;
            continue;
        }
        if let Some(literal) = LITERALS
            .iter()
            .find(|literal| bytes[index..].starts_with(literal))
        {
            output.extend_from_slice(&bytes[copied..index]);
            output.push(b'"');
            output.extend_from_slice(literal);
            output.push(b'"');
            index += literal.len();
            copied = index;
            continue;
        }
        index += 1;
    }
    if copied == 0 {
        return None;
    }
    output.extend_from_slice(&bytes[copied..]);
    Some(output)
}

/// The path an `mlflow-artifacts:` URI names on the artifact proxy (`mlflow-artifacts:/1/x` or
/// `mlflow-artifacts://host:port/1/x`, the host being the registry), without its leading `/`;
/// `None` for locations that live elsewhere (`s3://...`, `runs:/...`).
pub fn proxied_path(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    Some(match rest.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path
            .split_once('/')
            .map_or("", |(_, path)| path),
        None => rest.trim_start_matches('/'),
    })
}

/// [`proxied_path`] without surrounding `/`, for a caller that writes what it finds there to
/// disk: `None` also when the path is empty or any segment is empty, `.` or `..`, or it holds a
/// backslash or NUL.
pub fn safe_proxied_path(uri: &str) -> Option<&str> {
    let path = proxied_path(uri)?.trim_matches('/');
    let safe = path
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");
    (safe && !path.contains(['\\', '\0'])).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_paths() {
        let table = [
            ("mlflow-artifacts:/1/abc/artifacts", Some("1/abc/artifacts")),
            (
                "mlflow-artifacts://host:5000/2/models/m-1/artifacts",
                Some("2/models/m-1/artifacts"),
            ),
            ("mlflow-artifacts:/", Some("")),
            ("s3://bucket/x", None),
            ("runs:/abc/model", None),
        ];
        for (uri, expected) in table {
            assert_eq!(proxied_path(uri), expected, "{uri}");
        }
    }

    #[test]
    fn storage_locations_map_to_safe_proxy_paths() {
        assert_eq!(
            safe_proxied_path("mlflow-artifacts:/1/models/m-abc/artifacts"),
            Some("1/models/m-abc/artifacts")
        );
        assert_eq!(
            safe_proxied_path("mlflow-artifacts://registry:5000/1/run/artifacts/model/"),
            Some("1/run/artifacts/model")
        );
        assert_eq!(safe_proxied_path("s3://bucket/1/model"), None);
        assert_eq!(safe_proxied_path("mlflow-artifacts:/1/../../etc"), None);
        assert_eq!(safe_proxied_path("mlflow-artifacts:/"), None);
    }

    #[test]
    fn quotes_only_bare_literals() {
        assert_eq!(
            quote_non_finite(br#"{"a": [NaN, Infinity, -Infinity, 1], "b": "NaN \" Infinity"}"#)
                .as_deref(),
            Some(&br#"{"a": ["NaN", "Infinity", "-Infinity", 1], "b": "NaN \" Infinity"}"#[..])
        );
        assert_eq!(quote_non_finite(br#"{"a": "NaN"}"#), None);
        assert_eq!(quote_non_finite(b"{bad"), None);
    }

    #[test]
    fn versions_and_doubles_round_trip() {
        #[derive(serde::Serialize, Deserialize)]
        struct Sample {
            #[serde(
                serialize_with = "serialize_version_string",
                deserialize_with = "deserialize_version"
            )]
            version: u64,
            #[serde(
                serialize_with = "serialize_double",
                deserialize_with = "deserialize_double"
            )]
            value: f64,
        }
        let from_number: Sample = serde_json::from_str(r#"{"version": 3, "value": 1.5}"#).unwrap();
        assert_eq!(from_number.version, 3);
        let text = serde_json::to_string(&Sample {
            version: 3,
            value: f64::NEG_INFINITY,
        })
        .unwrap();
        assert_eq!(text, r#"{"version":"3","value":"-Infinity"}"#);
        let back: Sample = serde_json::from_str(&text).unwrap();
        assert_eq!(back.value, f64::NEG_INFINITY);
        assert!(serde_json::from_str::<Sample>(r#"{"version": "x", "value": 1}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"version": 1, "value": "inf"}"#).is_err());
    }
}
