//! The JSON tensor codec shared by the V2 REST and TF Serving REST front-ends: JSON values to
//! [`TensorData`] of a given datatype (with range and kind checks that name the input), and
//! tensors back to JSON text, flat (V2) or nested by shape (TF Serving).
//!
//! Decoding goes through [`Scalar`], a flat list of leaf values, rather than `serde_json::Value`
//! trees: the V2 path deserializes `data` straight into that list, so a large batch costs one
//! vector, not one heap node per element. Output is written by hand into a byte buffer for the
//! same reason, and because non-finite floats are written as the bare `NaN`/`Infinity` tokens
//! Triton and TF Serving emit, which serde_json would turn into `null`.

use std::fmt;

use base64::Engine;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serializer};
use serde_json::Value;

use crate::error::ServingError;
use crate::tensor::{DataType, TensorData};

/// One leaf of a JSON tensor, before its datatype is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    /// TF Serving's `{"b64": "..."}` form for binary strings, still encoded.
    Base64(String),
    Null,
}

impl Scalar {
    /// How the value looks to a client, for error messages.
    fn describe(&self) -> String {
        match self {
            Scalar::Bool(b) => format!("boolean {b}"),
            Scalar::Int(i) => format!("number {i}"),
            Scalar::Uint(u) => format!("number {u}"),
            Scalar::Float(f) => format!("number {f}"),
            Scalar::Str(s) if s.len() > 32 => format!("string \"{}...\"", truncate(s, 32)),
            Scalar::Str(s) => format!("string \"{s}\""),
            Scalar::Base64(_) => "a {\"b64\": ...} object".to_owned(),
            Scalar::Null => "null".to_owned(),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A V2 `data` field: flat or nested arrays, flattened in row-major order while parsing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlatValues(pub Vec<Scalar>);

impl<'de> Deserialize<'de> for FlatValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        FlattenSeed { out: &mut out }.deserialize(deserializer)?;
        Ok(FlatValues(out))
    }
}

struct FlattenSeed<'a> {
    out: &'a mut Vec<Scalar>,
}

impl<'de> DeserializeSeed<'de> for FlattenSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(FlattenVisitor { out: self.out })
    }
}

struct FlattenVisitor<'a> {
    out: &'a mut Vec<Scalar>,
}

impl<'de> Visitor<'de> for FlattenVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, boolean, string or (nested) array of them")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out.push(Scalar::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out.push(Scalar::Int(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out.push(Scalar::Uint(v));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.out.push(Scalar::Float(v));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out.push(Scalar::Str(v.to_owned()));
        Ok(())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.out.push(Scalar::Str(v));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.push(Scalar::Null);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(FlattenSeed {
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let key: Option<String> = map.next_key()?;
        if key.as_deref() != Some("b64") {
            return Err(de::Error::custom(
                "tensor data may only hold numbers, booleans, strings, arrays or {\"b64\": ...}",
            ));
        }
        let encoded: String = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("a {\"b64\": ...} object takes one key"));
        }
        self.out.push(Scalar::Base64(encoded));
        Ok(())
    }
}

/// Walks a nested JSON value, appending its leaves in row-major order and inferring its shape.
/// Arrays must be rectangular: every array at one depth has the same length.
pub fn flatten_value(
    input: &str,
    value: Value,
    shape: &mut Vec<usize>,
    out: &mut Vec<Scalar>,
) -> Result<(), ServingError> {
    let mut leaf_depth = None;
    walk(input, value, 0, shape, &mut leaf_depth, out)
}

