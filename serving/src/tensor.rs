//! Tensors as the inference protocols carry them: a name, a datatype, a shape and row-major
//! elements. Decoding from the raw little-endian form (gRPC `raw_input_contents`, Triton's
//! binary HTTP extension) and the batching operations (concatenate and split along the first
//! dimension) live here, free of any protocol or backend.

use bytes::Bytes;

pub use okla_proto::tensor::DataType;
use okla_proto::tensor::{
    RawError, read_bools, read_bytes, read_le, write_bools, write_bytes, write_le,
};

/// Reads a V2 datatype name; an unknown one is refused with the names this server supports.
pub fn parse_datatype(name: &str) -> Result<DataType, TensorError> {
    name.parse()
        .map_err(|_| TensorError::UnsupportedDatatype(name.to_owned()))
}

/// A tensor's elements, one variant per datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Bytes>),
}

/// Applies the same expression to the vector inside any variant.
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// Same as [`with_data!`] but rebuilds the same variant from the expression's vector.
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::Uint8($v) => TensorData::Uint8($body),
            TensorData::Uint16($v) => TensorData::Uint16($body),
            TensorData::Uint32($v) => TensorData::Uint32($body),
            TensorData::Uint64($v) => TensorData::Uint64($body),
            TensorData::Int8($v) => TensorData::Int8($body),
            TensorData::Int16($v) => TensorData::Int16($body),
            TensorData::Int32($v) => TensorData::Int32($body),
            TensorData::Int64($v) => TensorData::Int64($body),
            TensorData::Fp32($v) => TensorData::Fp32($body),
            TensorData::Fp64($v) => TensorData::Fp64($body),
            TensorData::Bytes($v) => TensorData::Bytes($body),
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements hold (for byte strings, their own lengths).
    pub fn byte_len(&self) -> usize {
        match self {
            TensorData::Bytes(values) => values.iter().map(bytes::Bytes::len).sum(),
            other => other.len() * other.dtype().element_size().unwrap_or(1),
        }
    }

    /// An empty vector of the given datatype with room for `capacity` elements.
    pub fn with_capacity(dtype: DataType, capacity: usize) -> TensorData {
        match dtype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::Uint8 => TensorData::Uint8(Vec::with_capacity(capacity)),
            DataType::Uint16 => TensorData::Uint16(Vec::with_capacity(capacity)),
            DataType::Uint32 => TensorData::Uint32(Vec::with_capacity(capacity)),
            DataType::Uint64 => TensorData::Uint64(Vec::with_capacity(capacity)),
            DataType::Int8 => TensorData::Int8(Vec::with_capacity(capacity)),
            DataType::Int16 => TensorData::Int16(Vec::with_capacity(capacity)),
            DataType::Int32 => TensorData::Int32(Vec::with_capacity(capacity)),
            DataType::Int64 => TensorData::Int64(Vec::with_capacity(capacity)),
            DataType::Fp32 => TensorData::Fp32(Vec::with_capacity(capacity)),
            DataType::Fp64 => TensorData::Fp64(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// Decodes the raw form: little-endian elements, or for BYTES a 4-byte little-endian
    /// length before each element. `expected` is the element count the shape implies.
    pub fn from_raw(
        dtype: DataType,
        raw: &[u8],
        expected: usize,
    ) -> Result<TensorData, TensorError> {
        if let Some(size) = dtype.element_size() {
            let wanted = expected.checked_mul(size).ok_or(TensorError::TooLarge)?;
            if raw.len() != wanted {
                return Err(TensorError::RawSize {
                    dtype,
                    expected: wanted,
                    given: raw.len(),
                });
            }
        }
        // The size was checked above, so only BYTES can still be malformed.
        let fixed = |err: RawError| TensorError::BadBytesEncoding(err.to_string());
        let data = match dtype {
            DataType::Bool => TensorData::Bool(read_bools(raw)),
            DataType::Uint8 => TensorData::Uint8(raw.to_vec()),
            DataType::Int8 => TensorData::Int8(read_le(raw).map_err(fixed)?),
            DataType::Uint16 => TensorData::Uint16(read_le(raw).map_err(fixed)?),
            DataType::Uint32 => TensorData::Uint32(read_le(raw).map_err(fixed)?),
            DataType::Uint64 => TensorData::Uint64(read_le(raw).map_err(fixed)?),
            DataType::Int16 => TensorData::Int16(read_le(raw).map_err(fixed)?),
            DataType::Int32 => TensorData::Int32(read_le(raw).map_err(fixed)?),
            DataType::Int64 => TensorData::Int64(read_le(raw).map_err(fixed)?),
            DataType::Fp32 => TensorData::Fp32(read_le(raw).map_err(fixed)?),
            DataType::Fp64 => TensorData::Fp64(read_le(raw).map_err(fixed)?),
            DataType::Bytes => TensorData::Bytes(decode_bytes(raw, expected)?),
        };
        Ok(data)
    }

    /// Appends the raw form (see [`TensorData::from_raw`]) to `out`.
    pub fn write_raw(&self, out: &mut Vec<u8>) {
        match self {
            TensorData::Bool(v) => write_bools(v, out),
            TensorData::Uint8(v) => out.extend_from_slice(v),
            TensorData::Int8(v) => write_le(v, out),
            TensorData::Uint16(v) => write_le(v, out),
            TensorData::Uint32(v) => write_le(v, out),
            TensorData::Uint64(v) => write_le(v, out),
            TensorData::Int16(v) => write_le(v, out),
            TensorData::Int32(v) => write_le(v, out),
            TensorData::Int64(v) => write_le(v, out),
            TensorData::Fp32(v) => write_le(v, out),
            TensorData::Fp64(v) => write_le(v, out),
            TensorData::Bytes(v) => write_bytes(v, out),
        }
    }

    /// The raw form as a new buffer.
    pub fn to_raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.dtype().element_size().unwrap_or(8) * self.len());
        self.write_raw(&mut out);
        out
    }

    /// Appends `other`'s elements; both must have the same datatype.
    fn extend_from(&mut self, other: &TensorData) -> Result<(), TensorError> {
        match (self, other) {
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
            (TensorData::Uint8(a), TensorData::Uint8(b)) => a.extend_from_slice(b),
            (TensorData::Uint16(a), TensorData::Uint16(b)) => a.extend_from_slice(b),
            (TensorData::Uint32(a), TensorData::Uint32(b)) => a.extend_from_slice(b),
            (TensorData::Uint64(a), TensorData::Uint64(b)) => a.extend_from_slice(b),
            (TensorData::Int8(a), TensorData::Int8(b)) => a.extend_from_slice(b),
            (TensorData::Int16(a), TensorData::Int16(b)) => a.extend_from_slice(b),
            (TensorData::Int32(a), TensorData::Int32(b)) => a.extend_from_slice(b),
            (TensorData::Int64(a), TensorData::Int64(b)) => a.extend_from_slice(b),
            (TensorData::Fp32(a), TensorData::Fp32(b)) => a.extend_from_slice(b),
            (TensorData::Fp64(a), TensorData::Fp64(b)) => a.extend_from_slice(b),
            (TensorData::Bytes(a), TensorData::Bytes(b)) => a.extend_from_slice(b),
            (a, b) => {
                return Err(TensorError::MixedDatatypes {
                    first: a.dtype(),
                    other: b.dtype(),
                });
            }
        }
        Ok(())
    }

    /// Elements `start..end` as a new vector of the same datatype.
    fn slice(&self, start: usize, end: usize) -> TensorData {
        map_data!(self, v => v[start..end].to_vec())
    }
}

