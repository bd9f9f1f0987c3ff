//! The V2 datatypes and the raw tensor form every V2 peer exchanges (gRPC
//! `raw_input_contents`/`raw_output_contents`, Triton's binary HTTP extension): row-major
//! little-endian elements, BOOL as one byte each, and each BYTES element prefixed by its length
//! as a little-endian u32. Written once here for the server and the client, which each keep
//! their own element containers.

use std::fmt;
use std::str::FromStr;

/// The V2 protocol's datatype names. FP16 and BF16 are not supported (see [`DataType::from_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 12] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The wire name: `FP32`, `INT64`, `BYTES`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Bytes per element in the raw form; `None` for BYTES, whose elements are length-prefixed.
    pub fn element_size(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => Some(1),
            DataType::Uint16 | DataType::Int16 => Some(2),
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => Some(4),
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => Some(8),
            DataType::Bytes => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = UnknownDataType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|dtype| dtype.as_str() == s)
            .ok_or_else(|| UnknownDataType(s.to_owned()))
    }
}

/// A datatype name that is not one of [`DataType::ALL`]; holds the name as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDataType(pub String);

impl fmt::Display for UnknownDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported datatype '{}'", self.0)
    }
}

impl std::error::Error for UnknownDataType {}

/// Why raw contents cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawError {
    /// The byte count is not a whole number of `element_size`-byte elements.
    Ragged { len: usize, element_size: usize },
    /// BYTES contents end inside an element's 4-byte length.
    TruncatedLength,
    /// BYTES element `index` declares `declared` bytes but fewer remain.
    TruncatedElement {
        index: usize,
        declared: usize,
        remaining: usize,
    },
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawError::Ragged { len, element_size } => write!(
                f,
                "{len} raw bytes are not a whole number of {element_size}-byte elements"
            ),
            RawError::TruncatedLength => {
                f.write_str("a BYTES element needs a 4-byte length prefix")
            }
            RawError::TruncatedElement {
                declared,
                remaining,
                ..
            } => write!(
                f,
                "a BYTES element declares {declared} bytes but only {remaining} remain"
            ),
        }
    }
}

impl std::error::Error for RawError {}

/// A fixed-size element of the raw form.
pub trait LittleEndian: Copy {
    const SIZE: usize;
    fn append_le(self, out: &mut Vec<u8>);
    /// `chunk` is exactly [`LittleEndian::SIZE`] bytes.
    fn from_le_chunk(chunk: &[u8]) -> Self;
}

macro_rules! little_endian {
    ($($ty:ty),*) => {
        $(
            impl LittleEndian for $ty {
                const SIZE: usize = std::mem::size_of::<$ty>();
                fn append_le(self, out: &mut Vec<u8>) {
                    out.extend_from_slice(&self.to_le_bytes());
                }
                fn from_le_chunk(chunk: &[u8]) -> Self {
                    <$ty>::from_le_bytes(chunk.try_into().expect("chunk has the type's size"))
                }
            }
        )*
    };
}

little_endian!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

/// Appends `values` in the raw form.
pub fn write_le<T: LittleEndian>(values: &[T], out: &mut Vec<u8>) {
    out.reserve(values.len() * T::SIZE);
    for value in values {
        value.append_le(out);
    }
}

/// Decodes raw contents of a fixed-size datatype.
pub fn read_le<T: LittleEndian>(raw: &[u8]) -> Result<Vec<T>, RawError> {
    let chunks = raw.chunks_exact(T::SIZE);
    if !chunks.remainder().is_empty() {
        return Err(RawError::Ragged {
            len: raw.len(),
            element_size: T::SIZE,
        });
    }
    Ok(chunks.map(T::from_le_chunk).collect())
}

/// Appends BOOL elements in the raw form (one byte each).
pub fn write_bools(values: &[bool], out: &mut Vec<u8>) {
    out.extend(values.iter().map(|&b| u8::from(b)));
}

/// Decodes raw BOOL contents: any non-zero byte is true.
pub fn read_bools(raw: &[u8]) -> Vec<bool> {
    raw.iter().map(|&b| b != 0).collect()
}

/// Appends BYTES elements in the raw form, each after its length as a little-endian u32.
pub fn write_bytes<E: AsRef<[u8]>>(elements: &[E], out: &mut Vec<u8>) {
    for element in elements {
        let element = element.as_ref();
        // An element of 4 GiB or more cannot travel in any message the peers accept; the
        // receiver refuses the message before reading this length.
        let len = u32::try_from(element.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(element);
    }
}

/// Splits raw BYTES contents into their elements, borrowed from `raw`.
pub fn read_bytes(mut raw: &[u8]) -> Result<Vec<&[u8]>, RawError> {
    let mut elements = Vec::new();
    while !raw.is_empty() {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(RawError::TruncatedLength);
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(RawError::TruncatedElement {
                index: elements.len(),
                declared: len,
                remaining: rest.len(),
            });
        }
        let (element, rest) = rest.split_at(len);
        elements.push(element);
        raw = rest;
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_round_trip_and_unknown_ones_are_named() {
        for dtype in DataType::ALL {
            assert_eq!(dtype.as_str().parse::<DataType>(), Ok(dtype));
        }
        let err = "FP16".parse::<DataType>().unwrap_err();
        assert_eq!(err.to_string(), "unsupported datatype 'FP16'");
    }

    #[test]
    fn element_sizes_match_the_raw_form() {
        let mut out = Vec::new();
        write_le(&[1.0f32], &mut out);
        assert_eq!(out.len(), DataType::Fp32.element_size().unwrap());
        assert_eq!(DataType::Bytes.element_size(), None);
        assert_eq!(DataType::Bool.element_size(), Some(1));
    }

    #[test]
    fn fixed_size_elements_are_little_endian_and_round_trip() {
        let mut out = Vec::new();
        write_le(&[1i32, -2], &mut out);
        assert_eq!(out, [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        assert_eq!(read_le::<i32>(&out), Ok(vec![1, -2]));
        let mut out = Vec::new();
        write_le(&[f64::MIN, 1e300], &mut out);
        assert_eq!(read_le::<f64>(&out), Ok(vec![f64::MIN, 1e300]));
        assert_eq!(
            read_le::<f32>(&[0, 0, 0]),
            Err(RawError::Ragged {
                len: 3,
                element_size: 4
            })
        );
    }

    #[test]
    fn bools_take_a_byte_each() {
        let mut out = Vec::new();
        write_bools(&[true, false], &mut out);
        assert_eq!(out, [1, 0]);
        assert_eq!(read_bools(&[0, 7]), [false, true]);
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let mut out = Vec::new();
        write_bytes(&[&b"ab"[..], b""], &mut out);
        assert_eq!(out, [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
        assert_eq!(read_bytes(&out), Ok(vec![&b"ab"[..], b""]));
        assert_eq!(read_bytes(&[5, 0]), Err(RawError::TruncatedLength));
        assert_eq!(
            read_bytes(&[5, 0, 0, 0, b'a']),
            Err(RawError::TruncatedElement {
                index: 0,
                declared: 5,
                remaining: 1
            })
        );
    }
}
