//! Request extractors that answer bad input in MLflow's error format, and the lenient JSON
//! reading the Python client needs (it sends `NaN` and `Infinity` as bare literals).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::Method;
use axum::http::request::Parts;

use crate::auth::Caller;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::Error;

/// A JSON body. An empty body reads as `{}`, as MLflow does, so a missing field is reported by name.
pub(super) struct MlflowJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MlflowJson<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                Error::invalid(format!("Could not read the request body: {rejection}"))
            })?;
        parse_json(&bytes).map(MlflowJson)
    }
}

/// Parses a request body, accepting the non-finite literals Python's `json` module writes.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    match deserialize(bytes) {
        Ok(value) => Ok(value),
        Err(error) => match okla_proto::mlflow::quote_non_finite(bytes) {
            Some(rewritten) => deserialize(&rewritten).map_err(invalid_body),
            None => Err(invalid_body(error)),
        },
    }
}

fn deserialize<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    // Tracking the path to each value names the field of a bad one, and only a body that fails
    // pays for it: on 1000-metric log-batch calls it cost about 7% of the registry's throughput.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer)
}

fn invalid_body(error: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = error.path().to_string();
    if path == "." {
        Error::invalid(format!("Invalid request body: {}", error.inner()))
    } else {
        Error::invalid(format!(
            "Invalid value for parameter '{path}': {}",
            error.inner()
        ))
    }
}

/// Query-string fields of a GET endpoint; repeated keys (`order_by=a&order_by=b`) become lists.
pub(super) struct MlflowQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for MlflowQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer = serde_html_form::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(deserializer)
            .map(MlflowQuery)
            .map_err(|error| {
                Error::invalid(format!(
                    "Invalid value for parameter '{}': {}",
                    error.path(),
                    error.inner()
                ))
            })
    }
}

/// The fields of an MLflow request: the query string of a GET (or HEAD), the JSON body of a
/// POST/PATCH/PUT/DELETE (the mlflow client sends DELETE fields in a body too). A write never
/// reads the query string, so a link or a form's URL alone cannot carry a write's fields; a
/// write with an empty body and a query string is refused by name.
pub(super) struct Fields<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Fields<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let (mut parts, body) = request.into_parts();
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let MlflowQuery(value) = MlflowQuery::from_request_parts(&mut parts, state).await?;
            return Ok(Fields(value));
        }
        let has_query = parts.uri.query().is_some_and(|query| !query.is_empty());
        let method = parts.method.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rejection| {
                Error::invalid(format!("Could not read the request body: {rejection}"))
            })?;
        if has_query && bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid(format!(
                "The fields of a {method} request are read from its JSON body, not from the query string; send them as a JSON object with Content-Type: application/json"
            )));
        }
        parse_json(&bytes).map(Fields)
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Who made a change, for the model history and the events: the authenticated caller (with
/// `--no-auth`, the name the caller claims, which can never be a reserved actor).
pub(super) struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Actor(caller.actor()))
    }
}

/// An int64 that proto3 JSON may carry as a number or a string.
pub(super) fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Float(f64),
        Text(String),
    }
    match Int::deserialize(deserializer)? {
        Int::Number(number) => Ok(number),
        Int::Float(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => Ok(number as i64),
        Int::Float(number) => Err(serde::de::Error::custom(format!(
            "expected an integer, got {number}"
        ))),
        Int::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got '{text}'"))),
    }
}

pub(super) fn lenient_opt_i64<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapper(#[serde(deserialize_with = "lenient_i64")] i64);
    Ok(Option::<Wrapper>::deserialize(deserializer)?.map(|Wrapper(value)| value))
}

/// A double that may arrive as a number or as "NaN" / "Infinity" / "-Infinity".
pub(super) fn lenient_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Double {
        Number(f64),
        Text(String),
    }
    match Double::deserialize(deserializer)? {
        Double::Number(number) => Ok(number),
        Double::Text(text) => match text.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("expected a number, got '{other}'"))),
        },
    }
}

/// Doubles are written as proto3 JSON does: non-finite values become strings.
pub(super) use okla_proto::mlflow::serialize_double as serialize_f64;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Point {
        #[serde(deserialize_with = "lenient_f64")]
        value: f64,
        #[serde(deserialize_with = "lenient_i64")]
        step: i64,
        #[serde(default)]
        note: String,
    }

    #[test]
    fn reads_python_non_finite_literals() {
        let table: [(&str, Option<f64>); 6] = [
            (r#"{"value": NaN, "step": 1}"#, Some(f64::NAN)),
            (r#"{"value": Infinity, "step": "1"}"#, Some(f64::INFINITY)),
            (
                r#"{"value": -Infinity, "step": 1}"#,
                Some(f64::NEG_INFINITY),
            ),
            (
                r#"{"value": 1.5, "step": 1, "note": "NaN stays text"}"#,
                Some(1.5),
            ),
            (r#"{"value": "x", "step": 1}"#, None),
            (r#"{"value": NaNx, "step": 1}"#, None),
        ];
        for (body, expected) in table {
            let parsed = parse_json::<Point>(body.as_bytes());
            if let Ok(point) = &parsed {
                assert_eq!(point.step, 1, "{body}");
            }
            match expected {
                Some(value) if value.is_nan() => assert!(parsed.unwrap().value.is_nan(), "{body}"),
                Some(value) => assert_eq!(parsed.unwrap().value, value, "{body}"),
                None => assert!(parsed.is_err(), "{body}"),
            }
        }
        let kept = parse_json::<Point>(br#"{"value": 1, "step": 2, "note": "NaN"}"#).unwrap();
        assert_eq!(kept.note, "NaN");
    }

    #[test]
    fn errors_name_the_field() {
        let error = parse_json::<Point>(br#"{"value": 1, "step": "abc"}"#).unwrap_err();
        assert!(error.to_string().contains("'step'"), "{error}");
        let error = parse_json::<Point>(br#"{"step": 1}"#).unwrap_err();
        assert!(error.to_string().contains("value"), "{error}");
    }
}