fn decode_bytes(raw: &[u8], expected: usize) -> Result<Vec<Bytes>, TensorError> {
    let elements = read_bytes(raw).map_err(|err| TensorError::BadBytesEncoding(err.to_string()))?;
    if elements.len() != expected {
        return Err(TensorError::ElementCount {
            expected,
            given: elements.len(),
        });
    }
    Ok(elements.into_iter().map(Bytes::copy_from_slice).collect())
}

/// A named tensor with a concrete shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Whether two answers to the same request agree: same name, shape and datatype, equal
    /// values, floating point within a relative 1e-4 (two exports of one model, or one run on
    /// another batch size, rarely match to the last bit).
    pub fn agrees_with(&self, other: &Tensor) -> bool {
        fn close(a: f64, b: f64) -> bool {
            (a - b).abs() <= 1e-6 + 1e-4 * a.abs().max(b.abs()) || (a.is_nan() && b.is_nan())
        }
        if self.name != other.name || self.shape != other.shape {
            return false;
        }
        match (&self.data, &other.data) {
            (TensorData::Fp32(a), TensorData::Fp32(b)) => a
                .iter()
                .zip(b)
                .all(|(&x, &y)| close(f64::from(x), f64::from(y))),
            (TensorData::Fp64(a), TensorData::Fp64(b)) => {
                a.iter().zip(b).all(|(&x, &y)| close(x, y))
            }
            (a, b) => a == b,
        }
    }

    /// Builds a tensor, checking that the shape's element count matches the data.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Tensor, TensorError> {
        let expected = element_count(&shape)?;
        if expected != data.len() {
            return Err(TensorError::ElementCount {
                expected,
                given: data.len(),
            });
        }
        Ok(Tensor {
            name: name.into(),
            shape,
            data,
        })
    }

    pub fn dtype(&self) -> DataType {
        self.data.dtype()
    }

    /// The size of the first (batch) dimension; a scalar counts as one row.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row: the product of every dimension after the first.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Joins tensors of one input along the first dimension, in order. Every part must have the
    /// same datatype and the same dimensions after the first.
    pub fn concat(parts: &[&Tensor]) -> Result<Tensor, TensorError> {
        let first = parts.first().ok_or(TensorError::EmptyBatch)?;
        let mut rows = 0;
        let total = parts.iter().map(|part| part.data.len()).sum();
        let mut data = TensorData::with_capacity(first.dtype(), total);
        for part in parts {
            if part.shape.len() != first.shape.len() || part.shape.get(1..) != first.shape.get(1..)
            {
                return Err(TensorError::MismatchedRows {
                    name: first.name.clone(),
                    first: first.shape.clone(),
                    other: part.shape.clone(),
                });
            }
            rows += part.rows();
            data.extend_from(&part.data)?;
        }
        let mut shape = first.shape.clone();
        if let Some(dim) = shape.first_mut() {
            *dim = rows;
        }
        Ok(Tensor {
            name: first.name.clone(),
            shape,
            data,
        })
    }

    /// Splits along the first dimension into pieces of `rows[i]` rows each; the inverse of
    /// [`Tensor::concat`]. The row counts must add up to this tensor's first dimension.
    pub fn split(&self, rows: &[usize]) -> Result<Vec<Tensor>, TensorError> {
        let total: usize = rows.iter().sum();
        // A backend that returned fewer elements than its shape says must not take the worker
        // thread down with an out-of-range slice.
        let consistent = element_count(&self.shape).is_ok_and(|count| count == self.data.len());
        if self.shape.is_empty() || total != self.rows() || !consistent {
            return Err(TensorError::SplitMismatch {
                name: self.name.clone(),
                rows: self.shape.first().copied(),
                wanted: total,
            });
        }
        let row_len = self.row_len();
        let mut start = 0;
        Ok(rows
            .iter()
            .map(|&count| {
                let end = start + count * row_len;
                let data = self.data.slice(start, end);
                start = end;
                let mut shape = self.shape.clone();
                shape[0] = count;
                Tensor {
                    name: self.name.clone(),
                    shape,
                    data,
                }
            })
            .collect())
    }
}

