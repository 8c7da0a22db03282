//! The IDX format of MNIST and Fashion-MNIST, gzip-compressed or raw.
//!
//! Layout: two zero bytes, a type byte (`0x08` = unsigned byte, the only type these datasets
//! use), the rank, then one big-endian `u32` per dimension, then the data in row-major order.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::error::{DataError, Result, corrupt};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UNSIGNED_BYTE: u8 = 0x08;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[10000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads the file's bytes, decompressing it when it starts with the gzip magic number.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|err| corrupt(path, format!("invalid gzip stream: {err}")))?;
    Ok(out)
}

/// Reads an IDX file (gzip or raw) of unsigned bytes.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(&read_maybe_gzip(path)?, path)
}

/// Parses IDX bytes; `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let fail = |reason: String| corrupt(PathBuf::from(path), reason);
    if bytes.len() < 4 {
        return Err(fail(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(fail(format!(
            "bad magic number {:02x} {:02x} {:02x} {:02x}: not an IDX file",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes[2] != UNSIGNED_BYTE {
        return Err(fail(format!(
            "IDX data type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(fail("IDX rank 0".to_string()));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(fail(format!(
            "truncated header: rank {rank} needs {header} bytes"
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let expected = expected.ok_or_else(|| fail(format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(fail(format!(
            "truncated: dimensions {dims:?} need {expected} data bytes, found {found}"
        )));
    }
    if found > expected {
        return Err(fail(format!(
            "{} unexpected bytes after the {expected} data bytes of dimensions {dims:?}",
            found - expected
        )));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an array as IDX bytes (used to write fixtures and by the tests).
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let mut out = vec![0, 0, UNSIGNED_BYTE, array.dims.len() as u8];
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IdxArray {
        IdxArray {
            dims: vec![2, 3],
            data: vec![1, 2, 3, 4, 5, 6],
        }
    }

    fn parse(bytes: &[u8]) -> Result<IdxArray> {
        parse_idx(bytes, Path::new("x.idx"))
    }

    fn reason(err: DataError) -> String {
        match err {
            DataError::Corrupt { reason, path } => {
                assert_eq!(path, Path::new("x.idx"));
                reason
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(parse(&encode_idx(&sample())).unwrap(), sample());
    }

    #[test]
    fn rejects_truncated_data() {
        let bytes = encode_idx(&sample());
        assert!(reason(parse(&bytes[..bytes.len() - 1]).unwrap_err()).contains("truncated"));
        assert!(reason(parse(&bytes[..9]).unwrap_err()).contains("truncated header"));
        assert!(reason(parse(&bytes[..2]).unwrap_err()).contains("too short"));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode_idx(&sample());
        bytes.push(0);
        assert!(reason(parse(&bytes).unwrap_err()).contains("unexpected bytes"));
    }

    #[test]
    fn rejects_bad_magic_and_types() {
        let mut bytes = encode_idx(&sample());
        bytes[0] = 7;
        assert!(reason(parse(&bytes).unwrap_err()).contains("magic"));
        let mut bytes = encode_idx(&sample());
        bytes[2] = 0x0d;
        assert!(reason(parse(&bytes).unwrap_err()).contains("0x0d"));
        let mut bytes = encode_idx(&sample());
        bytes[3] = 0;
        assert!(reason(parse(&bytes).unwrap_err()).contains("rank 0"));
    }
}