fn walk(
    input: &str,
    value: Value,
    depth: usize,
    shape: &mut Vec<usize>,
    leaf_depth: &mut Option<usize>,
    out: &mut Vec<Scalar>,
) -> Result<(), ServingError> {
    let ragged = || {
        ServingError::InvalidArgument(format!(
            "input '{input}': nested arrays are ragged (every array at one depth must have the \
             same length, and values must all sit at the same depth; shape so far {shape:?})"
        ))
    };
    let scalar = match value {
        Value::Array(items) => {
            if depth == shape.len() {
                if leaf_depth.is_some() {
                    return Err(ragged());
                }
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                return Err(ragged());
            }
            out.reserve(items.len());
            for item in items {
                walk(input, item, depth + 1, shape, leaf_depth, out)?;
            }
            return Ok(());
        }
        Value::Bool(b) => Scalar::Bool(b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Scalar::Uint(u)
            } else if let Some(i) = n.as_i64() {
                Scalar::Int(i)
            } else {
                Scalar::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Scalar::Str(s),
        Value::Null => Scalar::Null,
        Value::Object(mut map) => match (map.remove("b64"), map.is_empty()) {
            (Some(Value::String(encoded)), true) => Scalar::Base64(encoded),
            _ => {
                return Err(ServingError::InvalidArgument(format!(
                    "input '{input}': values must be numbers, booleans, strings, arrays or \
                     {{\"b64\": \"...\"}}, got an object"
                )));
            }
        },
    };
    match *leaf_depth {
        None if depth == shape.len() => *leaf_depth = Some(depth),
        Some(d) if d == depth => {}
        _ => return Err(ragged()),
    }
    out.push(scalar);
    Ok(())
}

fn kind_error(input: &str, dtype: DataType, index: usize, value: &Scalar) -> ServingError {
    let wanted = match dtype {
        DataType::Bool => "true or false",
        DataType::Bytes => "a string",
        DataType::Fp32 | DataType::Fp64 => "a number",
        _ => "an integer",
    };
    ServingError::InvalidArgument(format!(
        "input '{input}': datatype {dtype} expects {wanted}, but element {index} is {}",
        value.describe()
    ))
}

fn range_error(input: &str, dtype: DataType, index: usize, value: &Scalar) -> ServingError {
    ServingError::InvalidArgument(format!(
        "input '{input}': element {index} ({}) is out of range for datatype {dtype}",
        value.describe()
    ))
}

/// Converts one leaf to an integer type, refusing fractions and values out of range.
fn to_int<T>(input: &str, dtype: DataType, index: usize, value: &Scalar) -> Result<T, ServingError>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    let converted = match value {
        Scalar::Int(i) => T::try_from(*i).ok(),
        Scalar::Uint(u) => T::try_from(*u).ok(),
        // Some JSON writers print whole numbers as 3.0; accept those, but not 3.5.
        Scalar::Float(f) if f.fract() == 0.0 => {
            if *f >= 0.0 && *f < 18_446_744_073_709_551_616.0 {
                T::try_from(*f as u64).ok()
            } else if *f < 0.0 && *f >= -9_223_372_036_854_775_808.0 {
                T::try_from(*f as i64).ok()
            } else {
                None
            }
        }
        _ => return Err(kind_error(input, dtype, index, value)),
    };
    converted.ok_or_else(|| range_error(input, dtype, index, value))
}

fn to_float(
    input: &str,
    dtype: DataType,
    index: usize,
    value: &Scalar,
) -> Result<f64, ServingError> {
    match value {
        Scalar::Int(i) => Ok(*i as f64),
        Scalar::Uint(u) => Ok(*u as f64),
        Scalar::Float(f) => Ok(*f),
        // Strict JSON has no NaN or infinities; accept them as strings (and see `parse_relaxed`).
        Scalar::Str(s) => match s.as_str() {
            "NaN" | "nan" | "-NaN" | "-nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "+Infinity" | "+inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(kind_error(input, dtype, index, value)),
        },
        _ => Err(kind_error(input, dtype, index, value)),
    }
}

fn to_f32(input: &str, index: usize, value: &Scalar) -> Result<f32, ServingError> {
    let wide = to_float(input, DataType::Fp32, index, value)?;
    let narrow = wide as f32;
    if narrow.is_infinite() && wide.is_finite() {
        return Err(range_error(input, DataType::Fp32, index, value));
    }
    Ok(narrow)
}