/// The number of elements a shape holds, refusing shapes whose product overflows.
pub fn element_count(shape: &[usize]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
        .ok_or(TensorError::TooLarge)
}

/// The declared shape of a model input or output: `None` is a variable-size dimension
/// (`-1` on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<Option<usize>>,
}

impl TensorSpec {
    /// The shape as the protocols print it, with -1 for variable dimensions.
    pub fn wire_shape(&self) -> Vec<i64> {
        self.shape
            .iter()
            .map(|dim| dim.map_or(-1, |d| d as i64))
            .collect()
    }

    /// Whether the first dimension is variable, so requests can be stacked along it.
    pub fn is_batchable(&self) -> bool {
        matches!(self.shape.first(), Some(None))
    }

    /// Whether a concrete shape fits this spec.
    pub fn accepts_shape(&self, shape: &[usize]) -> bool {
        shape.len() == self.shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(want, &got)| want.is_none_or(|w| w == got))
    }
}

/// Converts a wire shape (`-1` or non-negative dimensions) into a concrete shape.
pub fn shape_from_wire(name: &str, shape: &[i64]) -> Result<Vec<usize>, TensorError> {
    shape
        .iter()
        .map(|&dim| {
            usize::try_from(dim).map_err(|_| TensorError::NegativeDimension {
                name: name.to_owned(),
                shape: shape.to_vec(),
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TensorError {
    #[error(
        "unsupported datatype '{0}' (supported: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64, BYTES)"
    )]
    UnsupportedDatatype(String),
    #[error("raw {dtype} data must hold {expected} bytes for the given shape, got {given}")]
    RawSize {
        dtype: DataType,
        expected: usize,
        given: usize,
    },
    #[error("the shape implies {expected} elements but {given} were given")]
    ElementCount { expected: usize, given: usize },
    #[error("bad BYTES encoding: {0}")]
    BadBytesEncoding(String),
    #[error("tensor is too large: its element count overflows")]
    TooLarge,
    #[error("input '{name}' has a negative dimension in shape {shape:?}")]
    NegativeDimension { name: String, shape: Vec<i64> },
    #[error("cannot batch tensors of datatypes {first} and {other}")]
    MixedDatatypes { first: DataType, other: DataType },
    #[error(
        "cannot batch '{name}': shapes {first:?} and {other:?} differ after the first dimension"
    )]
    MismatchedRows {
        name: String,
        first: Vec<usize>,
        other: Vec<usize>,
    },
    #[error("cannot split '{name}' with first dimension {rows:?} into {wanted} rows")]
    SplitMismatch {
        name: String,
        rows: Option<usize>,
        wanted: usize,
    },
    #[error("a batch needs at least one tensor")]
    EmptyBatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_for_every_datatype() {
        let samples = [
            TensorData::Bool(vec![true, false, true]),
            TensorData::Uint8(vec![0, 7, 255]),
            TensorData::Uint16(vec![1, 65535, 3]),
            TensorData::Uint32(vec![1, u32::MAX, 3]),
            TensorData::Uint64(vec![1, u64::MAX, 3]),
            TensorData::Int8(vec![-128, 0, 127]),
            TensorData::Int16(vec![-1, 2, -3]),
            TensorData::Int32(vec![i32::MIN, 0, i32::MAX]),
            TensorData::Int64(vec![i64::MIN, 0, i64::MAX]),
            TensorData::Fp32(vec![1.5, -0.0, f32::MAX]),
            TensorData::Fp64(vec![1.5, f64::MIN_POSITIVE, -2.25]),
            TensorData::Bytes(vec![
                Bytes::from_static(b"kia"),
                Bytes::new(),
                Bytes::from_static(b"rio"),
            ]),
        ];
        for data in samples {
            let raw = data.to_raw();
            assert_eq!(
                TensorData::from_raw(data.dtype(), &raw, 3).unwrap(),
                data,
                "{}",
                data.dtype()
            );
        }
    }

    #[test]
    fn raw_fp32_is_little_endian() {
        let raw = 1.0f32.to_le_bytes();
        assert_eq!(
            TensorData::from_raw(DataType::Fp32, &raw, 1).unwrap(),
            TensorData::Fp32(vec![1.0])
        );
    }

    #[test]
    fn raw_size_mismatch_names_expected_and_given() {
        let err = TensorData::from_raw(DataType::Fp32, &[0; 10], 3).unwrap_err();
        assert_eq!(
            err,
            TensorError::RawSize {
                dtype: DataType::Fp32,
                expected: 12,
                given: 10
            }
        );
        assert!(err.to_string().contains("12 bytes"), "{err}");
    }

    #[test]
    fn truncated_bytes_elements_are_refused() {
        let mut raw = 5u32.to_le_bytes().to_vec();
        raw.extend_from_slice(b"abc");
        assert!(matches!(
            TensorData::from_raw(DataType::Bytes, &raw, 1),
            Err(TensorError::BadBytesEncoding(_))
        ));
        assert!(matches!(
            TensorData::from_raw(DataType::Bytes, &[1, 0], 1),
            Err(TensorError::BadBytesEncoding(_))
        ));
        let one = TensorData::Bytes(vec![Bytes::from_static(b"x")]).to_raw();
        assert_eq!(
            TensorData::from_raw(DataType::Bytes, &one, 2),
            Err(TensorError::ElementCount {
                expected: 2,
                given: 1
            })
        );
    }

    #[test]
    fn datatype_names_parse_and_unknown_ones_are_named() {
        for dtype in DataType::ALL {
            assert_eq!(dtype.as_str().parse::<DataType>().unwrap(), dtype);
        }
        let err = parse_datatype("FP16").unwrap_err();
        assert!(err.to_string().contains("'FP16'"), "{err}");
        assert!(err.to_string().contains("supported: BOOL"), "{err}");
    }

    #[test]
    fn concat_then_split_restores_each_request() {
        let a = Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![1.0, 2.0, 3.0])).unwrap();
        let b = Tensor::new(
            "x",
            vec![2, 3],
            TensorData::Fp32(vec![4.0, 5.0, 6.0, 7.0, 8.0, 9.0]),
        )
        .unwrap();
        let joined = Tensor::concat(&[&a, &b]).unwrap();
        assert_eq!(joined.shape, vec![3, 3]);
        assert_eq!(joined.split(&[1, 2]).unwrap(), vec![a, b]);
    }

    #[test]
    fn rank_one_outputs_split_per_row() {
        let labels = Tensor::new("label", vec![3], TensorData::Int64(vec![1, 0, 1])).unwrap();
        let parts = labels.split(&[2, 1]).unwrap();
        assert_eq!(parts[0].data, TensorData::Int64(vec![1, 0]));
        assert_eq!(parts[1].shape, vec![1]);
    }

    #[test]
    fn split_refuses_a_tensor_whose_data_does_not_fill_its_shape() {
        let short = Tensor {
            name: "y".into(),
            shape: vec![2, 2],
            data: TensorData::Fp32(vec![1.0, 2.0, 3.0]),
        };
        assert!(matches!(
            short.split(&[1, 1]),
            Err(TensorError::SplitMismatch { .. })
        ));
    }

    #[test]
    fn concat_refuses_different_row_shapes_and_split_refuses_wrong_totals() {
        let a = Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![0.0; 3])).unwrap();
        let b = Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![0.0; 2])).unwrap();
        assert!(matches!(
            Tensor::concat(&[&a, &b]),
            Err(TensorError::MismatchedRows { .. })
        ));
        let c = Tensor::new("x", vec![1, 3], TensorData::Fp64(vec![0.0; 3])).unwrap();
        assert!(matches!(
            Tensor::concat(&[&a, &c]),
            Err(TensorError::MixedDatatypes { .. })
        ));
        assert!(matches!(
            a.split(&[2]),
            Err(TensorError::SplitMismatch { .. })
        ));
    }

    #[test]
    fn shapes_are_checked_against_specs() {
        let spec = TensorSpec {
            name: "x".into(),
            dtype: DataType::Fp32,
            shape: vec![None, Some(4)],
        };
        assert!(spec.is_batchable());
        assert!(spec.accepts_shape(&[7, 4]));
        assert!(!spec.accepts_shape(&[7, 3]));
        assert!(!spec.accepts_shape(&[4]));
        assert_eq!(spec.wire_shape(), vec![-1, 4]);
        assert!(Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![0.0; 3])).is_err());
        assert!(shape_from_wire("x", &[1, -1]).is_err());
        assert_eq!(element_count(&[usize::MAX, 2]), Err(TensorError::TooLarge));
    }
}