/// Converts leaves to the elements of `dtype`, naming `input` and the element in any error.
pub fn to_tensor_data(
    input: &str,
    dtype: DataType,
    values: Vec<Scalar>,
) -> Result<TensorData, ServingError> {
    macro_rules! ints {
        ($variant:ident) => {
            TensorData::$variant(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| to_int(input, dtype, i, v))
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    let data = match dtype {
        DataType::Bool => TensorData::Bool(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Bool(b) => Ok(*b),
                    other => Err(kind_error(input, dtype, i, other)),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 => ints!(Uint8),
        DataType::Uint16 => ints!(Uint16),
        DataType::Uint32 => ints!(Uint32),
        DataType::Uint64 => ints!(Uint64),
        DataType::Int8 => ints!(Int8),
        DataType::Int16 => ints!(Int16),
        DataType::Int32 => ints!(Int32),
        DataType::Int64 => ints!(Int64),
        DataType::Fp32 => TensorData::Fp32(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| to_f32(input, i, v))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Fp64 => TensorData::Fp64(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| to_float(input, dtype, i, v))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bytes => TensorData::Bytes(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Scalar::Str(s) => Ok(Bytes::from(s)),
                    Scalar::Base64(encoded) => base64::engine::general_purpose::STANDARD
                        .decode(encoded.as_bytes())
                        .map(Bytes::from)
                        .map_err(|err| {
                            ServingError::InvalidArgument(format!(
                                "input '{input}': element {i} is not valid base64: {err}"
                            ))
                        }),
                    other => Err(kind_error(input, dtype, i, &other)),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(data)
}

/// Parses a JSON document, accepting the bare `NaN`, `Infinity` and `-Infinity` tokens that
/// Python's `json` and rapidjson write for non-finite floats. Strict parsing is tried first, so
/// the rewrite only costs anything on bodies that need it.
pub fn parse_relaxed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(err) => match okla_proto::mlflow::quote_non_finite(body) {
            Some(rewritten) => serde_json::from_slice(&rewritten).map_err(|_| err),
            None => Err(err),
        },
    }
}

/// How BYTES elements that are not UTF-8 are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryStrings {
    /// Replace invalid sequences (V2 JSON, whose BYTES elements are plain strings).
    Lossy,
    /// `{"b64": "..."}`, as TF Serving writes binary strings.
    Base64,
}

/// Appends a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        let _ = serde_json::Serializer::new(&mut *out).serialize_f64(value);
    } else {
        write_non_finite(out, value.is_nan(), value > 0.0);
    }
}

fn write_f32(out: &mut Vec<u8>, value: f32) {
    if value.is_finite() {
        // Shortest form of the f32 itself, so 0.1f32 prints as 0.1, not 0.10000000149011612.
        let _ = serde_json::Serializer::new(&mut *out).serialize_f32(value);
    } else {
        write_non_finite(out, value.is_nan(), value > 0.0);
    }
}

fn write_non_finite(out: &mut Vec<u8>, nan: bool, positive: bool) {
    out.extend_from_slice(match (nan, positive) {
        (true, _) => b"NaN",
        (false, true) => b"Infinity",
        (false, false) => b"-Infinity",
    });
}

/// Appends an integer in decimal.
pub fn write_int<T: serde::Serialize>(out: &mut Vec<u8>, value: T) {
    let _ = value.serialize(&mut serde_json::Serializer::new(&mut *out));
}

fn write_bytes(out: &mut Vec<u8>, element: &[u8], style: BinaryStrings) {
    match (std::str::from_utf8(element), style) {
        (Ok(text), _) => write_str(out, text),
        (Err(_), BinaryStrings::Lossy) => write_str(out, &String::from_utf8_lossy(element)),
        (Err(_), BinaryStrings::Base64) => {
            out.extend_from_slice(b"{\"b64\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(element)
                    .as_bytes(),
            );
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Appends elements `start..end` as comma-separated JSON values (no brackets).
fn write_elements(
    out: &mut Vec<u8>,
    data: &TensorData,
    start: usize,
    end: usize,
    style: BinaryStrings,
) {
    // A backend could hand back a tensor whose shape and data disagree; write what exists
    // rather than panic on a request path.
    let end = end.min(data.len());
    let start = start.min(end);
    macro_rules! each {
        ($v:expr, $write:expr) => {
            for (i, x) in $v[start..end].iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                $write(out, x);
            }
        };
    }
    match data {
        TensorData::Bool(v) => each!(v, |out: &mut Vec<u8>, x: &bool| out
            .extend_from_slice(if *x { b"true" } else { b"false" })),
        TensorData::Uint8(v) => each!(v, |out, x: &u8| write_int(out, *x)),
        TensorData::Uint16(v) => each!(v, |out, x: &u16| write_int(out, *x)),
        TensorData::Uint32(v) => each!(v, |out, x: &u32| write_int(out, *x)),
        TensorData::Uint64(v) => each!(v, |out, x: &u64| write_int(out, *x)),
        TensorData::Int8(v) => each!(v, |out, x: &i8| write_int(out, *x)),
        TensorData::Int16(v) => each!(v, |out, x: &i16| write_int(out, *x)),
        TensorData::Int32(v) => each!(v, |out, x: &i32| write_int(out, *x)),
        TensorData::Int64(v) => each!(v, |out, x: &i64| write_int(out, *x)),
        TensorData::Fp32(v) => each!(v, |out, x: &f32| write_f32(out, *x)),
        TensorData::Fp64(v) => each!(v, |out, x: &f64| write_f64(out, *x)),
        TensorData::Bytes(v) => each!(v, |out, x: &Bytes| write_bytes(out, x, style)),
    }
}

/// Appends every element as one flat JSON array, the V2 `data` form.
pub fn write_flat(out: &mut Vec<u8>, data: &TensorData, style: BinaryStrings) {
    out.push(b'[');
    write_elements(out, data, 0, data.len(), style);
    out.push(b']');
}

/// Appends elements from `start` as nested arrays of `shape` (a bare value when `shape` is
/// empty). The caller guarantees `start + product(shape) <= data.len()`.
pub fn write_nested(
    out: &mut Vec<u8>,
    data: &TensorData,
    shape: &[usize],
    start: usize,
    style: BinaryStrings,
) {
    match shape {
        [] => write_elements(out, data, start, start + 1, style),
        [len] => {
            out.push(b'[');
            write_elements(out, data, start, start + len, style);
            out.push(b']');
        }
        [len, rest @ ..] => {
            let stride: usize = rest.iter().product();
            out.push(b'[');
            for i in 0..*len {
                if i > 0 {
                    out.push(b',');
                }
                write_nested(out, data, rest, start + i * stride, style);
            }
            out.push(b']');
        }
    }
}

/// The exact byte length of the raw form of `data` ([`TensorData::write_raw`]).
pub fn raw_size(data: &TensorData) -> usize {
    match (data.dtype().element_size(), data) {
        (_, TensorData::Bytes(elements)) => elements.iter().map(|e| 4 + e.len()).sum(),
        (Some(size), _) => size * data.len(),
        (None, _) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(json: &str) -> Vec<Scalar> {
        serde_json::from_str::<FlatValues>(json).unwrap().0
    }

    fn decode(dtype: DataType, json: &str) -> Result<TensorData, ServingError> {
        to_tensor_data("x", dtype, flat(json))
    }

    fn message(result: Result<TensorData, ServingError>) -> String {
        match result {
            Err(ServingError::InvalidArgument(message)) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn decodes_every_datatype() {
        let cases = [
            (
                DataType::Bool,
                "[true, false]",
                TensorData::Bool(vec![true, false]),
            ),
            (DataType::Uint8, "[0, 255]", TensorData::Uint8(vec![0, 255])),
            (
                DataType::Uint16,
                "[0, 65535]",
                TensorData::Uint16(vec![0, 65535]),
            ),
            (
                DataType::Uint32,
                "[0, 4294967295]",
                TensorData::Uint32(vec![0, u32::MAX]),
            ),
            (
                DataType::Uint64,
                "[0, 18446744073709551615]",
                TensorData::Uint64(vec![0, u64::MAX]),
            ),
            (
                DataType::Int8,
                "[-128, 127]",
                TensorData::Int8(vec![-128, 127]),
            ),
            (
                DataType::Int16,
                "[-32768, 32767]",
                TensorData::Int16(vec![i16::MIN, i16::MAX]),
            ),
            (
                DataType::Int32,
                "[-2147483648, 3.0]",
                TensorData::Int32(vec![i32::MIN, 3]),
            ),
            (
                DataType::Int64,
                "[-9223372036854775808, 9223372036854775807]",
                TensorData::Int64(vec![i64::MIN, i64::MAX]),
            ),
            (
                DataType::Fp32,
                "[0.1, -2, 3]",
                TensorData::Fp32(vec![0.1, -2.0, 3.0]),
            ),
            (
                DataType::Fp64,
                "[0.1, 1e300, 7]",
                TensorData::Fp64(vec![0.1, 1e300, 7.0]),
            ),
            (
                DataType::Bytes,
                r#"["kia ora", "", {"b64": "AP8="}]"#,
                TensorData::Bytes(vec![
                    Bytes::from_static(b"kia ora"),
                    Bytes::new(),
                    Bytes::from_static(&[0, 255]),
                ]),
            ),
        ];
        for (dtype, json, expected) in cases {
            assert_eq!(decode(dtype, json).unwrap(), expected, "{dtype}");
        }
    }

    #[test]
    fn nested_and_flat_data_decode_to_the_same_elements() {
        assert_eq!(flat("[[1, 2], [3, 4]]"), flat("[1, 2, 3, 4]"));
        assert_eq!(flat("[[[1], [2]], [[3], [4]]]"), flat("[1, 2, 3, 4]"));
        assert_eq!(flat("5"), vec![Scalar::Uint(5)]);
    }

    #[test]
    fn out_of_range_and_wrong_kinds_name_the_input_and_element() {
        let err = message(decode(DataType::Int8, "[1, 300]"));
        assert!(
            err.contains("'x'") && err.contains("element 1") && err.contains("INT8"),
            "{err}"
        );
        let err = message(decode(DataType::Uint8, "[-1]"));
        assert!(err.contains("out of range for datatype UINT8"), "{err}");
        let err = message(decode(DataType::Int32, "[1.5]"));
        assert!(
            err.contains("expects an integer") && err.contains("1.5"),
            "{err}"
        );
        let err = message(decode(DataType::Fp32, r#"[1, "abc"]"#));
        assert!(
            err.contains("FP32 expects a number") && err.contains("\"abc\""),
            "{err}"
        );
        let err = message(decode(DataType::Fp32, "[1e300]"));
        assert!(err.contains("out of range for datatype FP32"), "{err}");
        let err = message(decode(DataType::Bool, "[1]"));
        assert!(err.contains("true or false"), "{err}");
        let err = message(decode(DataType::Bytes, "[1]"));
        assert!(err.contains("expects a string"), "{err}");
        let err = message(decode(DataType::Fp64, "[null]"));
        assert!(err.contains("null"), "{err}");
        let err = message(decode(DataType::Bytes, r#"[{"b64": "!!"}]"#));
        assert!(err.contains("base64"), "{err}");
        assert!(serde_json::from_str::<FlatValues>(r#"[{"a": 1}]"#).is_err());
    }

    #[test]
    fn non_finite_tokens_parse_as_floats() {
        let body = br#"{"data": [NaN, Infinity, -Infinity, 1], "name": "NaN Infinity"}"#;
        #[derive(Deserialize)]
        struct Body {
            data: FlatValues,
            name: String,
        }
        let parsed: Body = parse_relaxed(body).unwrap();
        assert_eq!(parsed.name, "NaN Infinity");
        let TensorData::Fp32(values) = to_tensor_data("x", DataType::Fp32, parsed.data.0).unwrap()
        else {
            panic!("FP32 data");
        };
        assert!(values[0].is_nan());
        assert_eq!(&values[1..], &[f32::INFINITY, f32::NEG_INFINITY, 1.0]);
        assert_eq!(
            okla_proto::mlflow::quote_non_finite(br#"{"a": "NaN"}"#),
            None
        );
        assert!(parse_relaxed::<Value>(b"{bad").is_err());
    }

    #[test]
    fn nested_values_infer_shape_and_refuse_ragged_arrays() {
        let mut shape = Vec::new();
        let mut out = Vec::new();
        flatten_value(
            "x",
            serde_json::json!([[1, 2, 3], [4, 5, 6]]),
            &mut shape,
            &mut out,
        )
        .unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(out.len(), 6);
        for ragged in [
            serde_json::json!([[1, 2], [3]]),
            serde_json::json!([[1, 2], 3]),
            serde_json::json!([1, [2, 3]]),
        ] {
            let err = flatten_value("x", ragged, &mut Vec::new(), &mut Vec::new()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("input 'x': nested arrays are ragged"),
                "{err}"
            );
        }
        let mut shape = Vec::new();
        flatten_value("x", serde_json::json!(7), &mut shape, &mut Vec::new()).unwrap();
        assert!(shape.is_empty());
    }

    #[test]
    fn writes_flat_and_nested_json() {
        let data = TensorData::Fp32(vec![0.1, 2.0, f32::NAN, f32::NEG_INFINITY, 5.5, 6.0]);
        let mut out = Vec::new();
        write_flat(&mut out, &data, BinaryStrings::Lossy);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[0.1,2.0,NaN,-Infinity,5.5,6.0]"
        );
        let mut out = Vec::new();
        write_nested(&mut out, &data, &[2, 3], 0, BinaryStrings::Lossy);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[[0.1,2.0,NaN],[-Infinity,5.5,6.0]]"
        );
        let mut out = Vec::new();
        write_nested(&mut out, &data, &[], 4, BinaryStrings::Lossy);
        assert_eq!(out, b"5.5");
        let bytes = TensorData::Bytes(vec![
            Bytes::from_static(b"a\"b"),
            Bytes::from_static(&[255]),
        ]);
        let mut out = Vec::new();
        write_flat(&mut out, &bytes, BinaryStrings::Base64);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"["a\"b",{"b64":"/w=="}]"#
        );
        let mut out = Vec::new();
        write_flat(
            &mut out,
            &TensorData::Bool(vec![true, false]),
            BinaryStrings::Lossy,
        );
        assert_eq!(out, b"[true,false]");
        let mut out = Vec::new();
        write_flat(
            &mut out,
            &TensorData::Int64(vec![-7, i64::MAX]),
            BinaryStrings::Lossy,
        );
        assert_eq!(String::from_utf8(out).unwrap(), "[-7,9223372036854775807]");
    }

    #[test]
    fn raw_size_matches_write_raw() {
        for data in [
            TensorData::Fp64(vec![1.0, 2.0]),
            TensorData::Bool(vec![true]),
            TensorData::Bytes(vec![Bytes::from_static(b"abc"), Bytes::new()]),
        ] {
            let mut raw = Vec::new();
            data.write_raw(&mut raw);
            assert_eq!(raw_size(&data), raw.len(), "{}", data.dtype());
        }
    }
}
